"""Host maintenance mode: a real entering phase, events in order, and snapshot operations refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from tests.sim.conftest import find, wait


def host_events(content: Any, host: Any) -> list[str]:
    spec = vim.event.EventFilterSpec(entity=vim.event.EventFilterSpec.ByEntity(entity=host, recursion="self"))
    return [
        type(e).__name__.split(".")[-1]
        for e in content.eventManager.QueryEvents(spec)
        if "Maintenance" in type(e).__name__
    ]


def test_entering_phase_comes_before_in_maintenance(content: Any, sim: Simulator) -> None:
    sim.faults.update(maintenance_entering_seconds=0.8)
    host = find(content, vim.HostSystem, "esx-01.sim.local")
    task = host.EnterMaintenanceMode_Task(0)
    time.sleep(0.3)
    assert task.info.state == "running"
    assert host.runtime.inMaintenanceMode is False
    assert host_events(content, host) == ["EnteringMaintenanceModeEvent"]
    WaitForTask(task)
    assert host.runtime.inMaintenanceMode is True
    assert host_events(content, host) == ["EnteringMaintenanceModeEvent", "EnteredMaintenanceModeEvent"]
    wait(host.ExitMaintenanceMode_Task(0))
    assert host.runtime.inMaintenanceMode is False
    assert host_events(content, host)[-1] == "ExitMaintenanceModeEvent"


def test_snapshot_operations_are_refused_while_entering_and_in_maintenance(
    content: Any, sim: Simulator, vm_named: Any
) -> None:
    sim.faults.update(maintenance_entering_seconds=0.6)
    vm = vm_named("target-nfs")
    vm_snapshot = wait(vm.CreateSnapshot_Task("before", None, False, False))
    wait(vm.PowerOffVM_Task())  # a powered-off VM stays on its host
    host = vm.runtime.host
    task = host.EnterMaintenanceMode_Task(0)
    time.sleep(0.2)
    with pytest.raises(vim.fault.InvalidHostState, match="entering maintenance mode"):
        wait(vm.CreateSnapshot_Task("during", None, False, False))
    WaitForTask(task)
    with pytest.raises(vim.fault.InvalidHostState, match="in maintenance mode"):
        wait(vm_snapshot.RemoveSnapshot_Task(False))
    wait(host.ExitMaintenanceMode_Task(0))
    wait(vm_snapshot.RemoveSnapshot_Task(False))
    assert vm.snapshot is None


def test_powered_on_vms_are_migrated_off_during_the_entering_phase(content: Any, sim: Simulator, vm_named: Any) -> None:
    sim.faults.update(maintenance_entering_seconds=0.2)
    vm = vm_named("target-vmfs")
    host = vm.runtime.host
    wait(host.EnterMaintenanceMode_Task(0))
    assert vm.runtime.host != host
    wait(vm.CreateSnapshot_Task("after-migration", None, False, False))


def test_a_proxy_with_a_hot_added_disk_blocks_entry_until_timeout(content: Any, sim: Simulator, vm_named: Any) -> None:
    sim.faults.update(maintenance_entering_seconds=0.1)
    target, proxy = vm_named("target-vmfs"), vm_named("proxy-rhel83")
    snapshot = wait(target.CreateSnapshot_Task("backup", None, False, False))
    frozen = next(d for d in snapshot.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    assert isinstance(frozen.backing, vim.vm.device.VirtualDisk.FlatVer2BackingInfo)
    hot_add = vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=1000,
            unitNumber=-1,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName=frozen.backing.fileName, diskMode="independent_nonpersistent"
            ),
        ),
    )
    wait(proxy.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[hot_add])))
    with pytest.raises(vim.fault.Timedout, match="hot-added disk"):
        wait(proxy.runtime.host.EnterMaintenanceMode_Task(1))
    assert proxy.runtime.host.runtime.inMaintenanceMode is False
