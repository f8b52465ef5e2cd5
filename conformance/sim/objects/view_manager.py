"""ViewManager and ContainerView: the usual way clients list every VM, host or datastore."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim, vmodl

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method


def descendants(root: ManagedObjectImpl, recursive: bool) -> list[ManagedEntityImpl]:
    """Inventory children of root (folders' children, datacenters' folders, clusters' hosts, hosts' VMs)."""
    out: list[ManagedEntityImpl] = []
    frontier = [root]
    while frontier:
        node = frontier.pop(0)
        for child in inventory_children(node):
            out.append(child)
            if recursive:
                frontier.append(child)
    return out


def inventory_children(node: ManagedObjectImpl) -> list[ManagedEntityImpl]:
    from conformance.sim.objects.cluster import ClusterImpl, ResourcePoolImpl
    from conformance.sim.objects.datacenter import DatacenterImpl
    from conformance.sim.objects.folder import FolderImpl

    if isinstance(node, FolderImpl):
        return list(node.children)
    if isinstance(node, DatacenterImpl):
        return list(node.folders())
    if isinstance(node, ClusterImpl):
        return [*node.hosts, node.resource_pool]
    if isinstance(node, ResourcePoolImpl):
        return list(node.vms)
    return []


class ContainerViewImpl(ManagedObjectImpl):
    vim_type = vim.view.ContainerView
    id_prefix = "session-view"

    def __init__(
        self, registry: ObjectRegistry, container: ManagedObjectImpl, types: list[Any], recursive: bool
    ) -> None:
        super().__init__(registry)
        self.container = container
        self.types = tuple(types)
        self.recursive = recursive

    def prop_container(self) -> Any:
        return self.container.ref

    def prop_type(self) -> list[str]:
        return [t.__name__.split(".")[-1] for t in self.types]

    def prop_recursive(self) -> bool:
        return self.recursive

    def prop_view(self) -> list[Any]:
        seen: dict[str, Any] = {}
        for entity in descendants(self.container, self.recursive):
            if not self.types or isinstance(entity.ref, self.types):
                seen.setdefault(entity.moid, entity.ref)
        return list(seen.values())

    @soap_method("DestroyView")
    def destroy(self) -> None:
        self.registry.remove(self)


class ListViewImpl(ManagedObjectImpl):
    vim_type = vim.view.ListView
    id_prefix = "session-listview"

    def __init__(self, registry: ObjectRegistry, refs: list[Any]) -> None:
        super().__init__(registry)
        self.refs = list(refs)

    def prop_view(self) -> list[Any]:
        return [r for r in self.refs if self.registry.find(r._moId) is not None]

    @soap_method("DestroyView")
    def destroy(self) -> None:
        self.registry.remove(self)


class ViewManagerImpl(ManagedObjectImpl):
    vim_type = vim.view.ViewManager
    id_prefix = "ViewManager"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "ViewManager")

    def prop_viewList(self) -> list[Any]:
        return [v.ref for v in self.registry.all(ContainerViewImpl)]

    @soap_method("CreateContainerView")
    def create_container_view(self, container: Any, type: list[Any] | None = None, recursive: bool = False) -> Any:
        target = self.registry.lookup(container)
        if not isinstance(target, ManagedEntityImpl):
            raise vmodl.fault.InvalidArgument(
                msg="container must be a folder, datacenter or compute resource", invalidProperty="container"
            )
        return ContainerViewImpl(self.registry, target, list(type or []), recursive).ref

    @soap_method("CreateListView")
    def create_list_view(self, obj: list[Any] | None = None) -> Any:
        return ListViewImpl(self.registry, list(obj or [])).ref
