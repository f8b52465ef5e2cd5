"""SearchIndex: FindByUuid, FindByInventoryPath, FindChild, FindByDatastorePath."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.objects.view_manager import descendants, inventory_children
from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method


class SearchIndexImpl(ManagedObjectImpl):
    vim_type = vim.SearchIndex
    id_prefix = "SearchIndex"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "SearchIndex")

    def _root(self) -> ManagedObjectImpl:
        return self.registry.ctx.root_folder

    @soap_method("FindByUuid")
    def find_by_uuid(
        self, datacenter: Any = None, uuid: str = "", vmSearch: bool = False, instanceUuid: bool | None = None
    ) -> Any:
        from conformance.sim.objects.host import HostImpl
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        root = self.registry.lookup(datacenter) if datacenter is not None else self._root()
        wanted = uuid.lower()
        for entity in descendants(root, True):
            if vmSearch and isinstance(entity, VirtualMachineImpl):
                have = entity.instance_uuid if instanceUuid else entity.bios_uuid
                if have.lower() == wanted:
                    return entity.ref
            if not vmSearch and isinstance(entity, HostImpl) and entity.uuid.lower() == wanted:
                return entity.ref
        return None

    @soap_method("FindAllByUuid")
    def find_all_by_uuid(
        self, datacenter: Any = None, uuid: str = "", vmSearch: bool = False, instanceUuid: bool | None = None
    ) -> list[Any]:
        found = self.find_by_uuid(datacenter, uuid, vmSearch, instanceUuid)
        return [found] if found is not None else []

    @soap_method("FindByInventoryPath")
    def find_by_inventory_path(self, inventoryPath: str) -> Any:
        node: ManagedObjectImpl = self._root()
        for part in [p for p in inventoryPath.strip("/").split("/") if p]:
            match = next((c for c in inventory_children(node) if c.name == part), None)
            if match is None:
                return None
            node = match
        return node.ref

    @soap_method("FindChild")
    def find_child(self, entity: Any, name: str) -> Any:
        parent = self.registry.lookup(entity)
        match = next((c for c in inventory_children(parent) if c.name == name), None)
        return match.ref if match is not None else None

    @soap_method("FindByDatastorePath")
    def find_by_datastore_path(self, datacenter: Any, path: str) -> Any:
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        for vm in self.registry.all(VirtualMachineImpl):
            if vm.vmx_path == path:
                return vm.ref
        return None

    @soap_method("FindByIp")
    def find_by_ip(self, datacenter: Any = None, ip: str = "", vmSearch: bool = False) -> Any:
        return None

    @soap_method("FindByDnsName")
    def find_by_dns_name(self, datacenter: Any = None, dnsName: str = "", vmSearch: bool = False) -> Any:
        root = self.registry.lookup(datacenter) if datacenter is not None else self._root()
        for entity in descendants(root, True):
            if isinstance(entity, ManagedEntityImpl) and entity.name == dnsName:
                return entity.ref
        return None
