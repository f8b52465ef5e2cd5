"""The harness's vSphere API client (pyVmomi only): inventory lookups and the operations sequences need."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.vsphere.connection import Endpoint, connect, disconnect
from conformance.vsphere.tasks import wait_for_task

if TYPE_CHECKING:
    from conformance.vsphere.locks import VmLock, VmLocks
    from conformance.vsphere.safety import SafetyGuard

#: custom attribute that marks what a run created with its run id (the sweeper reads it)
RUN_FIELD = "vddk-conformance.run"
#: the same mark in a VM's annotation (notes) and a snapshot's description, for objects without custom fields
RUN_TAG = "vddk-conformance.run="


class InventoryLookupError(LookupError):
    """An object the run needs is not in the target's inventory; the message names it."""


@dataclass(frozen=True)
class DiskRef:
    """One virtual disk of a VM (or of a snapshot's configuration)."""

    key: int
    unit_number: int
    file_name: str
    capacity: int
    datastore: str
    change_id: str | None
    thin: bool
    has_parent: bool


def disks_of(owner: Any) -> list[DiskRef]:
    out: list[DiskRef] = []
    for device in owner.config.hardware.device:
        if isinstance(device, vim.vm.device.VirtualDisk):
            backing: Any = device.backing
            out.append(
                DiskRef(
                    key=device.key,
                    unit_number=int(device.unitNumber or 0),
                    file_name=backing.fileName,
                    capacity=int(device.capacityInBytes or 0),
                    datastore=backing.fileName[1:].split("]", 1)[0],
                    change_id=getattr(backing, "changeId", None),
                    thin=bool(getattr(backing, "thinProvisioned", False)),
                    has_parent=getattr(backing, "parent", None) is not None,
                )
            )
    return sorted(out, key=lambda d: d.unit_number)


class VsphereSession:
    """A logged-in session plus lookups by name.

    With a `guard`, every destructive step (snapshot, revert, reconfigure, power off, clone, delete) is checked
    against the target's allow-list and the objects the run created; with `locks`, shared VMs are locked
    across processes around clones and (through `vm_lock`/`hold_vm`) around whole sequences; with `run_id`,
    everything created carries the run id (custom attribute, annotation, snapshot description).
    Without them (tools, benchmarks on their own simulator) nothing is checked.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        user: str,
        password: str,
        datacenter: str,
        *,
        guard: SafetyGuard | None = None,
        locks: VmLocks | None = None,
        run_id: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.si = connect(endpoint, user, password)
        self.content = self.si.RetrieveContent()
        self.datacenter_name = datacenter
        self.guard = guard
        self.locks = locks
        self.run_id = run_id
        self._run_field_key: int | None = None

    def close(self) -> None:
        disconnect(self.si)

    @property
    def datacenter(self) -> Any:
        for entity in self.content.rootFolder.childEntity:
            if isinstance(entity, vim.Datacenter) and entity.name == self.datacenter_name:
                return entity
        raise InventoryLookupError(f"datacenter {self.datacenter_name!r} not found")

    def _all(self, kind: Any) -> list[Any]:
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [kind], True)
        try:
            return list(view.view)
        finally:
            view.DestroyView()

    def vm(self, name: str) -> Any:
        found = self.content.searchIndex.FindByInventoryPath(f"{self.datacenter_name}/vm/{name}")
        if found is None:
            found = next((vm for vm in self._all(vim.VirtualMachine) if vm.name == name), None)
        if found is None:
            raise InventoryLookupError(f"virtual machine {name!r} not found in {self.datacenter_name}")
        return found

    def vms(self) -> list[Any]:
        return self._all(vim.VirtualMachine)

    def datastore(self, name: str) -> Any:
        for ds in self._all(vim.Datastore):
            if ds.name == name:
                return ds
        raise InventoryLookupError(f"datastore {name!r} not found")

    def datastores_by_type(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ds in self._all(vim.Datastore):
            out.setdefault(str(ds.summary.type), []).append(ds.name)
        return {k: sorted(v) for k, v in out.items()}

    def pool(self) -> Any:
        for entity in self.datacenter.hostFolder.childEntity:
            if isinstance(entity, vim.ComputeResource):
                return entity.resourcePool
        raise InventoryLookupError("no compute resource (cluster or host) in the datacenter")

    # --- safety, locks, run marks ---

    def check(self, action: str, vm_name: str) -> None:
        """UnsafeOperationError unless the guard allows `action` on the VM (no guard: allowed)."""
        if self.guard is not None:
            self.guard.check(action, vm_name)

    def hold_vm(self, vm_name: str) -> VmLock | None:
        """The acquired cross-process lock of a shared VM (None for the run's own VMs or without locks)."""
        if self.locks is None or (self.guard is not None and not self.guard.is_shared(vm_name)):
            return None
        return self.locks.lock(vm_name).acquire()

    @contextlib.contextmanager
    def vm_lock(self, vm_name: str | None) -> Iterator[None]:
        """Hold a shared VM's lock for the block (nothing for None, own VMs, or without locks)."""
        lock = self.hold_vm(vm_name) if vm_name is not None else None
        try:
            yield
        finally:
            if lock is not None:
                lock.release()

    def _run_field(self) -> int | None:
        manager = self.content.customFieldsManager
        if manager is None:
            return None
        if self._run_field_key is None:
            existing = next((f for f in manager.field or [] if f.name == RUN_FIELD), None)
            if existing is None:
                try:
                    existing = manager.AddCustomFieldDef(name=RUN_FIELD, moType=vim.VirtualMachine)
                except vim.fault.DuplicateName:  # another worker added it meanwhile
                    existing = next(f for f in manager.field if f.name == RUN_FIELD)
            self._run_field_key = int(existing.key)
        return self._run_field_key

    def mark_created(self, vm: Any, name: str) -> None:
        """Record a VM the run created (the guard lets the run change and delete it) and mark it with the run id."""
        if self.guard is not None:
            self.guard.created(name)
        if self.run_id is None:
            return
        key = self._run_field()
        if key is not None:
            self.content.customFieldsManager.SetField(entity=vm, key=key, value=self.run_id)

    def _tagged(self, description: str) -> str:
        return f"{description} [{RUN_TAG}{self.run_id}]".strip() if self.run_id else description

    # --- operations ---

    def enable_cbt(self, vm: Any) -> None:
        self.check("enable CBT on", vm.name)
        if not vm.config.changeTrackingEnabled:
            wait_for_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)), f"enable CBT on {vm.name}")

    def create_snapshot(self, vm: Any, name: str, description: str = "", quiesce: bool = True) -> Any:
        vm_name = vm.name
        self.check("snapshot", vm_name)
        task = vm.CreateSnapshot_Task(name=name, description=self._tagged(description), memory=False, quiesce=quiesce)
        return wait_for_task(task, f"snapshot {name} of {vm_name}")

    def remove_snapshot(self, snapshot: Any, what: str) -> None:
        if self.guard is not None:
            self.check("remove a snapshot of", snapshot.vm.name)
        wait_for_task(snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True), f"remove snapshot {what}")

    def revert_snapshot(self, snapshot: Any, what: str) -> None:
        """Revert the VM to the snapshot (its current state is lost: guarded)."""
        self.check("revert", snapshot.vm.name)
        wait_for_task(snapshot.RevertToSnapshot_Task(), f"revert to snapshot {what}")

    def snapshots(self, vm: Any) -> list[Any]:
        """Every snapshot tree node of the VM (flattened)."""
        info = vm.snapshot
        out: list[Any] = []
        stack = list(info.rootSnapshotList) if info is not None else []
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(node.childSnapshotList)
        return out

    def add_disk(self, vm: Any, capacity: int, thin: bool = True) -> None:
        """Add a new empty disk to the VM (on its home datastore)."""
        device = vim.vm.device.VirtualDisk(
            key=-1,
            controllerKey=1000,
            unitNumber=-1,
            capacityInBytes=capacity,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=thin),
        )
        change = vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=device)
        name = vm.name
        self.check("add a disk to", name)
        wait_for_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])), f"add a disk to {name}")

    def extend_disk(self, vm: Any, index: int, capacity: int) -> None:
        """Grow the VM's disk at `index` (unit order) to `capacity` bytes: a hot-extend, which vSphere allows on
        a powered-on VM whose disk has no snapshot (the guest sees the new size at its next rescan)."""
        self.check("extend a disk of", vm.name)
        disk: Any = sorted(
            (d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)),
            key=lambda d: (d.controllerKey, d.unitNumber),
        )[index]
        disk.capacityInBytes, disk.capacityInKB = capacity, capacity // 1024
        change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
        wait_for_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])), f"extend a disk of {vm.name}")

    def power_off(self, vm: Any) -> None:
        if vm.runtime.powerState != "poweredOff":
            self.check("power off", vm.name)
            wait_for_task(vm.PowerOffVM_Task(), f"power off {vm.name}")

    def power_on(self, vm: Any) -> None:
        if vm.runtime.powerState != "poweredOn":
            wait_for_task(vm.PowerOnVM_Task(), f"power on {vm.name}")

    def destroy_vm(self, vm: Any) -> None:
        name = vm.name  # read before the task starts: afterwards the VM may already be gone
        self.check("delete", name)
        self.power_off(vm)
        wait_for_task(vm.Destroy_Task(), f"destroy {name}")
        if self.guard is not None:
            self.guard.forget(name)

    # --- First Class Disks ---

    def create_fcd(self, name: str, datastore: str, capacity_mb: int) -> str:
        """A new thin First Class Disk named `name` (run-named, so the sweeper finds it); its id."""
        spec = vim.vslm.CreateSpec(
            name=name,
            capacityInMB=capacity_mb,
            keepAfterDeleteVm=True,
            backingSpec=vim.vslm.CreateSpec.DiskFileBackingSpec(
                datastore=self.datastore(datastore), provisioningType="thin"
            ),
        )
        task = self.content.vStorageObjectManager.CreateDisk_Task(spec)
        return str(wait_for_task(task, f"create FCD {name}").config.id.id)

    def delete_fcd(self, fcd_id: str, datastore: str) -> None:
        manager = self.content.vStorageObjectManager
        task = manager.DeleteVStorageObject_Task(vim.vslm.ID(id=fcd_id), self.datastore(datastore))
        wait_for_task(task, f"delete FCD {fcd_id}")

    def attach_fcd(self, vm: Any, fcd_id: str, datastore: str) -> None:
        name = vm.name
        self.check("attach a disk to", name)
        task = vm.AttachDisk_Task(vim.vslm.ID(id=fcd_id), self.datastore(datastore))
        wait_for_task(task, f"attach FCD {fcd_id} to {name}")

    def detach_fcd(self, vm: Any, fcd_id: str) -> None:
        name = vm.name
        self.check("detach a disk from", name)
        wait_for_task(vm.DetachDisk_Task(vim.vslm.ID(id=fcd_id)), f"detach FCD {fcd_id} from {name}")

    def relocate_vm(self, vm: Any, datastore: str) -> None:
        """Move the VM's storage to `datastore` (guarded like any change to a VM the run may not own)."""
        name = vm.name
        self.check("relocate", name)
        spec = vim.vm.RelocateSpec(datastore=self.datastore(datastore))
        with self.vm_lock(name):
            wait_for_task(vm.RelocateVM_Task(spec), f"relocate {name} to {datastore}")

    def clone_vm(
        self, source: Any, name: str, datastore: str | None = None, power_on: bool = False, snapshot: Any = None
    ) -> Any:
        """A clone of `source` named `name`: full, or linked over `snapshot` (its disks are deltas over the
        snapshot's). The source is locked while it is cloned; the clone is marked with the run id."""
        source_name = source.name
        self.check("clone", source_name)
        relocate = vim.vm.RelocateSpec(datastore=self.datastore(datastore)) if datastore else vim.vm.RelocateSpec()
        if snapshot is not None:
            relocate.diskMoveType = "createNewChildDiskBacking"
        config = vim.vm.ConfigSpec(annotation=f"{RUN_TAG}{self.run_id}") if self.run_id else None
        spec = vim.vm.CloneSpec(location=relocate, powerOn=power_on, config=config, snapshot=snapshot)
        with self.vm_lock(source_name):
            vm = wait_for_task(source.CloneVM_Task(source.parent, name, spec), f"clone {source_name} to {name}")
        self.mark_created(vm, name)
        return vm

    def create_vm(
        self, name: str, datastore: str, disks: list[tuple[int, bool]], guest_id: str = "otherGuest64"
    ) -> Any:
        """A VM with one new disk per (capacity, thin) on `datastore` (restore to a new VM)."""
        changes = [
            vim.vm.device.VirtualDeviceSpec(
                operation="add",
                fileOperation="create",
                device=vim.vm.device.VirtualDisk(
                    key=-1 - n,
                    controllerKey=1000,
                    unitNumber=n if n < 7 else n + 1,
                    capacityInBytes=capacity,
                    backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                        diskMode="persistent", thinProvisioned=thin, fileName=f"[{datastore}]"
                    ),
                ),
            )
            for n, (capacity, thin) in enumerate(disks)
        ]
        spec = vim.vm.ConfigSpec(
            name=name,
            guestId=guest_id,
            files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
            deviceChange=changes,
            numCPUs=1,
            memoryMB=1024,
            annotation=f"{RUN_TAG}{self.run_id}" if self.run_id else None,
        )
        vm = wait_for_task(self.datacenter.vmFolder.CreateVM_Task(spec, self.pool()), f"create VM {name}")
        self.mark_created(vm, name)
        return vm
