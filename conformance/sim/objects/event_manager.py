"""EventManager: the event log (maintenance-mode transitions, snapshot and task events) and QueryEvents."""

from __future__ import annotations

import datetime
import itertools
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, current_session, soap_method

if TYPE_CHECKING:
    from conformance.sim.objects.entity import ManagedEntityImpl


class EventManagerImpl(ManagedObjectImpl):
    vim_type = vim.event.EventManager
    id_prefix = "EventManager"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "EventManager")
        self.events: list[tuple[Any, list[ManagedEntityImpl]]] = []
        self._keys = itertools.count(1)

    def post(self, event_type: type, message: str, entity: ManagedEntityImpl | None = None, /, **fields: Any) -> Any:
        """Record an event about `entity` (and, for queries, every ancestor of it)."""
        from conformance.sim.objects.datacenter import DatacenterImpl
        from conformance.sim.objects.host import HostImpl
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        session = current_session.get()
        key = next(self._keys)
        event = event_type(
            key=key,
            chainId=fields.pop("chainId", key),
            createdTime=datetime.datetime.now(datetime.UTC),
            userName=session.user_name if session else "",
            fullFormattedMessage=message,
            **fields,
        )
        related = [entity, *entity.ancestors()] if entity is not None else []
        for item in related:
            if isinstance(item, VirtualMachineImpl) and event.vm is None:
                event.vm = vim.event.VmEventArgument(vm=item.ref, name=item.name)
            elif isinstance(item, HostImpl) and event.host is None:
                event.host = vim.event.HostEventArgument(host=item.ref, name=item.name)
            elif isinstance(item, DatacenterImpl) and event.datacenter is None:
                event.datacenter = vim.event.DatacenterEventArgument(datacenter=item.ref, name=item.name)
        with self.registry.lock:
            self.events.append((event, related))
        self.registry.changed()
        return event

    def prop_latestEvent(self) -> Any:
        return self.events[-1][0] if self.events else None

    def prop_maxCollector(self) -> int:
        return 32

    def prop_description(self) -> Any:
        return vim.event.EventDescription(category=[], eventInfo=[])

    @soap_method("QueryEvents")
    def query_events(self, filter: Any) -> list[Any]:
        """Filter by entity (with recursion 'self', 'children' or 'all'), event type ids, time and chain."""
        selected = []
        type_ids = set(filter.eventTypeId or [])
        wanted_types = tuple(t for t in (getattr(vim.event, n, None) for n in filter.type or []) if t)
        for event, related in self.events:
            if filter.entity is not None and not self._entity_matches(filter.entity, related):
                continue
            if type_ids and type(event).__name__.split(".")[-1] not in type_ids:
                continue
            if wanted_types and not isinstance(event, wanted_types):
                continue
            if filter.time is not None:
                if filter.time.beginTime and event.createdTime < filter.time.beginTime:
                    continue
                if filter.time.endTime and event.createdTime > filter.time.endTime:
                    continue
            if filter.eventChainId is not None and event.chainId != filter.eventChainId:
                continue
            if filter.userName is not None and event.userName not in (filter.userName.userList or []):
                continue
            selected.append(event)
        return selected

    @staticmethod
    def _entity_matches(spec: Any, related: list[ManagedEntityImpl]) -> bool:
        if not related:
            return False
        target = spec.entity._moId
        recursion = spec.recursion or "self"
        if recursion == "self":
            return related[0].moid == target
        if recursion == "children":
            return related[0].moid == target or (len(related) > 1 and related[1].moid == target)
        return any(item.moid == target for item in related)
