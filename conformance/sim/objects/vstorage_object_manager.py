"""First Class Disks (FCD, "improved virtual disks") as vCenter's VcenterVStorageObjectManager.

An FCD is a VMDK chain under the datastore folder `fcd/` with an identity of its own (a vim.vslm.ID),
independent of any VM. Its snapshots work like VM snapshots: each freezes the link that was on top and
puts a new delta over it. While attached to a VM (VirtualMachine.AttachDisk_Task, vm_fcd.py) the VM's
DiskState holds the live top, so VM snapshots stack their deltas on the FCD chain; the links an FCD
snapshot froze are pinned so VM operations never merge or delete them (`links_used_elsewhere`, `disk_files`).
"""

from __future__ import annotations

import contextvars
import datetime
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.datastore import DatastoreImpl
from conformance.sim.objects.disks import ctk_path, next_delta_path
from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method
from conformance.sim.storage.space import DiskFullError
from conformance.sim.storage.vmdk import VirtualDiskFile

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext
    from conformance.sim.objects.disks import DiskState
    from conformance.sim.objects.task import TaskImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

MiB = 1024 * 1024
FCD_FOLDER = "fcd"
#: API provisioningType -> VirtualDiskFile provisioning
PROVISIONING = {"thin": "thin", "lazyZeroedThick": "thick", "eagerZeroedThick": "eagerZeroedThick"}

#: id of an FCD whose links `disk_files()` leaves out, to learn what *other* VMs and FCDs pin
_hidden_fcd: contextvars.ContextVar[str | None] = contextvars.ContextVar("hidden_fcd", default=None)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class FcdSnapshot:
    """One FCD snapshot: the link it froze stays read-only while the snapshot exists."""

    id: str
    description: str
    create_time: datetime.datetime
    frozen: VirtualDiskFile


@dataclass
class FirstClassDisk:
    """State of one FCD. `file` is its top while detached; while attached the VM's DiskState holds it."""

    id: str
    name: str
    datastore: DatastoreImpl
    provisioning: str  # API value: thin, lazyZeroedThick, eagerZeroedThick
    keep_after_delete_vm: bool
    file: VirtualDiskFile
    create_time: datetime.datetime = field(default_factory=_now)
    snapshots: list[FcdSnapshot] = field(default_factory=list)
    cbt_enabled: bool = False
    attachment: tuple[VirtualMachineImpl, DiskState] | None = None

    def holder(self) -> tuple[VirtualMachineImpl, DiskState] | None:
        """The VM and device holding the disk now; a VM destroyed or a device removed hands it back."""
        if self.attachment is None:
            return None
        vm, disk = self.attachment
        if vm.registry.find(vm.moid) is not vm or not any(d is disk for d in vm.disks):
            self.release(disk)
        return self.attachment

    def release(self, disk: DiskState) -> None:
        """Take the disk back from a VM: what the VM wrote (its top link) is the FCD's data now."""
        self.file = disk.file
        self.cbt_enabled = disk.cbt_enabled
        self.attachment = None

    def top(self) -> VirtualDiskFile:
        holder = self.holder()
        return holder[1].file if holder is not None else self.file

    def frozen_paths(self) -> set[Path]:
        """Every link some FCD snapshot reads (the frozen links and their parents)."""
        return {link.path for snap in self.snapshots for link in snap.frozen.chain()}

    def set_top(self, file: VirtualDiskFile) -> None:
        holder = self.holder()
        if holder is not None:
            holder[1].file = file
            holder[0].touch()
        else:
            self.file = file


class VStorageObjectManagerImpl(ManagedObjectImpl):
    """vim.vslm.vcenter.VStorageObjectManager: FCDs by id, their snapshots, and the files they pin."""

    vim_type = vim.vslm.vcenter.VStorageObjectManager
    id_prefix = "VStorageObjectManager"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "VStorageObjectManager")
        self.disks: dict[str, FirstClassDisk] = {}

    # --- lookups and helpers shared with vm_fcd.py ---

    def find_fcd(self, disk_id: Any, datastore: Any) -> FirstClassDisk:
        """The FCD `disk_id` on `datastore`; vim.fault.NotFound if there is none there."""
        key = disk_id.id if isinstance(disk_id, vim.vslm.ID) else str(disk_id)
        fcd = self.disks.get(key)
        ds = self.registry.get(datastore, DatastoreImpl) if datastore is not None else None
        if fcd is None or (ds is not None and fcd.datastore is not ds):
            where = f" on datastore {ds.name}" if ds is not None else ""
            raise vim.fault.NotFound(
                msg=f"The object or item referred to could not be found: virtual storage object {key}{where}"
            )
        return fcd

    def disk_files(self) -> list[VirtualDiskFile]:
        """The top of every FCD and every link its snapshots froze: VM code must keep these chains."""
        hidden = _hidden_fcd.get()
        with self.registry.lock:
            return [
                file
                for fcd in self.disks.values()
                if fcd.id != hidden
                for file in [fcd.top(), *(s.frozen for s in fcd.snapshots)]
            ]

    def used_by_others(self, fcd: FirstClassDisk, vm: VirtualMachineImpl | None) -> tuple[set[Path], set[Path]]:
        """(shared, locked) links that VMs other than `vm`, HotAdd attachments or other FCDs use: what the
        simulator's links_used_elsewhere reports with this FCD itself left out."""
        token = _hidden_fcd.set(fcd.id)
        try:
            shared, locked = self.ctx.links_used_elsewhere(vm)
        finally:
            _hidden_fcd.reset(token)
        return set(shared), set(locked)

    def links_used_elsewhere(self, vm: VirtualMachineImpl, disk: DiskState) -> tuple[set[Path], set[Path]]:
        """SimContext.links_used_elsewhere for an FCD-backed disk of `vm` (used by snapshot.disk_graph).

        The FCD's live chain is the VM's to consolidate like any of its disks; only the links the FCD's own
        snapshots froze count as shared (never merged or deleted), with whatever others use.
        """
        fcd = self.disks.get(disk.fcd_id or "")
        if fcd is None:
            shared, locked = self.ctx.links_used_elsewhere(vm)
            return set(shared), set(locked)
        shared, locked = self.used_by_others(fcd, vm)
        return shared | fcd.frozen_paths(), locked

    def info(self, fcd: FirstClassDisk) -> Any:
        top = fcd.top()
        holder = fcd.holder()
        ds_of = self.ctx.datastore_of

        def parent_info(link: VirtualDiskFile | None) -> Any:
            if link is None:
                return None
            ds = ds_of(link.path)
            return vim.vslm.BaseConfigInfo.FileBackingInfo(
                datastore=ds.ref, filePath=ds.datastore_path(link.path), parent=parent_info(link.parent)
            )

        backing = vim.vslm.BaseConfigInfo.DiskFileBackingInfo(
            datastore=fcd.datastore.ref,
            filePath=ds_of(top.path).datastore_path(top.path),
            provisioningType=fcd.provisioning,
            parent=parent_info(top.parent),
        )
        return vim.vslm.VStorageObject(
            config=vim.vslm.VStorageObject.ConfigInfo(
                id=vim.vslm.ID(id=fcd.id),
                name=fcd.name,
                createTime=fcd.create_time,
                keepAfterDeleteVm=fcd.keep_after_delete_vm,
                relocationDisabled=False,
                nativeSnapshotSupported=False,
                changedBlockTrackingEnabled=holder[1].cbt_enabled if holder is not None else fcd.cbt_enabled,
                backing=backing,
                capacityInMB=top.capacity // MiB,
                consumptionType=["disk"],
                consumerId=[vim.vslm.ID(id=holder[0].instance_uuid)] if holder is not None else [],
            )
        )

    def _task(self, datastore: Any, method: Any, body: Any) -> Any:
        entity = self.registry.find(datastore._moId) if datastore is not None else None
        return self.ctx.task_manager.start(entity if isinstance(entity, DatastoreImpl) else None, method, body).ref

    # --- creation and deletion ---

    @soap_method("CreateDisk_Task")
    def create_disk(self, spec: Any) -> Any:
        backing = spec.backingSpec
        if not isinstance(backing, vim.vslm.CreateSpec.DiskFileBackingSpec):
            raise vmodl.fault.InvalidArgument(
                msg="spec.backingSpec must be a DiskFileBackingSpec", invalidProperty="spec.backingSpec"
            )
        if not spec.name:
            raise vmodl.fault.InvalidArgument(msg="spec.name is required", invalidProperty="spec.name")
        if not spec.capacityInMB or spec.capacityInMB <= 0:
            raise vmodl.fault.InvalidArgument(
                msg="spec.capacityInMB must be positive", invalidProperty="spec.capacityInMB"
            )
        provisioning = backing.provisioningType or "thin"
        if provisioning not in PROVISIONING:
            raise vmodl.fault.InvalidArgument(
                msg=f"unknown provisioningType {provisioning!r}", invalidProperty="spec.backingSpec.provisioningType"
            )
        datastore = self.registry.lookup(backing.datastore)
        if not isinstance(datastore, DatastoreImpl):
            raise vim.fault.InvalidDatastore(msg=f"{backing.datastore} is not a datastore", datastore=backing.datastore)
        wanted_id = spec.id.id if spec.id is not None else None

        def body(task: TaskImpl) -> Any:
            with self.registry.lock:
                fcd_id = wanted_id or str(uuid.uuid4())
                if fcd_id in self.disks:
                    raise vim.fault.AlreadyExists(msg=f"a virtual storage object with id {fcd_id} exists", name=fcd_id)
                folder = datastore.local_path((backing.path or FCD_FOLDER).strip("/"))
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{uuid.uuid4().hex}.vmdk"
                capacity = int(spec.capacityInMB) * MiB
                try:
                    file = VirtualDiskFile.create(path, capacity, PROVISIONING[provisioning], space=datastore.space)
                except DiskFullError as exc:
                    raise vim.fault.NoDiskSpace(
                        msg=f"not enough space on {datastore.name} for a {capacity} byte disk",
                        file=datastore.datastore_path(path),
                        datastore=datastore.name,
                    ) from exc
                fcd = FirstClassDisk(
                    id=fcd_id,
                    name=spec.name,
                    datastore=datastore,
                    provisioning=provisioning,
                    keep_after_delete_vm=bool(spec.keepAfterDeleteVm),
                    file=file,
                )
                self.disks[fcd_id] = fcd
                self.registry.changed()
                return self.info(fcd)

        return self._task(backing.datastore, vim.vslm.vcenter.VStorageObjectManager.CreateDisk, body)

    @soap_method("DeleteVStorageObject_Task")
    def delete_vstorage_object(self, id: Any, datastore: Any) -> Any:
        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                fcd = self.find_fcd(id, datastore)
                holder = fcd.holder()
                if holder is not None:
                    raise vim.fault.InvalidState(
                        msg=f"The operation is not allowed in the current state: disk "
                        f"{fcd.id} is attached to VM {holder[0].name}"
                    )
                links = {
                    link.path: link for head in [fcd.file, *(s.frozen for s in fcd.snapshots)] for link in head.chain()
                }
                shared, locked = self.used_by_others(fcd, None)
                in_use = set(links) & (shared | locked)
                if in_use:
                    path = sorted(in_use)[0]
                    raise vim.fault.FileLocked(
                        msg=f"Unable to access file {path.name} since it is locked",
                        file=self.ctx.datastore_of(path).datastore_path(path),
                    )
                for link in links.values():
                    link.delete()
                base = fcd.file.chain()[-1].path
                ctk_path(base).unlink(missing_ok=True)
                del self.disks[fcd.id]
                self.registry.changed()

        return self._task(datastore, vim.vslm.vcenter.VStorageObjectManager.DeleteVStorageObject, body)

    # --- queries ---

    @soap_method("RetrieveVStorageObject")
    def retrieve_vstorage_object(self, id: Any, datastore: Any, diskInfoFlags: list[str] | None = None) -> Any:
        return self.info(self.find_fcd(id, datastore))

    @soap_method("ListVStorageObject")
    def list_vstorage_object(self, datastore: Any) -> list[Any]:
        ds = self.registry.get(datastore, DatastoreImpl)
        return [vim.vslm.ID(id=fcd.id) for fcd in self.disks.values() if fcd.datastore is ds]

    @soap_method("RenameVStorageObject")
    def rename_vstorage_object(self, id: Any, datastore: Any, name: str) -> None:
        if not name:
            raise vmodl.fault.InvalidArgument(msg="name is required", invalidProperty="name")
        self.find_fcd(id, datastore).name = name
        self.registry.changed()

    # --- snapshots ---

    @soap_method("VStorageObjectCreateSnapshot_Task")
    def create_snapshot(self, id: Any, datastore: Any, description: str) -> Any:
        def body(task: TaskImpl) -> Any:
            with self.registry.lock:
                fcd = self.find_fcd(id, datastore)
                top = fcd.top()
                ds = self.ctx.datastore_of(top.path)
                delta = VirtualDiskFile.create_delta(next_delta_path(top), top, space=ds.space)
                snap = FcdSnapshot(id=str(uuid.uuid4()), description=description or "", create_time=_now(), frozen=top)
                fcd.snapshots.append(snap)
                fcd.set_top(delta)
                self.registry.changed()
                return vim.vslm.ID(id=snap.id)

        return self._task(datastore, vim.vslm.vcenter.VStorageObjectManager.CreateSnapshot, body)

    @soap_method("RetrieveSnapshotInfo")
    def retrieve_snapshot_info(self, id: Any, datastore: Any) -> Any:
        fcd = self.find_fcd(id, datastore)
        return vim.vslm.VStorageObjectSnapshotInfo(
            snapshots=[
                vim.vslm.VStorageObjectSnapshotInfo.VStorageObjectSnapshot(
                    id=vim.vslm.ID(id=s.id), createTime=s.create_time, description=s.description
                )
                for s in fcd.snapshots
            ]
        )

    @soap_method("DeleteSnapshot_Task")
    def delete_snapshot(self, id: Any, datastore: Any, snapshotId: Any) -> Any:
        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                fcd = self.find_fcd(id, datastore)
                key = snapshotId.id if snapshotId is not None else None
                snap = next((s for s in fcd.snapshots if s.id == key), None)
                if snap is None:
                    raise vim.fault.NotFound(
                        msg=f"The object or item referred to could not be found: snapshot "
                        f"{key} of virtual storage object {fcd.id}"
                    )
                fcd.snapshots.remove(snap)
                try:
                    consolidate(self, fcd, released=snap.frozen.chain())
                except DiskFullError as exc:
                    raise vim.fault.NoDiskSpace(
                        msg=f"datastore full while consolidating disk {fcd.id}",
                        file=fcd.datastore.datastore_path(fcd.top().path),
                        datastore=fcd.datastore.name,
                    ) from exc
                self.registry.changed()

        return self._task(datastore, vim.vslm.vcenter.VStorageObjectManager.DeleteSnapshot, body)


def consolidate(
    manager: VStorageObjectManagerImpl, fcd: FirstClassDisk, released: list[VirtualDiskFile] | None = None
) -> None:
    """Merge each delta into its parent when nothing else needs the parent as it is.

    A child merges into its parent when the parent is frozen by no FCD or VM snapshot, has no other child,
    and neither link is used outside this FCD (another VM, a HotAdd attachment, another FCD). Every
    reference to the merged child (FCD top, FCD and VM snapshots) then points at the parent. `released`
    links (a deleted snapshot's chain) that nothing reaches any more, e.g. after a VM revert left their
    branch, are deleted.
    """
    holder = fcd.holder()
    vm, key = (holder[0], holder[1].key) if holder is not None else (None, -1)
    vm_snaps = [s for s in vm.all_snapshots() if key in s.frozen] if vm is not None else []
    shared, locked = manager.used_by_others(fcd, vm)
    pinned = shared | locked
    while True:
        heads = [fcd.top(), *(s.frozen for s in fcd.snapshots), *(s.frozen[key] for s in vm_snaps)]
        frozen = {s.frozen.path for s in fcd.snapshots} | {s.frozen[key].path for s in vm_snaps}
        links = {link.path: link for head in heads for link in head.chain()}
        children: dict[Path, list[VirtualDiskFile]] = {}
        for link in links.values():
            if link.parent is not None:
                children.setdefault(link.parent.path, []).append(link)
        child = next(
            (
                c
                for c in links.values()
                if c.parent is not None
                and c.parent.path not in frozen
                and c.parent.path not in pinned
                and c.path not in pinned
                and len(children[c.parent.path]) == 1
            ),
            None,
        )
        if child is None:
            for link in released or []:
                if link.parent is not None and link.path not in links and link.path not in pinned:
                    link.delete()
            return
        grandchildren = children.get(child.path, [])
        parent = child.consolidate_into_parent()
        for link in grandchildren:
            link.set_parent(parent)
        if fcd.top().path == child.path:
            fcd.set_top(parent)
        for snap in fcd.snapshots:
            if snap.frozen.path == child.path:
                snap.frozen = parent
        for vm_snap in vm_snaps:
            if vm_snap.frozen[key].path == child.path:
                vm_snap.frozen[key] = parent


def register(ctx: SimContext) -> None:
    """Called by SimContext._optional_services: the manager becomes content.vStorageObjectManager."""
    ctx.vstorage_object_manager = VStorageObjectManagerImpl(ctx.registry)


__all__ = ["FcdSnapshot", "FirstClassDisk", "VStorageObjectManagerImpl", "consolidate", "register"]
