"""Hot-extend of a virtual disk (ReconfigVM_Task editing its capacity), as ESXi allows it: a larger size only, on a
disk without snapshots; the guest writes the new region after a rescan and CBT tracks it."""

from __future__ import annotations

from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vsphere.guest import GuestOperationError
from tests.sim.conftest import find, wait
from tests.sim.test_cbt import BLOCK, all_changes, disk_of, workload

MiB = 2**20


def grow(vm: Any, capacity: int, kb_only: bool = False) -> Any:
    disk = disk_of(vm)
    if kb_only:  # a client that copies the device and edits capacityInKB alone
        disk.capacityInKB = capacity // 1024
    else:
        disk.capacityInBytes = capacity
    change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    return vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change]))


def host_file(sim: Simulator, file_name: str) -> Any:
    datastore, rest = file_name[1:].split("] ", 1)
    return sim.state_dir / "datastores" / datastore / rest


@pytest.mark.parametrize("kb_only", [False, True])
def test_a_powered_on_disk_grows_and_its_descriptor_follows(sim: Simulator, content: Any, kb_only: bool) -> None:
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    old = disk_of(vm).capacityInBytes
    wait(grow(vm, old + 8 * MiB, kb_only))
    disk = disk_of(vm)
    assert (disk.capacityInBytes, disk.capacityInKB) == (old + 8 * MiB, (old + 8 * MiB) // 1024)
    with VirtualDiskFile.open(host_file(sim, disk.backing.fileName)) as reopened:
        assert reopened.capacity == old + 8 * MiB


def test_a_disk_with_snapshots_or_a_smaller_size_is_refused(content: Any) -> None:
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    old = disk_of(vm).capacityInBytes
    with pytest.raises(vim.fault.InvalidDeviceOperation, match="cannot shrink"):
        wait(grow(vm, old - MiB))
    snapshot = wait(vm.CreateSnapshot_Task("s", None, False, False))
    with pytest.raises(vim.fault.InvalidDeviceOperation, match="has snapshots"):
        wait(grow(vm, old + MiB))
    wait(snapshot.RemoveSnapshot_Task(False))
    wait(grow(vm, old + MiB))
    assert disk_of(vm).capacityInBytes == old + MiB


def test_the_guest_writes_the_new_region_after_a_rescan_and_cbt_reports_it(sim: Simulator, content: Any) -> None:
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    first = wait(vm.CreateSnapshot_Task("full", None, False, False))
    since = disk_of(first).backing.changeId
    wait(first.RemoveSnapshot_Task(False))
    old = disk_of(vm).capacityInBytes
    wait(grow(vm, old + 4 * MiB))
    guest = workload(sim, content, vm)
    guest.rescan_disk(0)
    guest.write_disk(0, old + 4 * MiB - BLOCK, b"\x42" * BLOCK)  # the last block of the grown disk
    after = wait(vm.CreateSnapshot_Task("incremental", None, False, False))
    assert all_changes(vm, after, disk_of(vm).key, since, old + 4 * MiB) == [(old + 4 * MiB - BLOCK, BLOCK)]
    with pytest.raises(GuestOperationError, match="rescan of /dev/sdc"):
        guest.rescan_disk(2)  # no third disk
