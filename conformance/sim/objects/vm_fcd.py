"""AttachDisk_Task and DetachDisk_Task of VirtualMachine: First Class Disks as VM devices.

An attached FCD is an ordinary DiskState of the VM (with `fcd_id`, so the device reports `vDiskId`) that
shares the FCD's top VirtualDiskFile: VM snapshots put their deltas on the FCD chain like on any disk.
Detaching hands the VM's top link back to the FCD, so what the VM wrote stays in the FCD.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.objects.disks import FIRST_DISK_KEY, SCSI_CONTROLLER_KEY, DiskState
from conformance.sim.objects.vm_reconfig import _free_unit
from conformance.sim.registry import soap_method

if TYPE_CHECKING:
    from conformance.sim.objects.task import TaskImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl
    from conformance.sim.objects.vstorage_object_manager import VStorageObjectManagerImpl


def _manager(vm: VirtualMachineImpl) -> VStorageObjectManagerImpl:
    manager = vm.ctx.vstorage_object_manager
    if manager is None:
        raise vim.fault.NotFound(msg="First Class Disks are not available on this server")
    return manager


class FcdOperations:
    """The FCD methods of VirtualMachine (mixed into VirtualMachineImpl)."""

    @soap_method("AttachDisk_Task")
    def attach_disk(
        self: Any, diskId: Any, datastore: Any, controllerKey: int | None = None, unitNumber: int | None = None
    ) -> Any:
        vm: VirtualMachineImpl = self

        def body(task: TaskImpl) -> None:
            with vm.registry.lock:
                attach(vm, diskId, datastore, controllerKey, unitNumber)
                vm.touch()

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.AttachDisk, body).ref

    @soap_method("DetachDisk_Task")
    def detach_disk(self: Any, diskId: Any) -> Any:
        vm: VirtualMachineImpl = self

        def body(task: TaskImpl) -> None:
            with vm.registry.lock:
                detach(vm, diskId)
                vm.touch()

        return vm.ctx.task_manager.start(vm, vim.VirtualMachine.DetachDisk, body).ref


def attach(
    vm: VirtualMachineImpl, disk_id: Any, datastore: Any, controller_key: int | None, unit_number: int | None
) -> DiskState:
    """Make FCD `disk_id` a device of `vm`; an FCD is attached to one VM at a time."""
    fcd = _manager(vm).find_fcd(disk_id, datastore)
    holder = fcd.holder()
    if holder is not None:
        raise vim.fault.InvalidState(
            msg=f"The operation is not allowed in the current state: disk {fcd.id} is "
            f"already attached to VM {holder[0].name}"
        )
    if controller_key is not None and controller_key != SCSI_CONTROLLER_KEY:
        raise vim.fault.InvalidController(
            msg=f"{vm.name} has no controller with key {controller_key}", controllerKey=controller_key
        )
    unit = _free_unit(vm, unit_number)
    key = max([FIRST_DISK_KEY - 1, *(d.key for d in vm.disks)]) + 1
    disk = DiskState(key=key, unit_number=unit, file=fcd.file, datastore=fcd.datastore, fcd_id=fcd.id)
    disk.enable_tracking(fcd.cbt_enabled or vm.cbt_enabled)
    vm.disks.append(disk)
    fcd.attachment = (vm, disk)
    return disk


def detach(vm: VirtualMachineImpl, disk_id: Any) -> None:
    """Give the FCD back: its top becomes the VM's top link for it (data written through the VM is kept).

    Refused while a VM snapshot still references the disk, as vCenter does: the snapshot would lose it.
    """
    key = disk_id.id if isinstance(disk_id, vim.vslm.ID) else str(disk_id)
    disk = next((d for d in vm.disks if d.fcd_id == key), None)
    if disk is None:
        raise vim.fault.NotFound(
            msg=f"The object or item referred to could not be found: virtual storage object "
            f"{key} is not attached to {vm.name}"
        )
    if any(disk.key in snap.frozen for snap in vm.all_snapshots()):
        raise vim.fault.InvalidState(
            msg=f"The operation is not allowed in the current state: {vm.name} has snapshots that include disk {key}"
        )
    vm.disks.remove(disk)
    manager = _manager(vm)
    fcd = manager.disks.get(key)
    if fcd is not None:
        fcd.release(disk)


__all__ = ["FcdOperations", "attach", "detach"]
