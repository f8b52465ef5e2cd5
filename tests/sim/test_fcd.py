"""First Class Disks through vCenter's VStorageObjectManager and VirtualMachine.AttachDisk/DetachDisk.

Everything goes through pyVmomi; the only host access is reading disk files and, while no VM holds an
FCD and it has no snapshot (its top is then the flat base), writing bytes into it to check that
snapshots and their deletion keep data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyVmomi import VmomiSupport, vim, vmodl

from conformance.sim.instance import Simulator
from conformance.sim.storage.vmdk import VirtualDiskFile
from tests.sim.conftest import find, wait

MiB = 1024 * 1024
PATTERN = bytes(range(256)) * 256  # 64 KiB


def host_path(sim: Simulator, ds_path: str) -> Path:
    name, rest = ds_path[1:].split("] ", 1)
    return sim.state_dir / "datastores" / name / rest


def datastore(content: Any, name: str = "vmfs-01") -> Any:
    return find(content, vim.Datastore, name)


def create(
    content: Any, name: str = "fcd-a", mb: int = 64, provisioning: str = "thin", ds: str = "vmfs-01", keep: bool = True
) -> Any:
    spec = vim.vslm.CreateSpec(
        name=name,
        capacityInMB=mb,
        keepAfterDeleteVm=keep,
        backingSpec=vim.vslm.CreateSpec.DiskFileBackingSpec(
            datastore=datastore(content, ds), provisioningType=provisioning
        ),
    )
    return wait(content.vStorageObjectManager.CreateDisk_Task(spec))


def retrieve(content: Any, obj: Any, ds: str = "vmfs-01") -> Any:
    return content.vStorageObjectManager.RetrieveVStorageObject(obj.config.id, datastore(content, ds))


def fcd_devices(vm: Any) -> list[Any]:
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk) and d.vDiskId]


def test_manager_is_vcenters_vstorage_object_manager(content: Any) -> None:
    manager = content.vStorageObjectManager
    assert isinstance(manager, vim.vslm.vcenter.VStorageObjectManager)
    assert VmomiSupport.GetWsdlName(type(manager)) == "VcenterVStorageObjectManager"


def test_create_thin_disk_under_fcd_folder(sim: Simulator, content: Any) -> None:
    free_before = datastore(content).summary.freeSpace
    obj = create(content, "data-disk", 64)
    config = obj.config
    assert isinstance(obj, vim.vslm.VStorageObject) and config.id.id
    assert config.name == "data-disk" and config.capacityInMB == 64
    assert config.consumptionType == ["disk"] and config.keepAfterDeleteVm is True
    assert config.changedBlockTrackingEnabled is False and config.createTime is not None
    backing = config.backing
    assert isinstance(backing, vim.vslm.BaseConfigInfo.DiskFileBackingInfo)
    assert backing.datastore == datastore(content) and backing.provisioningType == "thin"
    assert backing.filePath.startswith("[vmfs-01] fcd/") and backing.filePath.endswith(".vmdk")
    path = host_path(sim, backing.filePath)
    assert path.exists() and 'ddb.thinProvisioned = "1"' in path.read_text()
    with VirtualDiskFile.open(path) as disk:
        assert disk.capacity == 64 * MiB and disk.provisioning == "thin"
        assert disk.host_bytes() < MiB
    assert datastore(content).summary.freeSpace == free_before


def test_eager_zeroed_thick_disk_reserves_its_capacity_until_deleted(content: Any) -> None:
    free_before = datastore(content).summary.freeSpace
    obj = create(content, "thick", 32, "eagerZeroedThick")
    assert obj.config.backing.provisioningType == "eagerZeroedThick"
    assert datastore(content).summary.freeSpace == free_before - 32 * MiB
    wait(content.vStorageObjectManager.DeleteVStorageObject_Task(obj.config.id, datastore(content)))
    assert datastore(content).summary.freeSpace == free_before


def test_create_refuses_a_non_positive_capacity(content: Any) -> None:
    with pytest.raises(vmodl.fault.InvalidArgument):
        create(content, "empty", 0)


def test_retrieve_and_list_by_datastore(content: Any) -> None:
    manager = content.vStorageObjectManager
    a = create(content, "a")
    b = create(content, "b", ds="nfs-01")
    again = retrieve(content, a)
    assert again.config.id.id == a.config.id.id and again.config.name == "a"
    assert again.config.backing.filePath == a.config.backing.filePath
    assert [i.id for i in manager.ListVStorageObject(datastore(content))] == [a.config.id.id]
    assert [i.id for i in manager.ListVStorageObject(datastore(content, "nfs-01"))] == [b.config.id.id]
    with pytest.raises(vim.fault.NotFound):
        manager.RetrieveVStorageObject(a.config.id, datastore(content, "nfs-01"))
    manager.RenameVStorageObject(a.config.id, datastore(content), "renamed")
    assert retrieve(content, a).config.name == "renamed"


def test_unknown_id_is_not_found(content: Any, vm_named: Any) -> None:
    manager = content.vStorageObjectManager
    ds = datastore(content)
    unknown = vim.vslm.ID(id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(vim.fault.NotFound):
        manager.RetrieveVStorageObject(unknown, ds)
    with pytest.raises(vim.fault.NotFound):
        manager.RetrieveSnapshotInfo(unknown, ds)
    with pytest.raises(vim.fault.NotFound):
        wait(manager.DeleteVStorageObject_Task(unknown, ds))
    with pytest.raises(vim.fault.NotFound):
        wait(manager.VStorageObjectCreateSnapshot_Task(unknown, ds, "x"))
    with pytest.raises(vim.fault.NotFound):
        wait(vm_named("target-vmfs").AttachDisk_Task(unknown, ds))
    with pytest.raises(vim.fault.NotFound):
        wait(vm_named("target-vmfs").DetachDisk_Task(unknown))
    obj = create(content)
    with pytest.raises(vim.fault.NotFound):
        wait(manager.DeleteSnapshot_Task(obj.config.id, ds, unknown))


def test_snapshots_freeze_data_and_deleting_them_consolidates(sim: Simulator, content: Any) -> None:
    manager = content.vStorageObjectManager
    ds = datastore(content)
    obj = create(content)
    base = obj.config.backing.filePath
    with VirtualDiskFile.open(host_path(sim, base)) as disk:  # no VM holds it and it has no snapshot
        disk.write(MiB, PATTERN)
    first = wait(manager.VStorageObjectCreateSnapshot_Task(obj.config.id, ds, "before upgrade"))
    second = wait(manager.VStorageObjectCreateSnapshot_Task(obj.config.id, ds, "after upgrade"))
    assert isinstance(first, vim.vslm.ID) and first.id != second.id
    snaps = manager.RetrieveSnapshotInfo(obj.config.id, ds).snapshots
    assert [(s.id.id, s.description) for s in snaps] == [(first.id, "before upgrade"), (second.id, "after upgrade")]
    backing = retrieve(content, obj).config.backing
    middle = backing.parent.filePath
    assert backing.filePath.endswith("-000002.vmdk") and middle.endswith("-000001.vmdk")
    assert backing.parent.parent.filePath == base
    with VirtualDiskFile.open(host_path(sim, backing.filePath)) as top:
        assert len(top.chain()) == 3 and top.read(MiB, len(PATTERN)) == PATTERN

    wait(manager.DeleteSnapshot_Task(obj.config.id, ds, first))
    assert [s.id.id for s in manager.RetrieveSnapshotInfo(obj.config.id, ds).snapshots] == [second.id]
    backing = retrieve(content, obj).config.backing
    assert backing.parent.filePath == base and backing.parent.parent is None
    assert not host_path(sim, middle).exists()

    wait(manager.DeleteSnapshot_Task(obj.config.id, ds, second))
    assert not manager.RetrieveSnapshotInfo(obj.config.id, ds).snapshots
    backing = retrieve(content, obj).config.backing
    assert backing.filePath == base and backing.parent is None
    assert sorted(p.name for p in host_path(sim, base).parent.iterdir()) == sorted(
        [Path(base).name, Path(base).name.replace(".vmdk", "-flat.vmdk")]
    )
    with VirtualDiskFile.open(host_path(sim, base)) as disk:
        assert disk.read(MiB, len(PATTERN)) == PATTERN


def test_attach_reports_vdiskid_and_blocks_delete_until_detached(sim: Simulator, content: Any, vm_named: Any) -> None:
    manager = content.vStorageObjectManager
    ds = datastore(content)
    vm = vm_named("target-vmfs")
    obj = create(content)
    base = obj.config.backing.filePath
    wait(vm.AttachDisk_Task(obj.config.id, ds, unitNumber=3))
    [device] = fcd_devices(vm)
    assert device.vDiskId.id == obj.config.id.id and device.unitNumber == 3
    assert device.backing.fileName == base and device.capacityInBytes == 64 * MiB
    assert retrieve(content, obj).config.consumerId[0].id == vm.config.instanceUuid

    with pytest.raises(vim.fault.InvalidState):
        wait(manager.DeleteVStorageObject_Task(obj.config.id, ds))
    with pytest.raises(vim.fault.InvalidState):
        wait(vm_named("target-nfs").AttachDisk_Task(obj.config.id, ds))

    wait(vm.DetachDisk_Task(obj.config.id))
    assert not fcd_devices(vm)
    assert not retrieve(content, obj).config.consumerId
    wait(manager.DeleteVStorageObject_Task(obj.config.id, ds))
    assert not host_path(sim, base).exists()
    assert not manager.ListVStorageObject(ds)
    with pytest.raises(vim.fault.NotFound):
        retrieve(content, obj)


def test_vm_snapshot_gives_the_fcd_a_delta_that_removal_consolidates(
    sim: Simulator, content: Any, vm_named: Any
) -> None:
    ds = datastore(content)
    vm = vm_named("target-vmfs")
    obj = create(content)
    base = obj.config.backing.filePath
    wait(vm.AttachDisk_Task(obj.config.id, ds))
    snapshot = wait(vm.CreateSnapshot_Task("s1", None, False, False))
    [device] = fcd_devices(vm)
    delta = device.backing.fileName
    assert delta.startswith("[vmfs-01] fcd/") and delta.endswith("-000001.vmdk")
    assert device.backing.parent.fileName == base
    assert retrieve(content, obj).config.backing.filePath == delta
    with pytest.raises(vim.fault.InvalidState):  # the snapshot still includes the disk
        wait(vm.DetachDisk_Task(obj.config.id))

    wait(snapshot.RemoveSnapshot_Task(False))
    [device] = fcd_devices(vm)
    assert device.backing.fileName == base and device.backing.parent is None
    assert vm.runtime.consolidationNeeded is False
    assert not host_path(sim, delta).exists()
    wait(vm.DetachDisk_Task(obj.config.id))
    assert retrieve(content, obj).config.backing.filePath == base


def test_fcd_snapshot_of_an_attached_disk_survives_vm_snapshot_consolidation(
    sim: Simulator, content: Any, vm_named: Any
) -> None:
    manager = content.vStorageObjectManager
    ds = datastore(content)
    vm = vm_named("target-vmfs")
    obj = create(content)
    base = obj.config.backing.filePath
    wait(vm.AttachDisk_Task(obj.config.id, ds))
    fcd_snap = wait(manager.VStorageObjectCreateSnapshot_Task(obj.config.id, ds, "backup"))
    [device] = fcd_devices(vm)
    fcd_delta = device.backing.fileName
    assert device.backing.parent.fileName == base

    vm_snap = wait(vm.CreateSnapshot_Task("s1", None, False, False))
    wait(vm_snap.RemoveSnapshot_Task(False))
    [device] = fcd_devices(vm)
    assert device.backing.fileName == fcd_delta and device.backing.parent.fileName == base
    assert host_path(sim, base).exists()
    assert [s.id.id for s in manager.RetrieveSnapshotInfo(obj.config.id, ds).snapshots] == [fcd_snap.id]

    wait(manager.DeleteSnapshot_Task(obj.config.id, ds, fcd_snap))
    [device] = fcd_devices(vm)
    assert device.backing.fileName == base and device.backing.parent is None
    assert not host_path(sim, fcd_delta).exists()
    wait(vm.DetachDisk_Task(obj.config.id))
    wait(manager.DeleteVStorageObject_Task(obj.config.id, ds))
    assert not host_path(sim, base).exists()


def test_destroying_the_vm_keeps_the_attached_fcd(sim: Simulator, content: Any, vm_named: Any) -> None:
    ds = datastore(content)
    vm = vm_named("target-vmfs")
    obj = create(content, keep=True)
    base = obj.config.backing.filePath
    wait(vm.AttachDisk_Task(obj.config.id, ds))
    wait(vm.PowerOffVM_Task())
    wait(vm.Destroy_Task())
    config = retrieve(content, obj).config
    assert config.backing.filePath == base and not config.consumerId
    assert host_path(sim, base).exists()
    wait(content.vStorageObjectManager.DeleteVStorageObject_Task(obj.config.id, ds))
    assert not host_path(sim, base).exists()
