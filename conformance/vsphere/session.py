"""The harness's vSphere API client (pyVmomi only): inventory lookups and the operations sequences need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from conformance.vsphere.connection import Endpoint, connect, disconnect
from conformance.vsphere.tasks import wait_for_task


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
    """A logged-in session plus lookups by name."""

    def __init__(self, endpoint: Endpoint, user: str, password: str, datacenter: str) -> None:
        self.endpoint = endpoint
        self.si = connect(endpoint, user, password)
        self.content = self.si.RetrieveContent()
        self.datacenter_name = datacenter

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

    # --- operations ---

    def enable_cbt(self, vm: Any) -> None:
        if not vm.config.changeTrackingEnabled:
            wait_for_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)), f"enable CBT on {vm.name}")

    def create_snapshot(self, vm: Any, name: str, description: str = "", quiesce: bool = True) -> Any:
        task = vm.CreateSnapshot_Task(name=name, description=description, memory=False, quiesce=quiesce)
        return wait_for_task(task, f"snapshot {name} of {vm.name}")

    def remove_snapshot(self, snapshot: Any, what: str) -> None:
        wait_for_task(snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True), f"remove snapshot {what}")

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
        wait_for_task(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[change])), f"add a disk to {name}")

    def power_off(self, vm: Any) -> None:
        if vm.runtime.powerState != "poweredOff":
            wait_for_task(vm.PowerOffVM_Task(), f"power off {vm.name}")

    def power_on(self, vm: Any) -> None:
        if vm.runtime.powerState != "poweredOn":
            wait_for_task(vm.PowerOnVM_Task(), f"power on {vm.name}")

    def destroy_vm(self, vm: Any) -> None:
        self.power_off(vm)
        name = vm.name  # read before the task starts: afterwards the VM may already be gone
        wait_for_task(vm.Destroy_Task(), f"destroy {name}")

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
        )
        return wait_for_task(self.datacenter.vmFolder.CreateVM_Task(spec, self.pool()), f"create VM {name}")
