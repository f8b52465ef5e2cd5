"""Changed block tracking: changeIds per snapshot, QueryChangedDiskAreas exact and paginated, R6 profiles."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from conformance.sim.instance import Simulator
from conformance.sim.objects.virtual_machine import MAX_CHANGED_AREAS
from conformance.vsphere.connection import Endpoint, connect
from conformance.vsphere.guest import GuestCredentials, GuestWorkload
from tests.sim.conftest import find, wait

BLOCK = 64 * 1024


def disk_of(owner: Any, index: int = 0) -> Any:
    return [d for d in owner.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][index]


def workload(sim: Simulator, content: Any, vm: Any) -> GuestWorkload:
    return GuestWorkload(
        content, vm, GuestCredentials("root", "guest-password"), ssl.create_default_context(cafile=sim.cert_file)
    )


def all_changes(vm: Any, snapshot: Any, key: int, change_id: str, capacity: int) -> list[tuple[int, int]]:
    """Page through QueryChangedDiskAreas the way a backup does (startOffset += length)."""
    areas, offset = [], 0
    while offset < capacity:
        page = vm.QueryChangedDiskAreas(snapshot, key, offset, change_id)
        areas += [(a.start, a.length) for a in page.changedArea]
        offset = page.startOffset + page.length
    return areas


@pytest.fixture
def tracked_vm(sim: Simulator, content: Any) -> Any:
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    return vm


def test_enabling_cbt_sets_config_and_per_disk_keys(tracked_vm: Any) -> None:
    assert tracked_vm.config.changeTrackingEnabled is True
    options = {o.key: o.value for o in tracked_vm.config.extraConfig}
    assert options["scsi0:0.ctkEnabled"] == "TRUE"


def test_changed_areas_between_two_snapshots_are_exactly_what_the_guest_wrote(
    sim: Simulator, content: Any, tracked_vm: Any
) -> None:
    guest = workload(sim, content, tracked_vm)
    guest.write_disk(0, 0, b"\x11" * BLOCK)
    first = wait(tracked_vm.CreateSnapshot_Task("full", None, False, False))
    first_id = disk_of(first).backing.changeId
    guest.write_disk(0, 3 * BLOCK, b"\x22" * 100)
    guest.write_disk(0, 10 * 2**20, b"\x33" * (2 * BLOCK))
    second = wait(tracked_vm.CreateSnapshot_Task("incremental", None, False, False))
    key, capacity = disk_of(tracked_vm).key, disk_of(tracked_vm).capacityInBytes
    assert disk_of(second).backing.changeId != first_id
    assert all_changes(tracked_vm, second, key, first_id, capacity) == [(3 * BLOCK, BLOCK), (10 * 2**20, 2 * BLOCK)]
    # "*" lists the allocated areas of the disk at the snapshot
    assert all_changes(tracked_vm, second, key, "*", capacity) == [
        (0, BLOCK),
        (3 * BLOCK, BLOCK),
        (10 * 2**20, 2 * BLOCK),
    ]


def test_changed_areas_are_paginated_by_start_offset(sim: Simulator, content: Any, tracked_vm: Any) -> None:
    extents = MAX_CHANGED_AREAS + 100  # more than one reply carries
    wait(tracked_vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[add_disk_spec(2 * BLOCK * extents)])))
    wait(tracked_vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    first = wait(tracked_vm.CreateSnapshot_Task("full", None, False, False))
    # every other 64 KiB block gets 512 bytes: one guest upload, batched dd runs
    workload(sim, content, tracked_vm).write_disk_many(1, [(2 * n * BLOCK, b"\x01" * 512) for n in range(extents)])
    second = wait(tracked_vm.CreateSnapshot_Task("incremental", None, False, False))
    disk = disk_of(tracked_vm, 1)
    change_id = disk_of(first, 1).backing.changeId
    page = tracked_vm.QueryChangedDiskAreas(second, disk.key, 0, change_id)
    assert len(page.changedArea) == MAX_CHANGED_AREAS
    assert page.length == 2 * MAX_CHANGED_AREAS * BLOCK  # the span covered ends where the next area starts
    areas = all_changes(tracked_vm, second, disk.key, change_id, disk.capacityInBytes)
    assert areas == [(2 * n * BLOCK, BLOCK) for n in range(extents)]


def test_bad_change_id_and_offset_raise_invalid_argument(tracked_vm: Any) -> None:
    snapshot = wait(tracked_vm.CreateSnapshot_Task("s", None, False, False))
    disk = disk_of(tracked_vm)
    with pytest.raises(vmodl.fault.InvalidArgument) as bad_id:
        tracked_vm.QueryChangedDiskAreas(snapshot, disk.key, 0, "52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1")
    assert bad_id.value.invalidProperty == "changeId"
    with pytest.raises(vmodl.fault.InvalidArgument) as bad_offset:
        tracked_vm.QueryChangedDiskAreas(snapshot, disk.key, disk.capacityInBytes, "*")
    assert bad_offset.value.invalidProperty == "startOffset"


def test_query_without_cbt_is_a_file_fault(content: Any) -> None:
    vm = find(content, vim.VirtualMachine, "target-nfs")
    snapshot = wait(vm.CreateSnapshot_Task("s", None, False, False))
    with pytest.raises(vim.fault.FileFault, match="Change tracking is not active"):
        vm.QueryChangedDiskAreas(snapshot, disk_of(vm).key, 0, "52 00/1")


def add_disk_spec(capacity: int) -> Any:
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        fileOperation="create",
        device=vim.vm.device.VirtualDisk(
            key=-1,
            capacityInBytes=capacity,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True),
        ),
    )


@pytest.mark.parametrize(("vsphere", "preserved"), [("6.7U3", False), ("7.0U2", False), ("7.0U3", True), ("8.0", True)])
def test_default_storage_profile_and_per_disk_cbt(vsphere: str, preserved: bool) -> None:
    with Simulator(vsphere=vsphere) as sim:
        content = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password).RetrieveContent()
        vm = find(content, vim.VirtualMachine, "target-vmfs")
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[add_disk_spec(2**24)])))
        wait(
            vm.ReconfigVM_Task(
                vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="scsi0:1.ctkEnabled", value="TRUE")])
            )
        )
        before = {o.key: o.value for o in vm.config.extraConfig if o.key.startswith("scsi")}
        assert before == {"scsi0:0.ctkEnabled": "FALSE", "scsi0:1.ctkEnabled": "TRUE"}
        change = vim.vm.device.VirtualDeviceSpec(
            operation="edit", device=disk_of(vm, 1), profile=[vim.vm.DefaultProfileSpec()]
        )
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])))
        after = {o.key: o.value for o in vm.config.extraConfig if o.key.startswith("scsi")}
        assert (after == before) is preserved
        if not preserved:
            assert after == {"scsi0:0.ctkEnabled": "TRUE", "scsi0:1.ctkEnabled": "TRUE"}


def test_a_64_gib_disk_with_1_mib_written_stays_sparse_on_the_host(sim: Simulator, content: Any) -> None:
    vm = find(content, vim.VirtualMachine, "target-nfs41")
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[add_disk_spec(64 * 2**30)])))
    workload(sim, content, vm).write_disk(1, 32 * 2**30, b"\x5a" * 2**20)
    big = disk_of(vm, 1)
    name, rest = big.backing.fileName[1:].split("] ", 1)
    files = (sim.state_dir / "datastores" / name / rest).parent.glob(rest.split("/")[-1].replace(".vmdk", "*"))
    used = sum(f.stat().st_blocks * 512 for f in files)
    assert big.capacityInBytes == 64 * 2**30 and used < 2 * 2**20
