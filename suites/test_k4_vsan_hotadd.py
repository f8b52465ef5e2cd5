"""K4: HotAdd of a vSAN target VM's disks from a proxy that lives outside vSAN.

The catalog makes K4 a known issue of every modelled build (no build range in the notes; unsupported through
8.0), so the reproducer asserts the fixed, desired behaviour — HotAdd works for a vSAN target whatever the
proxy's datastore — and is reported as the known issue; it is parametrized over "hotadd" alone (today: Open
fails with a VixError) and "hotadd:nbdssl" (today: the library falls back to nbdssl). Those two are the
documented symptom, and the harness reads them from the library's call trace (an Open on a connection that asked
for HotAdd failed, or opened over another transport), not from what the backup application reports; anything
else the backup raises is the backup application's failure. The workaround
``proxy-on-vsan`` moves the proxy VM's storage to the vSAN datastore (RelocateVM_Task, undone by the resource
tracker so the shared proxy ends up where it was); HotAdd then works and GetTransportMode says hotadd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.lab.resources import Resource, ResourceTracker
from conformance.lab.targets import Target
from conformance.sequences.context import SequenceContext
from conformance.vixdisklib.recorder import CallRecord
from conformance.vsphere.session import VsphereSession
from fixtures.jobs import BackUp

pytestmark = [pytest.mark.sequence("backup")]


def home_datastore(vm: Any) -> str:
    """The datastore holding the VM's configuration file ("[ds] dir/vm.vmx")."""
    return str(vm.config.files.vmPathName)[1:].split("]", 1)[0]


def relocate(vsphere: VsphereSession, vm_name: str, datastore: str) -> None:
    vsphere.relocate_vm(vsphere.vm(vm_name), datastore)


def relocated(vsphere: VsphereSession, resources: ResourceTracker, vm_name: str, datastore: str) -> Resource:
    """Move a VM's storage; the tracker moves it back to where it was."""
    origin = home_datastore(vsphere.vm(vm_name))
    relocate(vsphere, vm_name, datastore)
    return resources.add("relocation", f"{vm_name} to {datastore}", lambda: relocate(vsphere, vm_name, origin))


def vsan_datastore(target: Target) -> str:
    """The target's vSAN datastore (a target without one skips)."""
    vsan = target.datastore_of_type("vsan")
    if vsan is None:
        pytest.skip(f"target {target.name} has no vSAN datastore")
    return vsan


@pytest.fixture
def vsan_vm(fresh_vm: Callable[..., str]) -> str:
    return fresh_vm("vsan")


@pytest.fixture
def proxy_off_vsan(sequence: SequenceContext, vsphere: VsphereSession, vddk_target: Target) -> str:
    """The sequence's HotAdd proxy, checked to live on a datastore that is not vSAN."""
    if sequence.proxy_vm is None:
        pytest.skip(f"target {vddk_target.name} has no HotAdd proxy VM")
    home = home_datastore(vsphere.vm(sequence.proxy_vm))
    if home in vddk_target.datastores.get("vsan", []):
        pytest.skip(f"target {vddk_target.name}: proxy {sequence.proxy_vm} lives on vSAN, not outside it")
    return sequence.proxy_vm


@pytest.mark.release_note("K4")
@pytest.mark.test_id(
    "K4-001",
    uuid="cf9d0deb-0c08-46cf-91ba-5256562d723a",
    since="vddk-7.0.3-v1",
    description="Hotadd backs up a vsan vm from a proxy outside vsan",
)
@pytest.mark.parametrize("transports", ["hotadd", "hotadd:nbdssl"])
def test_hotadd_backs_up_a_vsan_vm_from_a_proxy_outside_vsan(
    sequence: SequenceContext, back_up: BackUp, vsan_vm: str, proxy_off_vsan: str, transports: str
) -> None:
    since = max((r.seq for r in sequence.lib.recorder.records()), default=0)
    try:
        job = back_up(vsan_vm, transports)
    except Exception as exc:
        hotadd_symptom(hotadd_opens(sequence.lib.recorder.records(), since), exc)
        raise
    opens = hotadd_opens(sequence.lib.recorder.records(), since)
    hotadd_symptom(opens, None)
    assert opens, "the backup opened no disk on a connection that asked for HotAdd"
    assert job.transports == {"hotadd"}


def hotadd_opens(records: list[CallRecord], since: int) -> list[CallRecord]:
    """The VixDiskLib_Open calls after ``since`` on connections whose transport list starts with HotAdd."""
    mine = [r for r in records if r.seq > since]
    hotadd = {
        r.handle
        for r in mine
        if r.call == "VixDiskLib_ConnectEx" and str(r.args.get("transportModes")).startswith("hotadd")
    }
    return [r for r in mine if r.call == "VixDiskLib_Open" and r.args.get("connection") in hotadd]


def hotadd_symptom(opens: list[CallRecord], raised: Exception | None) -> None:
    """K4's documented symptom in the trace: Open over HotAdd failed, or fell back to another transport."""
    failed = [r for r in opens if r.error is not None]
    if failed:
        symptom(
            "K4", "VixDiskLib_Open over HotAdd failed for the vSAN VM", observed=f"error {failed[0].error}; {raised!r}"
        )
    fallback = sorted({str(r.args.get("transport")) for r in opens} - {"hotadd"})
    if fallback:
        symptom("K4", "VixDiskLib_Open fell back from HotAdd", observed=fallback)


@pytest.mark.release_note("K4", workaround="proxy-on-vsan")
@pytest.mark.test_id(
    "K4-002",
    uuid="65244045-8e9e-4f59-913c-4cabe1b47855",
    since="vddk-7.0.3-v1",
    description="Hotadd works once the proxy is moved to vsan",
)
def test_hotadd_works_once_the_proxy_is_moved_to_vsan(
    sequence: SequenceContext,
    back_up: BackUp,
    vsphere: VsphereSession,
    vddk_target: Target,
    vsan_vm: str,
    proxy_off_vsan: str,
) -> None:
    vsan = vsan_datastore(vddk_target)
    relocated(vsphere, sequence.resources, proxy_off_vsan, vsan)
    assert back_up(vsan_vm, "hotadd").transports == {"hotadd"}


@pytest.mark.release_note("K4", workaround="proxy-on-vsan")
@pytest.mark.test_id(
    "K4-003",
    uuid="c83983f2-a3d1-4e39-96ed-13c40bd0ad1e",
    since="vddk-7.0.3-v1",
    description="The moved proxy returns to its datastore",
)
def test_the_moved_proxy_returns_to_its_datastore(
    sequence: SequenceContext, vsphere: VsphereSession, vddk_target: Target, proxy_off_vsan: str
) -> None:
    origin = home_datastore(vsphere.vm(proxy_off_vsan))
    vsan = vsan_datastore(vddk_target)
    sequence.resources.release(relocated(vsphere, sequence.resources, proxy_off_vsan, vsan))
    assert home_datastore(vsphere.vm(proxy_off_vsan)) == origin
