"""Datacenter: owns the vm, host, datastore and network folders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.objects.folder import FolderImpl
from conformance.sim.registry import ObjectRegistry

if TYPE_CHECKING:
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.network import NetworkImpl


class DatacenterImpl(ManagedEntityImpl):
    vim_type = vim.Datacenter
    id_prefix = "datacenter"

    def __init__(self, registry: ObjectRegistry, name: str, parent: FolderImpl) -> None:
        super().__init__(registry, name, parent)
        self.vm_folder = FolderImpl(registry, "vm", ["Folder", "VirtualMachine", "VirtualApp"], self)
        self.host_folder = FolderImpl(registry, "host", ["Folder", "ComputeResource"], self)
        self.datastore_folder = FolderImpl(registry, "datastore", ["Folder", "Datastore", "StoragePod"], self)
        self.network_folder = FolderImpl(registry, "network", ["Folder", "Network"], self)

    def folders(self) -> list[FolderImpl]:
        return [self.vm_folder, self.host_folder, self.datastore_folder, self.network_folder]

    def datastores(self) -> list[DatastoreImpl]:
        from conformance.sim.objects.datastore import DatastoreImpl

        return [c for c in self.datastore_folder.children if isinstance(c, DatastoreImpl)]

    def networks(self) -> list[NetworkImpl]:
        from conformance.sim.objects.network import NetworkImpl

        return [c for c in self.network_folder.children if isinstance(c, NetworkImpl)]

    def prop_vmFolder(self) -> Any:
        return self.vm_folder.ref

    def prop_hostFolder(self) -> Any:
        return self.host_folder.ref

    def prop_datastoreFolder(self) -> Any:
        return self.datastore_folder.ref

    def prop_networkFolder(self) -> Any:
        return self.network_folder.ref

    def prop_datastore(self) -> list[Any]:
        return [d.ref for d in self.datastores()]

    def prop_network(self) -> list[Any]:
        return [n.ref for n in self.networks()]

    def prop_configuration(self) -> Any:
        return vim.Datacenter.ConfigInfo(defaultHardwareVersionKey="vmx-13")
