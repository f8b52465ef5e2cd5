"""One registry of every managed object of a simulator instance, and the base class they share.

Like govmomi's simulator: each managed-object kind lives in its own module under `objects/` and
registers its instances here; the SOAP layer only ever talks to the registry.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pyVmomi import VmomiSupport, vim, vmodl

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext
    from conformance.sim.objects.session_manager import Session

T = TypeVar("T", bound="ManagedObjectImpl")

#: The session of the SOAP call being served on this thread (None for unauthenticated calls).
current_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar("current_session", default=None)


def soap_method(wsdl_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a Python method as the implementation of the vSphere method `wsdl_name`."""

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__soap_method__ = wsdl_name  # type: ignore[attr-defined]
        return func

    return mark


#: managed-object kind (its WSDL name, e.g. "VirtualMachine") -> the class implementing it. Modules of objects/ reach
#: one another's kinds through it (`ObjectRegistry.kind`, `get_kind`, `all_kind`) instead of importing each other.
KINDS: dict[str, type[ManagedObjectImpl]] = {}


class ManagedObjectImpl:
    """Base of every simulated managed object: a moref, properties read by name, SOAP methods."""

    vim_type: ClassVar[Any] = VmomiSupport.ManagedObject
    id_prefix: ClassVar[str] = "mo"
    _soap_methods: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "vim_type" in vars(cls):  # the implementation of one managed-object kind: found by its vSphere name
            kind_name = str(cls.vim_type._wsdlName)
            if KINDS.setdefault(kind_name, cls) is not cls:
                raise TypeError(f"two implementations of {kind_name}: {KINDS[kind_name].__name__} and {cls.__name__}")
        methods: dict[str, str] = {}
        for base in reversed(cls.__mro__):
            for attr, value in vars(base).items():
                name = getattr(value, "__soap_method__", None)
                if name:
                    methods[name] = attr
        cls._soap_methods = methods

    def __init__(self, registry: ObjectRegistry, moid: str | None = None) -> None:
        self.registry = registry
        self.moid = moid or registry.new_id(self.id_prefix)
        self.ref = self.vim_type(self.moid)
        registry.add(self)

    @property
    def ctx(self) -> SimContext:
        return self.registry.ctx

    def soap_handler(self, wsdl_name: str) -> Callable[..., Any] | None:
        attr = self._soap_methods.get(wsdl_name)
        return getattr(self, attr) if attr else None

    def get_property(self, name: str) -> Any:
        """Top-level property `name`; None when unset. Subclasses define `prop_<name>` methods."""
        getter = getattr(self, f"prop_{name}", None)
        return getter() if getter is not None else None

    def prop_value(self) -> list[Any]:
        return []

    def prop_availableField(self) -> list[Any]:
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.moid}>"


class ObjectRegistry:
    """All managed objects of one simulator, the lock that serialises their state, and change signalling."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.lock = threading.RLock()
        self._objects: dict[str, ManagedObjectImpl] = {}
        self._counter = itertools.count(100)
        self._change = threading.Condition(threading.Lock())
        self.version = 0

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._counter)}"

    def add(self, obj: ManagedObjectImpl) -> None:
        with self.lock:
            if obj.moid in self._objects:
                raise ValueError(f"duplicate managed object id {obj.moid}")
            self._objects[obj.moid] = obj
        self.changed()

    def remove(self, obj: ManagedObjectImpl) -> None:
        with self.lock:
            self._objects.pop(obj.moid, None)
        self.changed()

    def lookup(self, ref: Any) -> ManagedObjectImpl:
        """The object behind a moref; vmodl.fault.ManagedObjectNotFound when it does not exist."""
        moid = ref._moId if isinstance(ref, VmomiSupport.ManagedObject) else str(ref)
        obj = self._objects.get(moid)
        if obj is None or (isinstance(ref, VmomiSupport.ManagedObject) and not isinstance(obj.ref, type(ref))):
            raise vmodl.fault.ManagedObjectNotFound(
                msg=f"The object '{ref}' has already been deleted or has not been completely created",
                obj=ref if isinstance(ref, VmomiSupport.ManagedObject) else None,
            )
        return obj

    def get(self, ref: Any, kind: type[T]) -> T:
        obj = self.lookup(ref)
        if not isinstance(obj, kind):
            raise vmodl.fault.InvalidArgument(msg=f"{ref} is not a {kind.vim_type.__name__}")
        return obj

    def kind(self, name: str) -> Any:
        """The class implementing the managed-object kind `name` ("VirtualMachine", "HostSystem", ...)."""
        try:
            return KINDS[name]
        except KeyError:
            raise vmodl.fault.NotSupported(msg=f"managed objects of kind {name} are not simulated") from None

    def get_kind(self, ref: Any, name: str) -> Any:
        """The object behind `ref`, which must be of kind `name`."""
        return self.get(ref, self.kind(name))

    def all_kind(self, name: str) -> Iterator[Any]:
        """Every object of kind `name`."""
        return self.all(self.kind(name))

    def find(self, moid: str) -> ManagedObjectImpl | None:
        return self._objects.get(moid)

    def all(self, kind: type[T]) -> Iterator[T]:
        with self.lock:
            items = list(self._objects.values())
        return (o for o in items if isinstance(o, kind))

    # --- change signalling (PropertyCollector.WaitForUpdates) ---

    def changed(self) -> None:
        with self._change:
            self.version += 1
            self._change.notify_all()

    def wait_for_change(self, seen_version: int, timeout: float) -> int:
        with self._change:
            if self.version == seen_version:
                self._change.wait(timeout)
            return self.version


def typed(value: Any, declared: Any) -> Any:
    """Give a value the pyVmomi type that untyped slots (DynamicProperty.val) need on the wire."""
    if value is None or declared is None:
        return value
    if isinstance(declared, type) and issubclass(declared, list):
        if isinstance(value, VmomiSupport.Array):
            return value
        item = getattr(declared, "Item")  # noqa: B009 - pyVmomi array types carry their item type
        return declared([typed(v, item) for v in value])
    if declared is VmomiSupport.long and isinstance(value, int) and not isinstance(value, bool):
        return VmomiSupport.long(value)
    return value


def declared_type(vim_type: Any, path: str) -> Any:
    """The declared pyVmomi type of a dotted property path of `vim_type`, or None if unknown."""
    current = vim_type
    for part in path.split("."):
        if isinstance(current, type) and issubclass(current, list):
            current = getattr(current, "Item")  # noqa: B009
        try:
            current = current._GetPropertyInfo(part).type
        except (AttributeError, KeyError):
            return None
    return current


def walk_path(value: Any, path: list[str]) -> Any:
    """Follow attribute names into a data object; None if any step is unset."""
    for part in path:
        if value is None:
            return None
        value = getattr(value, part, None)
    return value


__all__ = [
    "ManagedObjectImpl",
    "ObjectRegistry",
    "current_session",
    "declared_type",
    "soap_method",
    "typed",
    "vim",
    "walk_path",
]
