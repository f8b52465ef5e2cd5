"""The simulator's inventory as data: the default one, tests' own (TOML file or builder), and its build."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

from conformance.input_errors import InputError

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext


class InventoryError(InputError):
    """An inventory description that cannot be built; the message names the entry and the problem."""


@dataclass
class DatastoreSpec:
    name: str
    type: str
    capacity: int = 4 * 2**40


@dataclass
class VmSpec:
    name: str
    datastore: str
    host: str
    guest_id: str = "rhel8_64Guest"
    guest_full_name: str = "Red Hat Enterprise Linux 8 (64-bit)"
    guest_detail: str = ""
    disks: list[int] = field(default_factory=lambda: [64 * 2**20])
    role: str = "target"
    power_on: bool = True
    cbt: bool = False
    provisioning: str = "thin"


@dataclass
class PhysicalProxySpec:
    name: str
    os: str
    datastores: list[str]


@dataclass
class InventorySpec:
    """A small builder: `InventorySpec().datastore(...).vm(...)` or `load_inventory(path)`."""

    datacenter: str = "dc1"
    cluster: str = "cluster1"
    hosts: list[str] = field(default_factory=lambda: ["esx-01.sim.local", "esx-02.sim.local", "esx-03.sim.local"])
    datastores: list[DatastoreSpec] = field(default_factory=list)
    vms: list[VmSpec] = field(default_factory=list)
    physical_proxies: list[PhysicalProxySpec] = field(default_factory=list)

    def datastore(self, name: str, type: str, capacity: int = 4 * 2**40) -> InventorySpec:
        self.datastores.append(DatastoreSpec(name, type, capacity))
        return self

    def vm(self, name: str, datastore: str, host: str | None = None, **options: Any) -> InventorySpec:
        self.vms.append(VmSpec(name=name, datastore=datastore, host=host or self.hosts[0], **options))
        return self

    def physical_proxy(self, name: str, os: str, datastores: list[str]) -> InventorySpec:
        self.physical_proxies.append(PhysicalProxySpec(name, os, datastores))
        return self


def parse_inventory(raw: dict[str, Any], source: str) -> InventorySpec:
    if not isinstance(raw, dict):
        raise InventoryError(f"{source}: not a table of inventory fields")
    unknown = sorted(set(raw) - {f.name for f in fields(InventorySpec)})
    if unknown:
        raise InventoryError(f"{source}: unknown field {unknown[0]!r} (see conformance/data/default_inventory.toml)")
    defaults = InventorySpec()
    spec = InventorySpec(
        datacenter=_typed(raw.get("datacenter", defaults.datacenter), str, f"{source}: datacenter"),
        cluster=_typed(raw.get("cluster", defaults.cluster), str, f"{source}: cluster"),
        hosts=_typed(raw.get("hosts", defaults.hosts), list[str], f"{source}: hosts"),
        datastores=[_record(DatastoreSpec, d, f"{source}: datastores") for d in _list(raw, "datastores", source)],
        vms=[_record(VmSpec, v, f"{source}: vms") for v in _list(raw, "vms", source)],
        physical_proxies=[
            _record(PhysicalProxySpec, p, f"{source}: physical_proxies") for p in _list(raw, "physical_proxies", source)
        ],
    )
    validate(spec, source)
    return spec


def _list(raw: dict[str, Any], key: str, source: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise InventoryError(f"{source}: {key} must be a list of tables ([[{key}]])")
    return value


def _record(cls: type[Any], raw: Any, where: str) -> Any:
    """One [[table]] as `cls`, every field of the type its annotation names; InventoryError naming it otherwise."""
    if not isinstance(raw, dict):
        raise InventoryError(f"{where}: each entry must be a table, not {type(raw).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InventoryError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(known)})")
    missing = [n for n, f in known.items() if n not in raw and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise InventoryError(f"{where}: entry {raw.get('name', '?')!r} lacks {missing[0]!r}")
    label = f"{where} {raw.get('name')!r}" if isinstance(raw.get("name"), str) else where
    return cls(**{key: _typed(value, hints[key], f"{label}: {key}") for key, value in raw.items()})


def _typed(value: Any, kind: Any, where: str) -> Any:
    """`value` when it is of `kind` (str, int, bool, list[str], list[int]); InventoryError otherwise."""
    if get_origin(kind) is list:
        (item,) = get_args(kind)
        if not isinstance(value, list):
            raise InventoryError(f"{where}: expected a list of {item.__name__}, got {type(value).__name__}")
        return [_typed(v, item, where) for v in value]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise InventoryError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def validate(spec: InventorySpec, source: str = "inventory") -> None:
    from conformance.sim.objects.datastore import DATASTORE_TYPES

    if not spec.hosts:
        raise InventoryError(f"{source}: at least one host is needed")
    names = {d.name for d in spec.datastores}
    for ds in spec.datastores:
        if ds.type not in DATASTORE_TYPES:
            raise InventoryError(
                f"{source}: datastore {ds.name}: type {ds.type!r} is not one of {', '.join(DATASTORE_TYPES)}"
            )
    seen: set[str] = set()
    for vm in spec.vms:
        if vm.name in seen:
            raise InventoryError(f"{source}: VM name {vm.name!r} is used twice")
        seen.add(vm.name)
        if vm.datastore not in names:
            raise InventoryError(f"{source}: VM {vm.name}: datastore {vm.datastore!r} is not declared")
        if vm.host not in spec.hosts:
            raise InventoryError(f"{source}: VM {vm.name}: host {vm.host!r} is not declared")
        if any(size <= 0 or size % 512 for size in vm.disks):
            raise InventoryError(f"{source}: VM {vm.name}: disk sizes must be positive multiples of 512 bytes")
    for proxy in spec.physical_proxies:
        unknown = [d for d in proxy.datastores if d not in names]
        if unknown:
            raise InventoryError(f"{source}: physical proxy {proxy.name}: unknown datastores {unknown}")


def default_inventory() -> InventorySpec:
    text = resources.files("conformance.data").joinpath("default_inventory.toml").read_text()
    return parse_inventory(tomllib.loads(text), "default inventory")


def load_inventory(path: Path) -> InventorySpec:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise InventoryError(f"inventory file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"inventory file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"inventory file {path} is not valid TOML: {exc}") from exc
    return parse_inventory(raw, str(path))


def build_inventory(ctx: SimContext, spec: InventorySpec) -> None:
    """Create the managed objects and the disk files the spec describes."""
    from conformance.sim.objects.cluster import ClusterImpl
    from conformance.sim.objects.datacenter import DatacenterImpl
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.disks import DiskState, unique_disk_path
    from conformance.sim.objects.host import HostImpl
    from conformance.sim.objects.network import NetworkImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl
    from conformance.sim.storage.vmdk import VirtualDiskFile

    validate(spec)
    registry = ctx.registry
    dc = DatacenterImpl(registry, spec.datacenter, ctx.root_folder)
    cluster = ClusterImpl(registry, spec.cluster, dc.host_folder)
    hosts = {name: HostImpl(registry, name, cluster) for name in spec.hosts}
    NetworkImpl(registry, "VM Network", dc.network_folder)
    datastores = {}
    for ds_spec in spec.datastores:
        ds = DatastoreImpl(registry, ds_spec.name, dc.datastore_folder, ds_spec.type, ds_spec.capacity)
        ds.hosts = list(hosts.values())
        for host in hosts.values():
            host.datastores.append(ds)
        datastores[ds_spec.name] = ds
    for vm_spec in spec.vms:
        home = datastores[vm_spec.datastore]
        vm = VirtualMachineImpl(
            registry,
            vm_spec.name,
            dc.vm_folder,
            cluster.resource_pool,
            hosts[vm_spec.host],
            home,
            vm_spec.guest_id,
            vm_spec.guest_full_name,
        )
        vm.guest_detail = vm_spec.guest_detail or vm_spec.guest_full_name
        vm.role = vm_spec.role
        for index, size in enumerate(vm_spec.disks):
            file = VirtualDiskFile.create(
                unique_disk_path(vm.home_dir, vm.name), size, vm_spec.provisioning, space=home.space
            )
            disk = DiskState(key=2000 + index, unit_number=index if index < 7 else index + 1, file=file, datastore=home)
            disk.enable_tracking(vm_spec.cbt)
            vm.disks.append(disk)
        vm.cbt_enabled = vm_spec.cbt
        vm.power_state = "poweredOn" if vm_spec.power_on else "poweredOff"
    ctx.physical_proxies = [
        {"name": p.name, "os": p.os, "datastores": list(p.datastores)} for p in spec.physical_proxies
    ]
