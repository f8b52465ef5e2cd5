"""Which transport a job really used, from the server's records rather than what the library or the application
reports: a HotAdd job reconfigures the proxy VM with a disk of the VM it backs up or restores, and the server
records that reconfiguration as an event (VmReconfiguredEvent with its configSpec), on a lab as on the simulator.
A library that says "hotadd" (GetTransportMode) while it read over the network left no such record."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from conformance.sequences.context import SequenceContext
from conformance.verdicts.cleanup import files_of


def event_mark(ctx: SequenceContext) -> int:
    """The key of the server's latest event: what the job does comes after it."""
    latest = ctx.vsphere.content.eventManager.latestEvent
    return int(latest.key) if latest is not None else 0


def hot_adds(ctx: SequenceContext, vm_name: str, since: int) -> list[str]:
    """Files of the VM the server recorded being added to the proxy VM after event `since`."""
    if not ctx.proxy_vm:
        return []
    vsphere = ctx.vsphere
    proxy, vm = vsphere.vm(ctx.proxy_vm), vsphere.vm(vm_name)
    mine = files_of(vm)
    spec = vim.event.EventFilterSpec(
        entity=vim.event.EventFilterSpec.ByEntity(entity=proxy, recursion="self"),
        eventTypeId=["VmReconfiguredEvent"],
    )
    added = []
    for event in vsphere.content.eventManager.QueryEvents(spec) or []:
        if event.key <= since:
            continue
        for change in getattr(event.configSpec, "deviceChange", None) or []:
            name = _disk_file(change)
            if name is not None and (name in mine or name.rsplit("/", 1)[0] in mine):
                added.append(name)
    return added


def _disk_file(change: Any) -> str | None:
    device = change.device
    if change.operation != "add" or not isinstance(device, vim.vm.device.VirtualDisk):
        return None
    return str(getattr(device.backing, "fileName", "") or "") or None


def transport_problems(ctx: SequenceContext, vm_name: str, reported: set[str], since: int) -> list[str]:
    """What contradicts the reported transports: "hotadd" without a hot-add of the VM's disk the server saw."""
    if "hotadd" not in reported or hot_adds(ctx, vm_name, since):
        return []
    return [
        f"the job reports HotAdd for {vm_name}, but the server recorded no disk of it added to proxy "
        f"{ctx.proxy_vm} during the job"
    ]
