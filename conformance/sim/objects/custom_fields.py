"""CustomFieldsManager: custom attributes on entities (a run marks what it creates with its run id)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext


class CustomFieldsManagerImpl(ManagedObjectImpl):
    vim_type = vim.CustomFieldsManager
    id_prefix = "CustomFieldsManager"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "CustomFieldsManager")
        self.fields: dict[int, Any] = {}
        self.values: dict[tuple[str, int], str] = {}
        self._keys = itertools.count(100)

    def prop_field(self) -> list[Any]:
        return list(self.fields.values())

    def values_of(self, moid: str) -> list[Any]:
        return [
            vim.CustomFieldsManager.StringValue(key=key, value=value)
            for (entity, key), value in sorted(self.values.items())
            if entity == moid
        ]

    def fields_for(self, vim_type: Any) -> list[Any]:
        return [
            f for f in self.fields.values() if f.managedObjectType is None or issubclass(vim_type, f.managedObjectType)
        ]

    @soap_method("AddCustomFieldDef")
    def add(self, name: str, moType: Any = None, fieldDefPolicy: Any = None, fieldPolicy: Any = None) -> Any:
        for existing in self.fields.values():
            if existing.name == name and existing.managedObjectType == moType:
                raise vim.fault.DuplicateName(msg=f"The name '{name}' already exists.", name=name)
        key = next(self._keys)
        field = vim.CustomFieldsManager.FieldDef(
            key=key,
            name=name,
            type=str,
            managedObjectType=moType,
            fieldDefPrivileges=fieldDefPolicy,
            fieldInstancePrivileges=fieldPolicy,
        )
        self.fields[key] = field
        self.registry.changed()
        return field

    @soap_method("RemoveCustomFieldDef")
    def remove(self, key: int) -> None:
        if self.fields.pop(key, None) is None:
            raise vim.fault.NotFound(msg=f"no custom field with key {key}")
        self.values = {k: v for k, v in self.values.items() if k[1] != key}
        self.registry.changed()

    @soap_method("RenameCustomFieldDef")
    def rename(self, key: int, name: str) -> None:
        if key not in self.fields:
            raise vim.fault.NotFound(msg=f"no custom field with key {key}")
        self.fields[key].name = name
        self.registry.changed()

    @soap_method("SetField")
    def set_field(self, entity: Any, key: int, value: str) -> None:
        if key not in self.fields:
            raise vim.fault.NotFound(msg=f"no custom field with key {key}")
        target = self.registry.lookup(entity)
        if value:
            self.values[(target.moid, key)] = value
        else:
            self.values.pop((target.moid, key), None)
        self.registry.changed()


def register(ctx: SimContext) -> None:
    ctx.custom_fields_manager = CustomFieldsManagerImpl(ctx.registry)
