"""PropertyCollector: RetrievePropertiesEx with traversal specs, paging, filters and WaitForUpdates(Ex)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable
from typing import Any

from pyVmomi import VmomiSupport, vmodl

from conformance.sim.registry import (
    ManagedObjectImpl,
    ObjectRegistry,
    current_session,
    declared_type,
    soap_method,
    typed,
    walk_path,
)

PC = vmodl.query.PropertyCollector
MAX_WAIT_DEFAULT = 60.0
#: rendered property values: object id -> {path: repr(value)}
Rendered = dict[str, dict[str, str]]
#: collector versions remembered for clients that wait from an older one
HISTORY = 256


def _unlocked(func: Any) -> Any:
    """Blocking calls must not hold the registry lock while they wait."""
    func.__soap_unlocked__ = True
    return func


class Selection:
    """Resolves a FilterSpec into (object, property values) pairs."""

    def __init__(self, registry: ObjectRegistry, specs: Iterable[Any]) -> None:
        self.registry = registry
        self.specs = list(specs)

    def objects(self, spec: Any) -> list[ManagedObjectImpl]:
        named = {s.name: s for o in spec.objectSet for s in (o.selectSet or []) if s.name}
        for obj_spec in spec.objectSet:
            for sel in obj_spec.selectSet or []:
                self._collect_names(sel, named)
        found: dict[str, ManagedObjectImpl] = {}
        for obj_spec in spec.objectSet:
            start = self.registry.lookup(obj_spec.obj)
            if not obj_spec.skip:
                found.setdefault(start.moid, start)
            self._traverse(start, obj_spec.selectSet or [], named, found, set())
        return list(found.values())

    def _collect_names(self, sel: Any, named: dict[str, Any]) -> None:
        if isinstance(sel, PC.TraversalSpec):
            if sel.name and sel.name not in named:
                named[sel.name] = sel
            for child in sel.selectSet or []:
                if isinstance(child, PC.TraversalSpec) and child.name not in named:
                    self._collect_names(child, named)

    def _traverse(
        self,
        obj: ManagedObjectImpl,
        selections: list[Any],
        named: dict[str, Any],
        found: dict[str, ManagedObjectImpl],
        seen: set[tuple[str, str]],
    ) -> None:
        for sel in selections:
            spec = sel if isinstance(sel, PC.TraversalSpec) else named.get(sel.name)
            if spec is None or not isinstance(obj.ref, spec.type):
                continue
            marker = (obj.moid, spec.name or id(spec).__str__())
            if marker in seen:
                continue
            seen.add(marker)
            value = obj.get_property(spec.path.split(".")[0])
            value = walk_path(value, spec.path.split(".")[1:])
            targets = value if isinstance(value, list) else [value] if value is not None else []
            for ref in targets:
                if not isinstance(ref, VmomiSupport.ManagedObject):
                    continue
                target = self.registry.find(ref._moId)
                if target is None:
                    continue
                if not spec.skip:
                    found.setdefault(target.moid, target)
                self._traverse(target, spec.selectSet or [], named, found, seen)

    def contents(self) -> list[Any]:
        results: dict[str, Any] = {}
        for spec in self.specs:
            for obj in self.objects(spec):
                props = self.properties(obj, spec.propSet)
                if props is None:
                    continue
                content = results.get(obj.moid)
                if content is None:
                    results[obj.moid] = PC.ObjectContent(obj=obj.ref, propSet=props)
                else:
                    have = {p.name for p in content.propSet}
                    content.propSet.extend(p for p in props if p.name not in have)
        return list(results.values())

    def properties(self, obj: ManagedObjectImpl, prop_specs: list[Any]) -> list[Any] | None:
        """DynamicProperty list for the specs that apply to obj's type, or None if none applies."""
        applicable = [p for p in prop_specs if isinstance(obj.ref, p.type)]
        if not applicable:
            return None
        paths: list[str] = []
        for prop_spec in applicable:
            if prop_spec.all:
                paths.extend(p.name for p in obj.vim_type._GetPropertyList())
            paths.extend(prop_spec.pathSet or [])
        out = []
        for path in dict.fromkeys(paths):
            value = property_value(obj, path)
            if value is None or (isinstance(value, list) and not value and "." in path):
                continue
            out.append(vmodl.DynamicProperty(name=path, val=typed(value, declared_type(obj.vim_type, path))))
        return out


def property_value(obj: ManagedObjectImpl, path: str) -> Any:
    head, *rest = path.split(".")
    value = obj.get_property(head)
    return walk_path(value, rest) if rest else value


class FilterImpl(ManagedObjectImpl):
    vim_type = PC.Filter
    id_prefix = "session-filter"

    def __init__(self, registry: ObjectRegistry, collector: PropertyCollectorImpl, spec: Any, partial: bool) -> None:
        super().__init__(registry)
        self.collector = collector
        self.spec = spec
        self.partial_updates = partial
        session = current_session.get()
        self.session_key = session.key if session else ""

    def prop_spec(self) -> Any:
        return self.spec

    def prop_partialUpdates(self) -> bool:
        return self.partial_updates

    def snapshot(self) -> dict[str, tuple[Any, dict[str, Any]]]:
        """Current values: object id -> (moref, {path: value})."""
        selection = Selection(self.registry, [self.spec])
        current: dict[str, tuple[Any, dict[str, Any]]] = {}
        for obj in selection.objects(self.spec):
            props = selection.properties(obj, self.spec.propSet) or []
            current[obj.moid] = (obj.ref, {p.name: p.val for p in props})
        return current

    def diff(self, before: Rendered | None, current: dict[str, tuple[Any, dict[str, Any]]]) -> Any | None:
        """PropertyFilterUpdate from `before` (rendered values at the client's version) to `current`."""
        before = before or {}
        object_updates = []
        for moid, (ref, props) in current.items():
            old = before.get(moid)
            if old is None:
                changes = [PC.Change(name=n, op="assign", val=props[n]) for n in props]
                object_updates.append(PC.ObjectUpdate(kind="enter", obj=ref, changeSet=changes))
                continue
            changes = [PC.Change(name=n, op="assign", val=v) for n, v in props.items() if old.get(n) != repr(v)]
            changes += [PC.Change(name=n, op="remove") for n in old if n not in props]
            if changes:
                object_updates.append(PC.ObjectUpdate(kind="modify", obj=ref, changeSet=changes))
        for moid in before:
            if moid not in current:
                obj = self.registry.find(moid)
                object_updates.append(PC.ObjectUpdate(kind="leave", obj=obj.ref if obj else None, changeSet=[]))
        if not object_updates:
            return None
        return PC.FilterUpdate(filter=self.ref, objectSet=object_updates, missingSet=[])

    @soap_method("DestroyPropertyFilter")
    def destroy(self) -> None:
        self.collector.filters.remove(self)
        self.registry.remove(self)


def render(current: dict[str, tuple[Any, dict[str, Any]]]) -> Rendered:
    return {moid: {n: repr(v) for n, v in props.items()} for moid, (_, props) in current.items()}


class PropertyCollectorImpl(ManagedObjectImpl):
    vim_type = PC
    id_prefix = "session-pc"

    def __init__(self, registry: ObjectRegistry, moid: str | None = None) -> None:
        super().__init__(registry, moid)
        self.filters: list[FilterImpl] = []
        self._pages: dict[str, list[Any]] = {}
        self._tokens = itertools.count(1)
        self._version = 0
        self._history: dict[str, dict[str, Rendered]] = {}
        self._cancel = threading.Event()
        self._wait_lock = threading.Lock()

    def prop_filter(self) -> list[Any]:
        return [f.ref for f in self.filters]

    @soap_method("CreatePropertyCollector")
    def create_collector(self) -> Any:
        return PropertyCollectorImpl(self.registry).ref

    @soap_method("DestroyPropertyCollector")
    def destroy_collector(self) -> None:
        if self.moid != "propertyCollector":
            self.registry.remove(self)

    @soap_method("CreateFilter")
    def create_filter(self, spec: Any, partialUpdates: bool) -> Any:
        Selection(self.registry, [spec]).objects(spec)  # validates the starting objects exist
        flt = FilterImpl(self.registry, self, spec, partialUpdates)
        self.filters.append(flt)
        return flt.ref

    @soap_method("RetrieveContents")
    def retrieve_contents(self, specSet: list[Any]) -> list[Any]:
        return Selection(self.registry, specSet).contents()

    @soap_method("RetrieveProperties")
    def retrieve_properties(self, specSet: list[Any]) -> list[Any]:
        return Selection(self.registry, specSet).contents()

    @soap_method("RetrievePropertiesEx")
    def retrieve_properties_ex(self, specSet: list[Any], options: Any) -> Any:
        contents = Selection(self.registry, specSet).contents()
        if not contents:
            return None
        return self._page(contents, options.maxObjects if options else None)

    @soap_method("ContinueRetrievePropertiesEx")
    def continue_retrieve(self, token: str) -> Any:
        remaining = self._pages.pop(token, None)
        if remaining is None:
            raise vmodl.fault.InvalidArgument(msg=f"unknown or finished token {token}", invalidProperty="token")
        page_size = len(remaining[0]) if remaining else 0
        return self._page(remaining[1], page_size) if remaining else None

    @soap_method("CancelRetrievePropertiesEx")
    def cancel_retrieve(self, token: str) -> None:
        self._pages.pop(token, None)

    def _page(self, contents: list[Any], max_objects: int | None) -> Any:
        if not max_objects or max_objects >= len(contents):
            return PC.RetrieveResult(objects=contents)
        token = str(next(self._tokens))
        self._pages[token] = [contents[:max_objects], contents[max_objects:]]
        return PC.RetrieveResult(objects=contents[:max_objects], token=token)

    # --- updates ---

    def _session_filters(self) -> list[FilterImpl]:
        session = current_session.get()
        key = session.key if session else ""
        return [f for f in self.filters if f.session_key == key]

    def _updates_since(self, version: str | None) -> Any | None:
        """UpdateSet from the client's `version` to now; None when nothing changed.

        Versions are kept per collector with the rendered state they stood for, so concurrent waiters
        that pass different versions each get what they have not seen (as vCenter does).
        """
        with self.registry.lock:
            filters = self._session_filters()
            base = self._history.get(version or "", {})
            current = {f.moid: f.snapshot() for f in filters}
            updates = [u for f in filters if (u := f.diff(base.get(f.moid), current[f.moid])) is not None]
            if not updates:
                return None
            self._version += 1
            new_version = f"{self._version}"
            self._history[new_version] = {moid: render(state) for moid, state in current.items()}
            while len(self._history) > HISTORY:
                self._history.pop(next(iter(self._history)))
            return PC.UpdateSet(version=new_version, filterSet=updates)

    def _wait(self, version: str | None, max_wait: float | None) -> Any:
        if version and version not in self._history:
            raise vmodl.query.InvalidCollectorVersion(msg=f"unknown or expired collector version {version}")
        session = current_session.get()
        deadline = time.monotonic() + (MAX_WAIT_DEFAULT if max_wait is None else max_wait)
        seen = -1
        self._cancel.clear()
        while True:
            seen_now = self.registry.version
            if seen_now != seen:
                seen = seen_now
                update_set = self._updates_since(version)
                if update_set is not None:
                    return update_set
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._cancel.is_set():
                return None if max_wait is not None else PC.UpdateSet(version=version or "", filterSet=[])
            if session is not None and not self.registry.ctx.session_manager.session_for_cookie(session.cookie):
                raise vmodl.fault.RequestCanceled(msg="session ended")
            self.registry.wait_for_change(seen, min(remaining, 1.0))

    @soap_method("WaitForUpdatesEx")
    @_unlocked
    def wait_for_updates_ex(self, version: str | None = None, options: Any = None) -> Any:
        max_wait = options.maxWaitSeconds if options is not None and options.maxWaitSeconds is not None else None
        return self._wait(version, float(max_wait) if max_wait is not None else None)

    @soap_method("WaitForUpdates")
    @_unlocked
    def wait_for_updates(self, version: str | None = None) -> Any:
        return self._wait(version, None)

    @soap_method("CheckForUpdates")
    def check_for_updates(self, version: str | None = None) -> Any:
        return self._updates_since(version)

    @soap_method("CancelWaitForUpdates")
    def cancel_wait(self) -> None:
        self._cancel.set()
        self.registry.changed()
