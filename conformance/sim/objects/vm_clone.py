"""CloneVM_Task (full and linked) and RelocateVM_Task of VirtualMachine."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.disks import DiskState, unique_disk_path
from conformance.sim.objects.task import TaskImpl
from conformance.sim.objects.vm_reconfig import apply_config_spec
from conformance.sim.registry import soap_method
from conformance.sim.storage.space import DiskFullError
from conformance.sim.storage.vmdk import VirtualDiskFile

if TYPE_CHECKING:
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.folder import FolderImpl
    from conformance.sim.objects.host import HostImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

LINKED = "createNewChildDiskBacking"


class CloneOperations:
    """Clone and relocate methods of VirtualMachine (mixed into VirtualMachineImpl)."""

    @soap_method("CloneVM_Task")
    def clone(self: Any, folder: Any, name: str, spec: Any) -> Any:
        vm: VirtualMachineImpl = self
        target_folder = vm.registry.get_kind(folder, "Folder")
        if target_folder.find_child(name) is not None:
            raise vim.fault.DuplicateName(msg=f"The name '{name}' already exists.", name=name, object=folder)

        def body(task: TaskImpl) -> Any:
            with vm.registry.lock:
                return clone_vm(vm, target_folder, name, spec)

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.Clone, body).ref

    @soap_method("RelocateVM_Task")
    def relocate(self: Any, spec: Any, priority: str | None = None) -> Any:
        vm: VirtualMachineImpl = self
        if "RelocateVM_Task" in vm.ctx.disabled_methods(vm):
            raise vim.fault.MethodDisabled(
                msg="RelocateVM_Task is disabled on this VM by a backup (PrepareForAccess)",
                source=vm.ctx.disabled_methods(vm)["RelocateVM_Task"],
            )

        def body(task: TaskImpl) -> None:
            with vm.registry.lock:
                relocate_vm(vm, spec)
                vm.touch()
            vm.ctx.event_manager.post(vim.event.VmRelocatedEvent, f"Completed the relocation of {vm.name}", vm)

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.Relocate, body).ref


def clone_vm(source: VirtualMachineImpl, folder: FolderImpl, name: str, spec: Any) -> VirtualMachineImpl:
    from conformance.sim.objects.snapshot import SnapshotImpl

    ctx = source.ctx
    location = spec.location or vim.vm.RelocateSpec()
    snapshot = ctx.registry.get(spec.snapshot, SnapshotImpl) if spec.snapshot is not None else None
    linked = location.diskMoveType == LINKED
    if linked and snapshot is None:
        raise vmodl.fault.InvalidArgument(
            msg="a linked clone (createNewChildDiskBacking) needs spec.snapshot", invalidProperty="snapshot"
        )
    datastore: DatastoreImpl = ctx.registry.lookup(location.datastore) if location.datastore else source.home  # type: ignore[assignment]
    host: HostImpl = ctx.registry.get_kind(location.host, "HostSystem") if location.host else source.host
    clone: VirtualMachineImpl = ctx.registry.kind("VirtualMachine")(
        ctx.registry,
        name,
        folder,
        source.pool,
        host,
        datastore,
        source.guest_id,
        source.guest_full_name,
        source.num_cpu,
        source.memory_mb,
    )
    clone.extra_config = dict(source.extra_config)
    clone.cbt_enabled = source.cbt_enabled
    try:
        for disk in source.disks:
            if disk.attached_from is not None:
                continue
            origin = snapshot.frozen[disk.key] if snapshot is not None else disk.file
            if linked:
                path = unique_disk_path(clone.home_dir, name)
                file = VirtualDiskFile.create_delta(path, origin, space=datastore.space)
            else:
                provisioning = disk_provisioning(location, disk, origin)
                file = origin.copy_to(unique_disk_path(clone.home_dir, name), provisioning, space=datastore.space)
            state = DiskState(
                key=disk.key, unit_number=disk.unit_number, file=file, datastore=datastore, disk_mode=disk.disk_mode
            )
            state.enable_tracking(disk.cbt_enabled)
            clone.disks.append(state)
    except DiskFullError as exc:
        ctx.delete_vm_files(clone)
        source.pool.vms.remove(clone)
        clone.destroy_entity()
        raise vim.fault.NoDiskSpace(
            msg=f"There is not enough space on the file system for the selected operation "
            f"(datastore {datastore.name}, clone of {source.name}).",
            datastore=datastore.name,
        ) from exc
    if spec.config is not None:
        apply_config_spec(clone, spec.config)
    if spec.powerOn:
        clone.power_state = "poweredOn"
    ctx.event_manager.post(
        vim.event.VmClonedEvent,
        f"Clone of {source.name} completed",
        clone,
        sourceVm=vim.event.VmEventArgument(vm=source.ref, name=source.name),
    )
    return clone


def disk_provisioning(location: Any, disk: DiskState, origin: VirtualDiskFile) -> str:
    """Provisioning of a full clone's disk: per-disk locator backing or transform, else as the source."""
    for locator in location.disk or []:
        backing = locator.diskBackingInfo
        if locator.diskId == disk.key and isinstance(backing, vim.vm.device.VirtualDisk.FlatVer2BackingInfo):
            if backing.thinProvisioned is False:
                return "eagerZeroedThick" if backing.eagerlyScrub else "thick"
            if backing.thinProvisioned:
                return "thin"
    if location.transform == "sparse":
        return "thin"
    if location.transform == "flat":
        return "thick"
    return origin.chain()[-1].provisioning


def relocate_vm(vm: VirtualMachineImpl, spec: Any) -> None:
    ctx = vm.ctx
    if spec.host is not None:
        host = ctx.registry.get_kind(spec.host, "HostSystem")
        if host.maintenance != "normal":
            raise vim.fault.InvalidHostState(msg=f"host {host.name} is in or entering maintenance mode", host=host.ref)
        vm.host = host
    if spec.datastore is None:
        return
    target = ctx.registry.lookup(spec.datastore)
    if target is vm.home:
        return
    if vm.root_snapshots:
        raise vmodl.fault.NotSupported(msg="relocating the storage of a VM with snapshots is not simulated")
    if vm.migration_blocker():
        raise vim.fault.InvalidState(msg=f"{vm.name} cannot move: {vm.migration_blocker()}")
    new_home = target.local_path(vm.name)  # type: ignore[attr-defined]
    new_home.mkdir(parents=True, exist_ok=True)
    moved: list[tuple[DiskState, VirtualDiskFile]] = []
    for disk in vm.disks:
        if disk.attached_from is not None:
            continue
        copy = disk.file.copy_to(
            unique_disk_path(new_home, vm.name),
            disk.file.chain()[-1].provisioning,
            space=target.space,  # type: ignore[attr-defined]
        )
        moved.append((disk, copy))
    for disk, copy in moved:
        old = disk.file
        disk.file = copy
        disk.datastore = target  # type: ignore[assignment]
        for link in old.chain():
            if link.path not in ctx.links_in_use(vm):
                link.delete()
    old_vmx, old_home = vm.vmx_file, vm.home_dir
    vm.home = target  # type: ignore[assignment]
    vm.home_dir = new_home
    vm.vmx_file = new_home / old_vmx.name
    vm.vmx_file.write_text(old_vmx.read_text())
    old_vmx.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # other files (a shared disk) may still live there
        old_home.rmdir()
