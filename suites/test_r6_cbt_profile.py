"""R6: applying a default storage profile keeps each disk's changed block tracking state.

A server-side item (fixed in vSphere 7.0 U3): a VM whose disks have mixed per-disk CBT states is reconfigured
with a ``VirtualMachineDefaultProfileSpec``; afterwards every disk must have the CBT state it had before. The
profile spec can travel in a disk's ``deviceChange[].profile`` or in the VM's ``spec.vmProfile``; both are
covered, each with the two ways to mix the states of the boot and the data disk. Before 7.0 U3 the server
turns CBT on for every disk (the catalog makes that a known issue there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pyVmomi import vim

from conformance.knowledge.symptoms import symptom
from conformance.vsphere.session import VsphereSession, disks_of
from conformance.vsphere.tasks import wait_for_task

pytestmark = [pytest.mark.release_note("R6")]
#: (boot disk, data disk) CBT states before the profile is applied
MIXED = {"boot-on-data-off": (True, False), "boot-off-data-on": (False, True)}


def ctk_key(unit: int) -> str:
    return f"scsi0:{unit}.ctkEnabled"


def disk_cbt(vm: Any) -> dict[int, bool]:
    """Each disk's CBT state (unit number -> enabled), as the VM's extraConfig reports it."""
    options = {o.key.lower(): str(o.value).strip().upper() == "TRUE" for o in vm.config.extraConfig or []}
    return {d.unit_number: options.get(ctk_key(d.unit_number).lower(), False) for d in disks_of(vm)}


def default_profile_spec(vm: Any, carrier: str) -> Any:
    """A ConfigSpec carrying VirtualMachineDefaultProfileSpec in a disk's deviceChange or in spec.vmProfile."""
    profile = [vim.vm.DefaultProfileSpec()]
    if carrier == "vm-profile":
        return vim.vm.ConfigSpec(vmProfile=profile)
    disk = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    return vim.vm.ConfigSpec(
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk, profile=profile)]
    )


@pytest.fixture(params=list(MIXED), ids=list(MIXED))
def mixed_vm(request: pytest.FixtureRequest, fresh_vm: Callable[..., str], vsphere: VsphereSession) -> str:
    """A fresh VM whose boot and data disks have different CBT states, set per disk through extraConfig."""
    name = fresh_vm("VMFS")
    vm = vsphere.vm(name)
    units = [d.unit_number for d in disks_of(vm)]
    assert len(units) == 2, f"{name} should have a boot and a data disk, has units {units}"
    states = dict(zip(units, MIXED[request.param], strict=True))
    options = [vim.option.OptionValue(key=ctk_key(u), value="TRUE" if on else "FALSE") for u, on in states.items()]
    wait_for_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=options)), f"set per-disk CBT on {name}")
    assert disk_cbt(vm) == states, "the per-disk CBT states did not take"
    return name


@pytest.mark.test_id(
    "R6-001",
    uuid="d18f88a2-4143-4658-aa2e-834b94c38138",
    since="vddk-7.0.3-v1",
    description="Default profile keeps each disks cbt state",
)
@pytest.mark.parametrize("carrier", ["device-change", "vm-profile"])
def test_default_profile_keeps_each_disks_cbt_state(mixed_vm: str, vsphere: VsphereSession, carrier: str) -> None:
    vm = vsphere.vm(mixed_vm)
    before = disk_cbt(vm)
    wait_for_task(vm.ReconfigVM_Task(default_profile_spec(vm, carrier)), f"apply default profile to {mixed_vm}")
    after = disk_cbt(vm)
    if after != before and all(after.values()):
        symptom("R6", "applying the default storage profile enabled CBT on every disk", observed=after)
    assert after == before
