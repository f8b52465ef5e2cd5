"""Datastore: a folder under the simulator's state directory, with capacity and free space tracked."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.registry import ObjectRegistry
from conformance.sim.storage.space import DatastoreSpace

if TYPE_CHECKING:
    from conformance.sim.objects.host import HostImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

#: summary.type strings (HostFileSystemVolumeFileSystemType) the simulator can present
DATASTORE_TYPES = ("VMFS", "NFS", "NFS41", "vsan", "VVOL")
#: datastore types whose disks a SAN-attached physical proxy can read (block storage)
BLOCK_TYPES = ("VMFS",)


class DatastoreImpl(ManagedEntityImpl):
    vim_type = vim.Datastore
    id_prefix = "datastore"

    def __init__(
        self, registry: ObjectRegistry, name: str, parent: ManagedEntityImpl, ds_type: str, capacity: int
    ) -> None:
        if ds_type not in DATASTORE_TYPES:
            raise ValueError(f"datastore {name}: type {ds_type!r} is not one of {', '.join(DATASTORE_TYPES)}")
        super().__init__(registry, name, parent)
        self.ds_type = ds_type
        self.uuid = uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:8]
        self.space = DatastoreSpace(capacity)
        self.hosts: list[HostImpl] = []
        self.path = Path(registry.ctx.state_dir) / "datastores" / name
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        folder = {
            "VMFS": "vmfs/volumes",
            "NFS": "vmfs/volumes",
            "NFS41": "vmfs/volumes",
            "vsan": "vmfs/volumes/vsan:",
            "VVOL": "vmfs/volumes/vvol:",
        }[self.ds_type]
        return f"ds:///{folder}/{self.uuid}/"

    def local_path(self, relative: str) -> Path:
        """Host path of a file inside this datastore; refuses paths that climb out of it."""
        candidate = (self.path / relative.lstrip("/")).resolve()
        if candidate != self.path.resolve() and self.path.resolve() not in candidate.parents:
            raise vim.fault.InvalidDatastorePath(
                msg=f"Invalid datastore path '[{self.name}] {relative}': it leaves the datastore",
                datastore=self.ref,
                name=self.name,
                datastorePath=f"[{self.name}] {relative}",
            )
        return candidate

    def datastore_path(self, local: Path) -> str:
        """'[name] relative/path' for a host path inside this datastore."""
        return f"[{self.name}] {local.resolve().relative_to(self.path.resolve()).as_posix()}"

    def vms(self) -> list[VirtualMachineImpl]:
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        return [vm for vm in self.registry.all(VirtualMachineImpl) if self in vm.datastores()]

    def prop_summary(self) -> Any:
        return vim.Datastore.Summary(
            datastore=self.ref,
            name=self.name,
            url=self.url,
            capacity=self.space.capacity,
            freeSpace=self.space.free(),
            uncommitted=0,
            accessible=True,
            multipleHostAccess=len(self.hosts) > 1,
            type=self.ds_type,
            maintenanceMode="normal",
        )

    def prop_info(self) -> Any:
        common: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "freeSpace": self.space.free(),
            "maxFileSize": 62 * 2**40,
            "maxVirtualDiskCapacity": 62 * 2**40,
            "maxMemoryFileSize": 62 * 2**40,
            "containerId": self.uuid,
        }
        if self.ds_type == "VMFS":
            return vim.host.VmfsDatastoreInfo(
                **common,
                vmfs=vim.host.VmfsVolume(
                    type="VMFS",
                    name=self.name,
                    capacity=self.space.capacity,
                    blockSizeMb=1,
                    maxBlocks=63 * 2**20,
                    majorVersion=6,
                    version="6.82",
                    uuid=self.uuid,
                    ssd=True,
                    local=False,
                    extent=[
                        vim.host.ScsiDisk.Partition(diskName=f"naa.6000c29{self.uuid.replace('-', '')}", partition=1)
                    ],
                ),
            )
        if self.ds_type in ("NFS", "NFS41"):
            return vim.host.NasDatastoreInfo(
                **common,
                nas=vim.host.NasVolume(
                    type=self.ds_type,
                    name=self.name,
                    capacity=self.space.capacity,
                    remoteHost="nfs.sim.local",
                    remotePath=f"/exports/{self.name}",
                ),
            )
        if self.ds_type == "vsan":
            return vim.host.VsanDatastoreInfo(**common, membershipUuid=self.uuid)
        return vim.host.VvolDatastoreInfo(**common)

    def prop_capability(self) -> Any:
        return vim.Datastore.Capability(
            directoryHierarchySupported=True,
            rawDiskMappingsSupported=self.ds_type == "VMFS",
            perFileThinProvisioningSupported=True,
            storageIORMSupported=True,
            nativeSnapshotSupported=self.ds_type in ("VVOL", "vsan"),
            topLevelDirectoryCreateSupported=True,
            seSparseSupported=True,
            vmfsSparseSupported=self.ds_type == "VMFS",
            vsanSparseSupported=self.ds_type == "vsan",
        )

    def prop_host(self) -> list[Any]:
        return [
            vim.Datastore.HostMount(
                key=h.ref,
                mountInfo=vim.host.MountInfo(
                    path=f"/vmfs/volumes/{self.uuid}", accessMode="readWrite", mounted=True, accessible=True
                ),
            )
            for h in self.hosts
        ]

    def prop_vm(self) -> list[Any]:
        return [vm.ref for vm in self.vms()]

    def prop_browser(self) -> Any:
        return None

    def refresh(self) -> None:
        self.registry.changed()

    def check_accessible(self) -> None:
        if not self.path.exists():
            raise vmodl.fault.SystemError(msg=f"datastore {self.name} folder is gone", reason="inaccessible")
