"""Tasks move queued -> running -> success/error with typed faults; events are recorded and queryable."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from tests.sim.conftest import find, wait


def test_a_task_is_observable_running_then_successful(content: Any, sim: Simulator) -> None:
    sim.faults.update(maintenance_entering_seconds=0.6)
    host = find(content, vim.HostSystem, "esx-03.sim.local")
    task = host.EnterMaintenanceMode_Task(0)
    assert task.info.state in ("queued", "running")
    assert task.info.name.info.name == "EnterMaintenanceMode"
    assert task.info.entity == host and task.info.descriptionId == "HostSystem.enterMaintenanceMode"
    assert task in content.taskManager.recentTask and task in host.recentTask
    time.sleep(0.2)
    assert task.info.state == "running"
    WaitForTask(task)
    assert task.info.state == "success" and task.info.completeTime >= task.info.startTime


def test_a_failed_task_carries_a_typed_fault(content: Any, vm_named: Any) -> None:
    vm = vm_named("target-nfs")
    wait(vm.PowerOffVM_Task())
    task = vm.PowerOffVM_Task()
    with pytest.raises(vim.fault.InvalidPowerState):
        WaitForTask(task)
    assert task.info.state == "error" and isinstance(task.info.error, vim.fault.InvalidPowerState)


def test_a_task_result_can_be_a_managed_object(vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    snapshot = wait(vm.CreateSnapshot_Task("result", None, False, False))
    assert isinstance(snapshot, vim.vm.Snapshot) and snapshot.config.name == "target-vmfs"


def test_events_are_filtered_by_entity_and_type(content: Any, sim: Simulator, vm_named: Any) -> None:
    sim.faults.update(maintenance_entering_seconds=0.05)
    vm = vm_named("target-vvol")
    wait(vm.PowerOffVM_Task())
    wait(vm.PowerOnVM_Task())
    spec = vim.event.EventFilterSpec(entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"))
    kinds = [type(e).__name__.split(".")[-1] for e in content.eventManager.QueryEvents(spec)]
    assert kinds == ["VmPoweredOffEvent", "VmPoweredOnEvent"]
    by_type = vim.event.EventFilterSpec(eventTypeId=["VmPoweredOnEvent"])
    assert all(isinstance(e, vim.event.VmPoweredOnEvent) for e in content.eventManager.QueryEvents(by_type))
    dc = find(content, vim.Datacenter, "dc1")
    everything = vim.event.EventFilterSpec(entity=vim.event.EventFilterSpec.ByEntity(entity=dc, recursion="all"))
    assert len(content.eventManager.QueryEvents(everything)) >= 2
