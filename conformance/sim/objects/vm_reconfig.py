"""ReconfigVM_Task: CBT switches, extraConfig, disks added, attached (HotAdd), removed, storage profiles."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.disk_locks import check_hotadd_lock, release_hotadd_lock
from conformance.sim.objects.disks import FIRST_DISK_KEY, DiskState, unique_disk_path
from conformance.sim.objects.task import TaskImpl
from conformance.sim.registry import soap_method
from conformance.sim.storage.space import DiskFullError
from conformance.sim.storage.vmdk import VirtualDiskFile

if TYPE_CHECKING:
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

CTK_KEY = re.compile(r"^scsi(\d+):(\d+)\.ctkEnabled$", re.IGNORECASE)
MAX_SCSI_UNITS = 15


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


class ReconfigOperations:
    """ReconfigVM_Task of VirtualMachine (mixed into VirtualMachineImpl)."""

    @soap_method("ReconfigVM_Task")
    def reconfigure(self: Any, spec: Any) -> Any:
        vm: VirtualMachineImpl = self

        def body(task: TaskImpl) -> None:
            with vm.registry.lock:
                vm.require_valid("ReconfigVM_Task")
                apply_config_spec(vm, spec)
                vm.touch()
            vm.ctx.event_manager.post(
                vim.event.VmReconfiguredEvent, f"Reconfigured {vm.name} on {vm.host.name}", vm, configSpec=spec
            )

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.Reconfigure, body).ref


def apply_config_spec(vm: VirtualMachineImpl, spec: Any) -> None:
    if spec.name:
        vm.name = spec.name
    if spec.annotation is not None:
        vm.annotation = spec.annotation
    if spec.numCPUs:
        vm.num_cpu = spec.numCPUs
    if spec.memoryMB:
        vm.memory_mb = int(spec.memoryMB)
    for change in spec.deviceChange or []:
        apply_device_change(vm, change)
    if spec.changeTrackingEnabled is not None:
        vm.cbt_enabled = bool(spec.changeTrackingEnabled)
        for disk in vm.disks:
            if disk.attached_from is None:
                disk.enable_tracking(vm.cbt_enabled)
    for option in spec.extraConfig or []:
        match = CTK_KEY.match(option.key)
        if match:
            found = next((d for d in vm.disks if d.unit_number == int(match.group(2))), None)
            if found is None:
                raise vmodl.fault.InvalidArgument(
                    msg=f"{option.key}: no disk at that unit", invalidProperty="extraConfig"
                )
            found.enable_tracking(truthy(option.value))
        elif option.key.lower() == "ctkenabled":
            vm.cbt_enabled = truthy(option.value)
        elif option.value in (None, ""):
            vm.extra_config.pop(option.key, None)
        else:
            vm.extra_config[option.key] = str(option.value)
    if _has_default_profile(spec.vmProfile):
        apply_default_profile(vm)


def _has_default_profile(profiles: Any) -> bool:
    return any(isinstance(p, vim.vm.DefaultProfileSpec) for p in profiles or [])


def apply_default_profile(vm: VirtualMachineImpl) -> None:
    """The datastore's default storage policy was applied (R6).

    Before vSphere 7.0 U3 this turned CBT on for every disk; from 7.0 U3 each disk keeps its CBT state.
    """
    if vm.ctx.profile.default_profile_preserves_cbt:
        return
    vm.cbt_enabled = True
    for disk in vm.disks:
        if disk.attached_from is None:
            disk.enable_tracking(True)


def apply_device_change(vm: VirtualMachineImpl, change: Any) -> None:
    device = change.device
    if _has_default_profile(change.profile):
        apply_default_profile(vm)
    if not isinstance(device, vim.vm.device.VirtualDisk):
        if change.operation == "edit" or device is None:
            return
        raise vmodl.fault.NotSupported(msg=f"device {type(device).__name__} is not simulated; only virtual disks are")
    operation = change.operation
    if operation == "add":
        vm.disks.append(add_disk(vm, device, change.fileOperation))
    elif operation == "remove":
        disk = vm.disk(device.key)
        vm.disks.remove(disk)
        release_hotadd_lock(vm, disk)
        if change.fileOperation == "destroy":
            if disk.attached_from is not None:
                raise vim.fault.FileFault(
                    msg="cannot destroy a disk that belongs to another VM", file=disk.file.path.name
                )
            for link in disk.file.chain():
                if link.path not in vm.ctx.links_in_use(vm):
                    link.delete()
    elif operation == "edit":
        disk = vm.disk(device.key)
        capacity = asked_capacity(device, disk.capacity)
        if capacity != disk.capacity:
            grow_disk(vm, disk, capacity)
    else:
        raise vmodl.fault.InvalidArgument(msg=f"unknown device operation {operation}", invalidProperty="operation")


def asked_capacity(device: Any, current: int) -> int:
    """The capacity an edit asks for: capacityInBytes, or capacityInKB when only that one was changed (a client
    that copies the device and edits capacityInKB leaves capacityInBytes at the old size)."""
    in_bytes = int(device.capacityInBytes or 0)
    in_kb = int(device.capacityInKB or 0) * 1024
    if in_bytes and in_bytes != current:
        return in_bytes
    return in_kb if in_kb and in_kb != current else current


def grow_disk(vm: VirtualMachineImpl, disk: DiskState, capacity: int) -> None:
    """Hot-extend as ESXi allows it: only growing, only a disk of this VM without snapshots or deltas."""
    name = disk.file.path.name
    if capacity < disk.capacity:
        raise vim.fault.InvalidDeviceOperation(
            msg=f"Invalid operation for device '{disk.unit_number}': {name} cannot shrink "
            f"({disk.capacity} to {capacity} bytes)",
            badOp="edit",
        )
    if vm.all_snapshots() or disk.file.parent is not None or disk.attached_from is not None:
        raise vim.fault.InvalidDeviceOperation(
            msg=f"Invalid operation for device '{disk.unit_number}': {name} has snapshots (or is another VM's "
            "disk); remove them or consolidate before extending",
            badOp="edit",
        )
    try:
        disk.file.extend(capacity)
    except DiskFullError as exc:
        raise vim.fault.NoDiskSpace(msg=str(exc), datastore=disk.datastore.name) from exc
    except ValueError as exc:
        raise vim.fault.InvalidDeviceSpec(msg=str(exc), deviceIndex=0) from exc
    if disk.tracker is not None:
        disk.tracker.extend(capacity)
        disk.tracker.save()


def _free_unit(vm: VirtualMachineImpl, wanted: int | None) -> int:
    used = {d.unit_number for d in vm.disks}
    if wanted is not None and wanted >= 0:
        if wanted in used or wanted == 7:
            raise vim.fault.InvalidDeviceSpec(msg=f"SCSI unit {wanted} is in use on {vm.name}", deviceIndex=0)
        return wanted
    for unit in range(MAX_SCSI_UNITS + 1):
        if unit != 7 and unit not in used:
            return unit
    raise vim.fault.InvalidDeviceSpec(msg=f"no free SCSI unit on {vm.name}", deviceIndex=0)


def add_disk(vm: VirtualMachineImpl, device: Any, file_operation: str | None) -> DiskState:
    key = max([FIRST_DISK_KEY - 1, *(d.key for d in vm.disks)]) + 1
    unit = _free_unit(vm, device.unitNumber)
    backing = device.backing
    if file_operation == "create":
        capacity = int(device.capacityInBytes or (device.capacityInKB or 0) * 1024)
        if capacity <= 0 or capacity % 512:
            raise vim.fault.InvalidDeviceSpec(
                msg="a new disk needs capacityInBytes, a positive multiple of 512", deviceIndex=0
            )
        datastore = vm.home
        if backing is not None and (backing.datastore is not None or backing.fileName):
            datastore = vm.ctx.resolve_datastore(backing.datastore, backing.fileName)
        provisioning = "thin"
        if backing is not None and backing.thinProvisioned is False:
            provisioning = "eagerZeroedThick" if backing.eagerlyScrub else "thick"
        folder = datastore.local_path(vm.name)
        if backing is not None and backing.fileName and backing.fileName.strip().endswith(".vmdk"):
            ds, path = vm.ctx.resolve_datastore_path(backing.fileName)
            datastore, folder_path = ds, path
        else:
            folder_path = unique_disk_path(folder, vm.name)
        try:
            file = VirtualDiskFile.create(folder_path, capacity, provisioning, space=datastore.space)
        except DiskFullError as exc:
            raise vim.fault.NoDiskSpace(
                msg=f"There is not enough space on the file system for the selected operation "
                f"(datastore {datastore.name}, {capacity} byte disk).",
                datastore=datastore.name,
            ) from exc
        disk = DiskState(key=key, unit_number=unit, file=file, datastore=datastore)
        disk.disk_mode = getattr(backing, "diskMode", None) or "persistent"
        disk.enable_tracking(vm.cbt_enabled)
        return disk
    if backing is None or not backing.fileName:
        raise vim.fault.InvalidDeviceSpec(msg="attaching an existing disk needs backing.fileName", deviceIndex=0)
    datastore, path = vm.ctx.resolve_datastore_path(backing.fileName)
    file, owner = vm.ctx.find_disk_file(path)
    check_declared_chain(vm, datastore, file, backing)
    disk = DiskState(
        key=key,
        unit_number=unit,
        file=file,
        datastore=datastore,
        disk_mode=backing.diskMode or "persistent",
        attached_from=owner,
    )
    if owner is not None and owner[0] is vm:
        disk.attached_from = None
    check_hotadd_lock(vm, disk, backing.fileName)
    return disk


def check_declared_chain(vm: VirtualMachineImpl, datastore: Any, file: VirtualDiskFile, backing: Any) -> None:
    """K1's server side. A client attaching an existing disk may declare its parent chain (backing.parent).
    VMFS reads the chain from the descriptors and ignores the declaration. A vVol datastore binds the vVols
    the declaration names: a chain that misses a link leaves the VM pointing at an unbound vVol, so vCenter
    marks the VM invalid and the reconfiguration fails."""
    if backing.parent is None or datastore.ds_type != "VVOL":
        return
    declared: list[str] = []
    parent = backing.parent
    while parent is not None:
        declared.append(str(parent.fileName or "").strip())
        parent = parent.parent
    actual = [vm.ctx.datastore_of(link.path).datastore_path(link.path) for link in file.chain()[1:]]
    if declared == actual:
        return
    missing = [name for name in actual if name not in declared]
    reason = f"the vVol chain of {backing.fileName} cannot be bound (undeclared parents: {', '.join(missing)})"
    vm.invalidate(reason)
    raise vim.fault.InvalidDeviceBacking(msg=reason, deviceIndex=0)
