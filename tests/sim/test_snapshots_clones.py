"""Snapshots give delta disks and consolidate on removal; clones are full copies or delta disks; HotAdd attaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.instance import Simulator
from tests.sim.conftest import wait


def disks(entity: Any) -> list[Any]:
    config = entity.config
    return [d for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def host_path(sim: Simulator, ds_path: str) -> Path:
    name, rest = ds_path[1:].split("] ", 1)
    return sim.state_dir / "datastores" / name / rest


def vm_files(sim: Simulator, vm: Any) -> set[str]:
    return {f.name for f in vm.layoutEx.file}


def test_snapshot_gives_each_disk_a_delta_whose_parent_is_the_frozen_disk(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    base = disks(vm)[0].backing.fileName
    snapshot = wait(vm.CreateSnapshot_Task("s1", "first", False, False))
    current = disks(vm)[0].backing
    assert current.fileName == "[vmfs-01] target-vmfs/target-vmfs-000001.vmdk"
    assert current.parent.fileName == base
    assert disks(snapshot)[0].backing.fileName == base
    assert vm.snapshot.currentSnapshot == snapshot
    assert [t.name for t in vm.snapshot.rootSnapshotList] == ["s1"]
    assert host_path(sim, current.fileName).exists()


def test_removing_the_snapshot_consolidates_and_leaves_no_delta(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    snapshot = wait(vm.CreateSnapshot_Task("s1", None, False, False))
    delta = disks(vm)[0].backing.fileName
    wait(snapshot.RemoveSnapshot_Task(False))
    assert vm.snapshot is None and vm.runtime.consolidationNeeded is False
    assert disks(vm)[0].backing.parent is None
    assert not host_path(sim, delta).exists()
    assert not any("-0000" in name for name in vm_files(sim, vm))


def test_removal_without_consolidation_flags_consolidation_needed(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-nfs")
    snapshot = wait(vm.CreateSnapshot_Task("s1", None, False, False))
    wait(snapshot.RemoveSnapshot_Task(False, consolidate=False))
    assert vm.snapshot is None and vm.runtime.consolidationNeeded is True
    wait(vm.ConsolidateVMDisks_Task())
    assert vm.runtime.consolidationNeeded is False and disks(vm)[0].backing.parent is None


def test_removing_a_middle_snapshot_keeps_the_chain_consistent(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-nfs41")
    first = wait(vm.CreateSnapshot_Task("s1", None, False, False))
    second = wait(vm.CreateSnapshot_Task("s2", None, False, False))
    wait(first.RemoveSnapshot_Task(False))
    assert [t.name for t in vm.snapshot.rootSnapshotList] == ["s2"]
    chain = []
    backing = disks(vm)[0].backing
    while backing is not None:
        chain.append(backing.fileName)
        backing = backing.parent
    assert len(chain) == 2 and disks(second)[0].backing.fileName == chain[1]
    wait(vm.RemoveAllSnapshots_Task())
    assert vm.snapshot is None and disks(vm)[0].backing.parent is None


def test_revert_to_snapshot_gives_a_fresh_delta_over_the_frozen_disk(vm_named: Any) -> None:
    vm = vm_named("target-vsan")
    snapshot = wait(vm.CreateSnapshot_Task("s1", None, False, False))
    wait(vm.CreateSnapshot_Task("s2", None, False, False))
    wait(snapshot.RevertToSnapshot_Task())
    assert vm.snapshot.currentSnapshot == snapshot
    assert disks(vm)[0].backing.parent.fileName == disks(snapshot)[0].backing.fileName
    assert vm.runtime.powerState == "poweredOff"


def test_full_clone_copies_the_disk_and_linked_clone_is_a_delta(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    snapshot = wait(vm.CreateSnapshot_Task("clone-source", None, False, False))
    full = wait(vm.CloneVM_Task(vm.parent, "full-clone", vim.vm.CloneSpec(location=vim.vm.RelocateSpec())))
    assert disks(full)[0].backing.parent is None
    assert disks(full)[0].backing.fileName == "[vmfs-01] full-clone/full-clone.vmdk"
    linked_spec = vim.vm.CloneSpec(
        snapshot=snapshot, location=vim.vm.RelocateSpec(diskMoveType="createNewChildDiskBacking")
    )
    linked = wait(vm.CloneVM_Task(vm.parent, "linked-clone", linked_spec))
    assert disks(linked)[0].backing.parent.fileName == disks(snapshot)[0].backing.fileName
    # the snapshot's disk is shared: removing the snapshot must not merge or delete it
    wait(snapshot.RemoveSnapshot_Task(False))
    assert host_path(sim, disks(linked)[0].backing.parent.fileName).exists()
    with pytest.raises(vim.fault.DuplicateName):
        vm.CloneVM_Task(vm.parent, "linked-clone", linked_spec)


def test_linked_clone_of_a_linked_clone_on_vvol(vm_named: Any) -> None:
    source = vm_named("target-vvol")

    def spec(snap):
        return vim.vm.CloneSpec(
            snapshot=snap,
            location=vim.vm.RelocateSpec(diskMoveType="createNewChildDiskBacking"),
        )

    first = wait(
        source.CloneVM_Task(source.parent, "lc-1", spec(wait(source.CreateSnapshot_Task("a", None, False, False))))
    )
    second = wait(
        first.CloneVM_Task(first.parent, "lc-2", spec(wait(first.CreateSnapshot_Task("b", None, False, False))))
    )
    chain = []
    backing = disks(second)[0].backing
    while backing is not None:
        chain.append(backing.fileName.split("]")[1].strip().split("/")[0])
        backing = backing.parent
    assert chain == ["lc-2", "lc-1", "target-vvol"]


def test_destroying_a_linked_clone_parent_keeps_the_shared_disk(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-nfs")
    snapshot = wait(vm.CreateSnapshot_Task("s", None, False, False))
    linked = wait(
        vm.CloneVM_Task(
            vm.parent,
            "lc",
            vim.vm.CloneSpec(snapshot=snapshot, location=vim.vm.RelocateSpec(diskMoveType="createNewChildDiskBacking")),
        )
    )
    wait(linked.Destroy_Task())
    assert not (sim.state_dir / "datastores" / "nfs-01" / "lc").exists()
    assert host_path(sim, disks(snapshot)[0].backing.fileName).exists()


def hot_add_spec(file_name: str) -> Any:
    return vim.vm.device.VirtualDeviceSpec(
        operation="add",
        device=vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=1000,
            unitNumber=-1,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName=file_name, diskMode="independent_nonpersistent"
            ),
        ),
    )


def test_hot_add_attaches_the_snapshot_disk_and_blocks_consolidation_until_released(
    sim: Simulator, vm_named: Any
) -> None:
    target, proxy = vm_named("target-vmfs"), vm_named("proxy-rhel83")
    snapshot = wait(target.CreateSnapshot_Task("backup", None, False, False))
    frozen = disks(snapshot)[0].backing.fileName
    wait(proxy.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[hot_add_spec(frozen)])))
    attached = [d for d in disks(proxy) if d.backing.fileName == frozen]
    assert len(attached) == 1
    # removing the snapshot while the disk is still hot-added: the delta cannot be merged (locked)
    wait(snapshot.RemoveSnapshot_Task(False))
    assert target.runtime.consolidationNeeded is True
    wait(
        proxy.ReconfigVM_Task(
            vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=attached[0])])
        )
    )
    assert host_path(sim, frozen).exists()
    wait(target.ConsolidateVMDisks_Task())
    assert target.runtime.consolidationNeeded is False and disks(target)[0].backing.parent is None


def test_relocating_a_proxy_to_vsan_moves_its_disks(sim: Simulator, content: Any, vm_named: Any) -> None:
    proxy = vm_named("proxy-centos83")
    vsan = next(
        ds
        for ds in content.viewManager.CreateContainerView(content.rootFolder, [vim.Datastore], True).view
        if ds.summary.type == "vsan"
    )
    wait(proxy.RelocateVM_Task(vim.vm.RelocateSpec(datastore=vsan)))
    assert [ds.summary.type for ds in proxy.datastore] == ["vsan"]
    assert disks(proxy)[0].backing.fileName.startswith("[vsanDatastore] proxy-centos83/")
    assert not (sim.state_dir / "datastores" / "vmfs-01" / "proxy-centos83").exists()


def test_adding_a_disk_larger_than_free_space_fails_with_no_disk_space(sim: Simulator, vm_named: Any) -> None:
    vm = vm_named("target-nfs")
    sim.set_datastore_free_space("nfs-01", 2**20)
    thick = vim.vm.device.VirtualDeviceSpec(
        operation="add",
        fileOperation="create",
        device=vim.vm.device.VirtualDisk(
            key=-1,
            capacityInBytes=2**24,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=False),
        ),
    )
    with pytest.raises(vim.fault.NoDiskSpace):
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[thick])))
    assert len(disks(vm)) == 1
