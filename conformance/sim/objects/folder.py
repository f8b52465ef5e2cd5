"""Folder: the containers of the inventory tree (root, vm, host, datastore and network folders)."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from conformance.sim.objects.entity import ManagedEntityImpl
from conformance.sim.registry import ObjectRegistry


class FolderImpl(ManagedEntityImpl):
    vim_type = vim.Folder
    id_prefix = "group"

    def __init__(
        self,
        registry: ObjectRegistry,
        name: str,
        child_type: list[str],
        parent: ManagedEntityImpl | None = None,
        moid: str | None = None,
    ) -> None:
        self.children: list[ManagedEntityImpl] = []
        self.child_type = child_type
        super().__init__(registry, name, parent, moid)

    def add_child(self, child: ManagedEntityImpl) -> None:
        if child not in self.children:
            self.children.append(child)
            self.registry.changed()

    def remove_child(self, child: ManagedEntityImpl) -> None:
        if child in self.children:
            self.children.remove(child)
            self.registry.changed()

    def find_child(self, name: str) -> ManagedEntityImpl | None:
        return next((c for c in self.children if c.name == name), None)

    def prop_childEntity(self) -> list[Any]:
        return [c.ref for c in self.children]

    def prop_childType(self) -> list[str]:
        return list(self.child_type)
