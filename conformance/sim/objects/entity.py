"""ManagedEntity: the part every inventory object shares (name, parent, recent tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry

if TYPE_CHECKING:
    from conformance.sim.objects.task import TaskImpl


class ManagedEntityImpl(ManagedObjectImpl):
    vim_type = vim.ManagedEntity

    def __init__(
        self, registry: ObjectRegistry, name: str, parent: ManagedEntityImpl | None = None, moid: str | None = None
    ) -> None:
        self.name = name
        self.parent = parent
        self.recent_tasks: list[TaskImpl] = []
        super().__init__(registry, moid)
        if parent is not None:
            parent.add_child(self)

    def add_child(self, child: ManagedEntityImpl) -> None:
        """Entities that hold children (folders, clusters) override this."""

    def remove_child(self, child: ManagedEntityImpl) -> None:
        """Entities that hold children override this."""

    def ancestors(self) -> list[ManagedEntityImpl]:
        chain: list[ManagedEntityImpl] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

    def inventory_path(self) -> str:
        """Path as SearchIndex.FindByInventoryPath understands it (datacenter/vm/name); root excluded."""
        parts = [self.name] + [a.name for a in self.ancestors()[:-1]]
        return "/".join(reversed(parts))

    def prop_name(self) -> str:
        return self.name

    def prop_parent(self) -> Any:
        return self.parent.ref if self.parent is not None else None

    def prop_overallStatus(self) -> str:
        return "green"

    def prop_configStatus(self) -> str:
        return "green"

    def prop_recentTask(self) -> list[Any]:
        return [t.ref for t in self.recent_tasks if t.is_recent()]

    def prop_alarmActionsEnabled(self) -> bool:
        return True

    def prop_triggeredAlarmState(self) -> list[Any]:
        return []

    def prop_declaredAlarmState(self) -> list[Any]:
        return []

    def prop_customValue(self) -> list[Any]:
        manager = self.ctx.custom_fields_manager
        return manager.values_of(self.moid) if manager is not None else []

    def prop_value(self) -> list[Any]:
        return self.prop_customValue()

    def prop_availableField(self) -> list[Any]:
        manager = self.ctx.custom_fields_manager
        return manager.fields_for(self.vim_type) if manager is not None else []

    def prop_disabledMethod(self) -> list[Any]:
        return sorted(self.ctx.disabled_methods(self))

    def prop_permission(self) -> list[Any]:
        return []

    def prop_effectiveRole(self) -> list[int]:
        return [-1]

    def prop_tag(self) -> list[Any]:
        return []

    def destroy_entity(self) -> None:
        if self.parent is not None:
            self.parent.remove_child(self)
        self.registry.remove(self)
