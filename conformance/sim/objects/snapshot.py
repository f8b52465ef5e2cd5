"""VirtualMachineSnapshot and the VM's snapshot operations: create, remove (with consolidation), revert."""

from __future__ import annotations

import datetime
import itertools
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.disks import ChainGraph, DiskState, backing_info, next_delta_path, redundant_links
from conformance.sim.objects.task import TaskImpl
from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method
from conformance.sim.storage.vmdk import VirtualDiskFile

if TYPE_CHECKING:
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

MAX_SNAPSHOT_DEPTH = 32
_snapshot_ids = itertools.count(1)


class SnapshotImpl(ManagedObjectImpl):
    vim_type = vim.vm.Snapshot
    id_prefix = "snapshot"

    def __init__(
        self,
        registry: ObjectRegistry,
        vm: VirtualMachineImpl,
        name: str,
        description: str,
        memory: bool,
        quiesced: bool,
        parent: SnapshotImpl | None,
    ) -> None:
        super().__init__(registry)
        self.vm = vm
        self.name = name
        self.description = description
        self.memory = memory
        self.quiesced = quiesced
        self.parent = parent
        self.children: list[SnapshotImpl] = []
        self.snapshot_id = next(_snapshot_ids)
        self.create_time = datetime.datetime.now(datetime.UTC)
        self.power_state = vm.power_state if memory else "poweredOff"
        self.frozen: dict[int, VirtualDiskFile] = {}
        self.change_ids: dict[int, str | None] = {}
        self.config: Any = None

    def frozen_disk(self, key: int) -> tuple[VirtualDiskFile, str | None, bool]:
        """(link frozen for disk `key`, its changeId, whether CBT was on for it) at this snapshot."""
        if key not in self.frozen:
            raise vmodl.fault.InvalidArgument(
                msg=f"no virtual disk with device key {key} in snapshot {self.name}", invalidProperty="deviceKey"
            )
        change_id = self.change_ids.get(key)
        return self.frozen[key], change_id, change_id is not None

    def tree(self) -> Any:
        return vim.vm.SnapshotTree(
            snapshot=self.ref,
            vm=self.vm.ref,
            name=self.name,
            description=self.description,
            id=self.snapshot_id,
            createTime=self.create_time,
            state=self.power_state,
            quiesced=self.quiesced,
            backupManifest=None,
            childSnapshotList=[c.tree() for c in self.children],
            replaySupported=False,
        )

    def prop_config(self) -> Any:
        """The VM configuration at snapshot time, with each disk backed by the link frozen for it now
        (consolidation may have merged the original link into its parent)."""
        if self.config is None:
            return None
        for device in self.config.hardware.device:
            if isinstance(device, vim.vm.device.VirtualDisk) and device.key in self.frozen:
                device.backing = backing_info(
                    self.frozen[device.key],
                    self.vm.ctx.datastore_of,
                    self.change_ids[device.key],
                    getattr(device.backing, "diskMode", None) or "persistent",
                )
        return self.config

    def prop_childSnapshot(self) -> list[Any]:
        return [c.ref for c in self.children]

    def prop_vm(self) -> Any:
        return self.vm.ref

    @soap_method("RemoveSnapshot_Task")
    def remove(self, removeChildren: bool, consolidate: bool | None = None) -> Any:
        vm = self.vm

        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                vm.refuse_snapshot_operation("RemoveSnapshot")
                drop_snapshot(vm, self, removeChildren)
                if (consolidate is None or consolidate) and not skips_consolidation(vm):
                    consolidate_vm(vm)
                vm.touch()

        return self.ctx.task_manager.start(vm, vim.vm.Snapshot.Remove, body).ref

    @soap_method("RevertToSnapshot_Task")
    def revert(self, host: Any = None, suppressPowerOn: bool | None = None) -> Any:
        vm = self.vm

        def body(task: TaskImpl) -> None:
            with self.registry.lock:
                vm.refuse_snapshot_operation("RevertToSnapshot")
                revert_to(vm, self)
                vm.touch()

        return self.ctx.task_manager.start(vm, vim.vm.Snapshot.Revert, body).ref

    @soap_method("RenameSnapshot")
    def rename(self, name: str | None = None, description: str | None = None) -> None:
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        self.vm.touch()


class SnapshotOperations:
    """The snapshot methods of VirtualMachine (mixed into VirtualMachineImpl)."""

    @soap_method("CreateSnapshot_Task")
    def create_snapshot(
        self: Any, name: str, description: str | None = None, memory: bool = False, quiesce: bool = False
    ) -> Any:
        vm: VirtualMachineImpl = self

        def body(task: TaskImpl) -> Any:
            with vm.registry.lock:
                vm.refuse_snapshot_operation("CreateSnapshot")
                return take_snapshot(vm, name, description or "", memory, quiesce and vm.power_state == "poweredOn")

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.CreateSnapshot, body).ref

    @soap_method("CreateSnapshotEx_Task")
    def create_snapshot_ex(
        self: Any, name: str, description: str | None = None, memory: bool = False, quiesceSpec: Any = None
    ) -> Any:
        return self.create_snapshot(name, description, memory, quiesceSpec is not None)

    @soap_method("RemoveAllSnapshots_Task")
    def remove_all_snapshots(self: Any, consolidate: bool | None = None, spec: Any = None) -> Any:
        vm: VirtualMachineImpl = self

        def body(task: TaskImpl) -> None:
            with vm.registry.lock:
                vm.refuse_snapshot_operation("RemoveAllSnapshots")
                for snap in list(vm.root_snapshots):
                    drop_snapshot(vm, snap, True)
                if (consolidate is None or consolidate) and not skips_consolidation(vm):
                    consolidate_vm(vm)
                vm.touch()

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.RemoveAllSnapshots, body).ref

    @soap_method("ConsolidateVMDisks_Task")
    def consolidate_disks(self: Any) -> Any:
        vm: VirtualMachineImpl = self

        def body(task: TaskImpl) -> None:
            with vm.registry.lock:
                consolidate_vm(vm)
                vm.touch()
                left = [
                    child
                    for d in vm.disks
                    if d.attached_from is None
                    for _, child in redundant_links(d.file, disk_graph(vm, d))
                ]
                if left:
                    path = vm.ctx.datastore_of(left[0].path).datastore_path(left[0].path)
                    raise vim.fault.FileLocked(msg=f"Unable to access file {path} since it is locked", file=path)

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.ConsolidateDisks, body).ref

    @soap_method("RevertToCurrentSnapshot_Task")
    def revert_to_current(self: Any, host: Any = None, suppressPowerOn: bool | None = None) -> Any:
        vm: VirtualMachineImpl = self
        if vm.current_snapshot is None:
            raise vim.fault.NotFound(msg=f"{vm.name} has no current snapshot")
        return vm.current_snapshot.revert(host, suppressPowerOn)


def take_snapshot(vm: VirtualMachineImpl, name: str, description: str, memory: bool, quiesced: bool) -> SnapshotImpl:
    depth = 0
    node = vm.current_snapshot
    while node is not None:
        depth += 1
        node = node.parent
    if depth >= MAX_SNAPSHOT_DEPTH:
        raise vim.fault.SnapshotFault(msg=f"Exceeded the maximum number of permitted snapshots ({MAX_SNAPSHOT_DEPTH})")
    snap = SnapshotImpl(vm.registry, vm, name, description, memory, quiesced, vm.current_snapshot)
    devices = []
    created: list[VirtualDiskFile] = []
    try:
        for index, disk in enumerate(vm.disks):
            if disk.attached_from is not None:
                continue
            frozen = disk.file
            change_id = disk.tracker.mark() if disk.cbt_enabled and disk.tracker is not None else None
            if disk.tracker is not None:
                disk.tracker.save()
            ds = vm.ctx.datastore_of(frozen.path)
            delta = VirtualDiskFile.create_delta(next_delta_path(frozen), frozen, space=ds.space)
            created.append(delta)
            snap.frozen[disk.key] = frozen
            snap.change_ids[disk.key] = change_id
            disk.file = delta
            devices.append((index, disk, frozen, change_id))
    except Exception:
        for delta in created:
            for disk in vm.disks:
                if disk.file is delta and delta.parent is not None:
                    disk.file = delta.parent
            delta.delete()
        vm.registry.remove(snap)
        raise
    snap.config = vm.config_info()
    if vm.current_snapshot is None:
        vm.root_snapshots.append(snap)
    else:
        vm.current_snapshot.children.append(snap)
    vm.current_snapshot = snap
    vm.touch()
    return snap


def drop_snapshot(vm: VirtualMachineImpl, snap: SnapshotImpl, with_children: bool) -> None:
    """Take `snap` out of the tree (its children move to its parent unless removed too)."""
    siblings = snap.parent.children if snap.parent is not None else vm.root_snapshots
    index = siblings.index(snap)
    siblings.remove(snap)
    if with_children:
        for child in list(snap.children):
            drop_snapshot_tree(vm, child)
    else:
        for offset, child in enumerate(snap.children):
            child.parent = snap.parent
            siblings.insert(index + offset, child)
    if vm.current_snapshot is snap or (
        vm.current_snapshot is not None and vm.current_snapshot not in vm.all_snapshots()
    ):
        vm.current_snapshot = snap.parent if snap.parent in vm.all_snapshots() else None
    vm.registry.remove(snap)


def drop_snapshot_tree(vm: VirtualMachineImpl, snap: SnapshotImpl) -> None:
    for child in list(snap.children):
        drop_snapshot_tree(vm, child)
    vm.registry.remove(snap)


def disk_graph(vm: VirtualMachineImpl, disk: DiskState) -> ChainGraph:
    """The chain graph of one disk: heads, links frozen by snapshots, links shared or locked elsewhere."""
    snaps = [s for s in vm.all_snapshots() if disk.key in s.frozen]
    heads = [disk.file, *(s.frozen[disk.key] for s in snaps)]
    manager = vm.ctx.vstorage_object_manager
    # An attached FCD's live chain is this VM's to consolidate; only what its own FCD snapshots froze is shared.
    shared, locked = (
        manager.links_used_elsewhere(vm, disk)
        if disk.fcd_id and manager is not None
        else vm.ctx.links_used_elsewhere(vm)
    )
    return ChainGraph(heads=heads, frozen={s.frozen[disk.key].path for s in snaps}, pinned=shared, locked=locked)


def skips_consolidation(vm: VirtualMachineImpl) -> bool:
    """snapshot-remove-no-consolidate: removing a snapshot leaves its delta in the chain, and the VM claims it
    needs no consolidation (`VirtualMachineImpl.consolidation_needed`)."""
    return bool(vm.ctx.faults.playing("snapshot-remove-no-consolidate"))


def consolidate_vm(vm: VirtualMachineImpl) -> None:
    for disk in vm.disks:
        if disk.attached_from is None:
            consolidate_disk(vm, disk)


def consolidate_disk(vm: VirtualMachineImpl, disk: DiskState) -> None:
    """Merge every redundant link that is not locked; locked ones keep consolidation needed."""
    while True:
        graph = disk_graph(vm, disk)
        mergeable = [
            (parent, child)
            for parent, child in redundant_links(disk.file, graph)
            if parent.path not in graph.locked and child.path not in graph.locked
        ]
        if not mergeable:
            return
        merge_into_parent(vm, disk, mergeable[0][1], graph)


def merge_into_parent(vm: VirtualMachineImpl, disk: DiskState, child: VirtualDiskFile, graph: ChainGraph) -> None:
    """Write `child` into its parent, point everything that referenced `child` at the parent, delete it."""
    grandchildren = graph.children(child)
    parent = child.consolidate_into_parent()
    for link in grandchildren:
        link.set_parent(parent)
    if disk.file.path == child.path:
        disk.file = parent
    for snap in vm.all_snapshots():
        frozen = snap.frozen.get(disk.key)
        if frozen is not None and frozen.path == child.path:
            snap.frozen[disk.key] = parent


def revert_to(vm: VirtualMachineImpl, snap: SnapshotImpl) -> None:
    for disk in vm.disks:
        if disk.attached_from is not None or disk.key not in snap.frozen:
            continue
        old_top = disk.file
        frozen = snap.frozen[disk.key]
        ds = vm.ctx.datastore_of(frozen.path)
        disk.file = VirtualDiskFile.create_delta(next_delta_path(frozen), frozen, space=ds.space)
        graph = disk_graph(vm, disk)
        if (
            old_top.parent is not None
            and old_top.path not in graph.frozen
            and old_top.path not in graph.pinned
            and old_top.path not in graph.locked
            and not graph.children(old_top)
        ):
            old_top.delete()
        if disk.tracker is not None and disk.cbt_enabled:
            disk.tracker.reset()
            disk.tracker.save()
    vm.power_state = snap.power_state
    vm.current_snapshot = snap
