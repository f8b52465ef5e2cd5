"""The CBT and allocated-blocks integrity faults as the simulated server plays them (`--sim-fault`): each answer
is compared with the true one of the same simulator before the fault is turned on."""

from __future__ import annotations

import http.cookies
from collections.abc import Iterator
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.dataplane.client import DataPlaneClient
from conformance.sim.instance import Simulator
from conformance.sim.objects import virtual_machine
from tests.sim.conftest import find, wait
from tests.sim.test_cbt import BLOCK, all_changes, disk_of, workload

MiB = 2**20


@pytest.fixture
def tracked_vm(content: Any) -> Any:
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    return vm


@pytest.fixture
def client(sim: Simulator, si: Any) -> Iterator[DataPlaneClient]:
    jar = http.cookies.SimpleCookie()
    jar.load(si._stub.cookie)
    plane = DataPlaneClient(sim.host, sim.connection_info()["nbd_port"], tls=False, thumbprint=sim.thumbprint)
    plane.hello(jar["vmware_soap_session"].value, "nbd")
    yield plane
    plane.shutdown()


def changes_between(sim: Simulator, content: Any, vm: Any, writes: list[tuple[int, bytes]]) -> tuple[Any, str]:
    """(snapshot after the writes, changeId of a snapshot before them)."""
    first = wait(vm.CreateSnapshot_Task("before", None, False, False))
    workload(sim, content, vm).write_disk_many(0, writes)
    return wait(vm.CreateSnapshot_Task("after", None, False, False)), disk_of(first).backing.changeId


def test_off_by_one_block_moves_the_first_changed_area_one_cbt_block_later(
    sim: Simulator, content: Any, tracked_vm: Any
) -> None:
    after, since = changes_between(sim, content, tracked_vm, [(3 * BLOCK + 100, b"a" * 10), (10 * MiB, b"b" * 10)])
    disk = disk_of(tracked_vm)
    truth = all_changes(tracked_vm, after, disk.key, since, disk.capacityInBytes)
    sim.faults.play(("cbt-off-by-one-block",))
    lie = all_changes(tracked_vm, after, disk.key, since, disk.capacityInBytes)
    assert truth == [(3 * BLOCK, BLOCK), (10 * MiB, BLOCK)]
    assert lie == [(4 * BLOCK, BLOCK), (10 * MiB, BLOCK)]


def test_first_page_only_claims_the_first_reply_covers_the_disk(
    sim: Simulator, content: Any, tracked_vm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(virtual_machine, "MAX_CHANGED_AREAS", 2)  # three areas make two pages
    after, since = changes_between(sim, content, tracked_vm, [(n * 2 * BLOCK, b"c") for n in range(3)])
    disk = disk_of(tracked_vm)
    page = tracked_vm.QueryChangedDiskAreas(after, disk.key, 0, since)
    assert (len(page.changedArea), page.length) == (2, 4 * BLOCK)
    sim.faults.play(("cbt-first-page-only",))
    page = tracked_vm.QueryChangedDiskAreas(after, disk.key, 0, since)
    assert (len(page.changedArea), page.length) == (2, disk.capacityInBytes)
    # a caller that pages correctly stops after the first reply and never sees the third area
    assert all_changes(tracked_vm, after, disk.key, since, disk.capacityInBytes) == [(0, BLOCK), (2 * BLOCK, BLOCK)]


def test_misses_after_extend_drops_the_changes_in_the_grown_region(
    sim: Simulator, content: Any, tracked_vm: Any
) -> None:
    first = wait(tracked_vm.CreateSnapshot_Task("full", None, False, False))
    since = disk_of(first).backing.changeId
    wait(first.RemoveSnapshot_Task(False))  # ESXi extends only a disk without snapshots
    disk = disk_of(tracked_vm)
    old = disk.capacityInBytes
    disk.capacityInBytes = old + 4 * MiB
    change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    wait(tracked_vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])))
    workload(sim, content, tracked_vm).write_disk_many(0, [(BLOCK, b"old"), (old + MiB, b"new")])
    after = wait(tracked_vm.CreateSnapshot_Task("incremental", None, False, False))
    capacity = disk_of(tracked_vm).capacityInBytes
    assert all_changes(tracked_vm, after, disk.key, since, capacity) == [(BLOCK, BLOCK), (old + MiB, BLOCK)]
    sim.faults.play(("cbt-misses-after-extend",))
    assert all_changes(tracked_vm, after, disk.key, since, capacity) == [(BLOCK, BLOCK)]


def test_allocated_blocks_drop_last_omits_the_last_extent_from_both_maps(
    sim: Simulator, content: Any, client: DataPlaneClient
) -> None:
    vm = find(content, vim.VirtualMachine, "target-nfs")
    disk = disk_of(vm)
    handle = client.open(vm=vm._moId, path=disk.backing.fileName, write=True)["handle"]
    client.write(handle, 3 * MiB, b"x" * 4096)
    client.write(handle, 10 * MiB, b"y" * (2 * BLOCK))
    snapshot = wait(vm.CreateSnapshot_Task("s", None, False, False))
    truth = [(3 * MiB, BLOCK), (10 * MiB, 2 * BLOCK)]
    assert client.allocated(handle, 0, disk.capacityInBytes, BLOCK) == truth
    assert all_changes(vm, snapshot, disk.key, "*", disk.capacityInBytes) == truth
    sim.faults.play(("allocated-blocks-drop-last",))
    assert client.allocated(handle, 0, disk.capacityInBytes, BLOCK) == truth[:1]
    assert all_changes(vm, snapshot, disk.key, "*", disk.capacityInBytes) == truth[:1]
    # the last extent is the disk's, not the window's: a window before it still sees what lies in it
    assert client.allocated(handle, 0, 4 * MiB, BLOCK) == truth[:1]
