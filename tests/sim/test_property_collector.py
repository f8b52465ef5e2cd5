"""PropertyCollector idioms clients use: container views, traversal specs, paging, nested paths, updates."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from tests.sim.conftest import wait

PC = vmodl.query.PropertyCollector


def vm_view_spec(content: Any, paths: list[str]) -> Any:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    traverse = PC.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=paths)],
    )


def test_container_view_traversal_returns_every_vm_with_nested_paths(content: Any) -> None:
    result = content.propertyCollector.RetrievePropertiesEx(
        [vm_view_spec(content, ["name", "runtime.powerState", "summary.config.numVirtualDisks"])], PC.RetrieveOptions()
    )
    rows = {o.obj._moId: {p.name: p.val for p in o.propSet} for o in result.objects}
    assert len(rows) == 12
    assert all(
        r["runtime.powerState"] == "poweredOn" and r["summary.config.numVirtualDisks"] == 1 for r in rows.values()
    )
    assert "target-vmfs" in {r["name"] for r in rows.values()}


def test_paging_with_max_objects_and_continue(content: Any) -> None:
    pc = content.propertyCollector
    page = pc.RetrievePropertiesEx([vm_view_spec(content, ["name"])], PC.RetrieveOptions(maxObjects=4))
    names = [o.propSet[0].val for o in page.objects]
    assert len(names) == 4 and page.token
    while page.token:
        page = pc.ContinueRetrievePropertiesEx(page.token)
        names.extend(o.propSet[0].val for o in page.objects)
    assert len(names) == len(set(names)) == 12
    with pytest.raises(vmodl.fault.InvalidArgument):
        pc.ContinueRetrievePropertiesEx("no-such-token")


def test_classic_folder_traversal_finds_hosts_through_datacenters_and_clusters(content: Any) -> None:
    visit_folders = PC.TraversalSpec(
        name="visitFolders",
        type=vim.Folder,
        path="childEntity",
        selectSet=[
            PC.SelectionSpec(name="visitFolders"),
            PC.SelectionSpec(name="dcToHf"),
            PC.SelectionSpec(name="crToH"),
        ],
    )
    dc_to_hf = PC.TraversalSpec(
        name="dcToHf", type=vim.Datacenter, path="hostFolder", selectSet=[PC.SelectionSpec(name="visitFolders")]
    )
    cr_to_h = PC.TraversalSpec(name="crToH", type=vim.ComputeResource, path="host")
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=content.rootFolder, selectSet=[visit_folders, dc_to_hf, cr_to_h])],
        propSet=[PC.PropertySpec(type=vim.HostSystem, pathSet=["name", "runtime.inMaintenanceMode"])],
    )
    hosts = content.propertyCollector.RetrieveContents([spec])
    assert sorted(o.propSet[0].val for o in hosts if o.propSet[0].name == "name") == [
        "esx-01.sim.local",
        "esx-02.sim.local",
        "esx-03.sim.local",
    ]


def test_retrieving_a_missing_object_raises(content: Any, si: Any) -> None:
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=vim.VirtualMachine("vm-0", si._stub))],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["name"])],
    )
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        content.propertyCollector.RetrievePropertiesEx([spec], PC.RetrieveOptions())


def test_wait_for_updates_ex_reports_enter_then_changes(content: Any, vm_named: Any) -> None:
    vm = vm_named("target-nfs")
    pc = content.propertyCollector
    spec = PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=vm)],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["name", "runtime.powerState"])],
    )
    flt = pc.CreateFilter(spec, True)
    first = pc.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5))
    assert first.filterSet[0].objectSet[0].kind == "enter"
    assert pc.WaitForUpdatesEx(first.version, PC.WaitOptions(maxWaitSeconds=0)) is None
    wait(vm.PowerOffVM_Task())
    update = pc.WaitForUpdatesEx(first.version, PC.WaitOptions(maxWaitSeconds=5))
    changes = {c.name: c.val for c in update.filterSet[0].objectSet[0].changeSet}
    assert update.filterSet[0].objectSet[0].kind == "modify" and changes == {"runtime.powerState": "poweredOff"}
    flt.DestroyPropertyFilter()


def test_concurrent_waiters_each_get_what_they_have_not_seen(content: Any, vm_named: Any) -> None:
    vm = vm_named("target-nfs41")
    pc = content.propertyCollector
    pc.CreateFilter(
        PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=vm)],
            propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"])],
        ),
        True,
    )
    base = pc.WaitForUpdatesEx("", PC.WaitOptions(maxWaitSeconds=5)).version
    seen: list[Any] = []

    def waiter() -> None:
        seen.append(pc.WaitForUpdatesEx(base, PC.WaitOptions(maxWaitSeconds=10)))

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    wait(vm.PowerOffVM_Task())
    for t in threads:
        t.join(15)
    assert len(seen) == 2
    for update in seen:
        assert update.filterSet[0].objectSet[0].changeSet[0].val == "poweredOff"
