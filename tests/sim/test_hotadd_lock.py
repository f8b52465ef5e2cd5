"""The lock a hot-added disk holds (D5): ESXi refuses a second HotAdd of a disk whose chain a hot-added disk
holds, with the file-locked fault, until the holder is hot-removed; with the server fault
hotadd-lock-survives-remove the lock outlives the hot-remove."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.vsphere.connection import Endpoint, connect, disconnect
from tests.sim.conftest import find, wait
from tests.sim.test_dataplane import disks, frozen_path, hot_add


def hot_remove(proxy: Any, file_name: str) -> None:
    device = next(d for d in disks(proxy.config) if d.backing.fileName == file_name)
    spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)])
    wait(proxy.ReconfigVM_Task(spec))


def locked(call: Any) -> str:
    with pytest.raises(vim.fault.FileLocked) as info:
        call()
    return str(info.value.msg)  # type: ignore[attr-defined]  # pyVmomi's faults are dynamic


def test_a_hot_added_disk_refuses_another_hot_add_until_it_is_removed(vm_named: Any) -> None:
    target, proxy, other = vm_named("target-vmfs"), vm_named("proxy-rhel83"), vm_named("proxy-centos83")
    first = wait(target.CreateSnapshot_Task("killed-backup", None, False, False))
    held = frozen_path(first)
    hot_add(proxy, held)
    assert "since it is locked" in locked(lambda: hot_add(other, held))  # the same disk on another proxy
    retry = wait(target.CreateSnapshot_Task("retry", None, False, False))
    message = locked(lambda: hot_add(proxy, frozen_path(retry)))  # a newer snapshot's disk depends on it
    assert f"Unable to access file {held} since it is locked" in message
    hot_remove(proxy, held)
    hot_add(proxy, frozen_path(retry))
    assert [d.backing.fileName for d in disks(proxy.config)][-1] == frozen_path(retry)


def test_disks_of_different_chains_hot_add_side_by_side(vm_named: Any) -> None:
    proxy = vm_named("proxy-rhel83")
    for name in ("target-vmfs", "target-nfs"):
        snapshot = wait(vm_named(name).CreateSnapshot_Task("backup", None, False, False))
        hot_add(proxy, frozen_path(snapshot))
    assert len(disks(proxy.config)) == 3  # its own disk and both hot-added ones


@pytest.fixture
def stale_lock_sim() -> Iterator[Any]:
    with Simulator(sim_faults=("hotadd-lock-survives-remove",)) as sim:
        si = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
        yield si.RetrieveContent()
        disconnect(si)


def test_with_the_fault_the_lock_survives_the_hot_remove(stale_lock_sim: Any) -> None:
    target = find(stale_lock_sim, vim.VirtualMachine, "target-vmfs")
    proxy = find(stale_lock_sim, vim.VirtualMachine, "proxy-rhel83")
    snapshot = wait(target.CreateSnapshot_Task("killed-backup", None, False, False))
    hot_add(proxy, frozen_path(snapshot))
    hot_remove(proxy, frozen_path(snapshot))
    assert "since it is locked" in locked(lambda: hot_add(proxy, frozen_path(snapshot)))
