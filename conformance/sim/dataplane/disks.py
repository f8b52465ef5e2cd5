"""Server side of `open`: which disk a request may open over which transport, and the open-handle table.

The rules are the ones real ESXi/VDDK enforce, each failing with its own error kind so the simulated
VixDiskLib can map it to the VIX error of the build it simulates. A handle does not pin a
`VirtualDiskFile` object: it re-resolves its link on every use (the VM's current disk, a snapshot's frozen
link, an FCD's top), so snapshots and consolidation that move the chain under an open handle stay correct.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.dataplane.protocol import DataPlaneError, int_field, str_field
from conformance.sim.objects import cbt_faults
from conformance.sim.objects.datastore import BLOCK_TYPES
from conformance.sim.objects.host import ENTERING, NORMAL
from conformance.sim.storage.space import DiskFullError
from conformance.sim.storage.vmdk_descriptor import parent_hint_for

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.snapshot import SnapshotImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl
    from conformance.sim.storage.vmdk import VirtualDiskFile

Resolver = Callable[[], "VirtualDiskFile"]
Writer = Callable[[int, bytes], None]


@dataclass
class Access:
    """How a session reaches disks: its transport and the proxy (VM for hotadd, physical host for san)."""

    transport: str
    proxy_vm: VirtualMachineImpl | None = None
    physical_proxy: dict[str, Any] | None = None
    #: what a HotAdd client opens in the proxy: "disk", or "adapter" (VDDK before 7.0; K3)
    opens: str = "disk"
    #: HotAdd of a vSAN disk needs a proxy on vSAN (K4, every build); off only for a library playing K4 fixed
    vsan_needs_vsan_proxy: bool = True


@dataclass
class DiskTarget:
    """What an `open` request named: how to find its link now, how to write it, and who owns it."""

    resolve: Resolver
    writer: Writer
    adapter: str
    from_snapshot: bool
    vm: VirtualMachineImpl | None


@dataclass
class OpenDisk:
    """One entry of a session's handle table."""

    handle: int
    target: DiskTarget
    write: bool
    transport: str

    def link(self) -> VirtualDiskFile:
        return self.target.resolve()

    def describe(self) -> dict[str, Any]:
        """The reply fields of `open` and `info`."""
        link = self.link()
        return {
            "handle": self.handle,
            "capacity": link.capacity,
            "uuid": link.uuid,
            "parent_hint": parent_hint_for(link.path, link.parent.path) if link.parent is not None else None,
            "num_links": len(link.chain()),
            "adapter": self.target.adapter,
            "transport": self.transport,
        }

    def _check_range(self, link: VirtualDiskFile, offset: int, length: int) -> None:
        if offset + length > link.capacity:
            raise DataPlaneError(
                "out_of_range",
                f"{length} bytes at offset {offset} go past the end of the disk ({link.capacity} bytes)",
                {"capacity": link.capacity},
            )

    def read(self, offset: int, length: int) -> bytes:
        link = self.link()
        self._check_range(link, offset, length)
        return link.read(offset, length)

    def write_at(self, ctx: SimContext, offset: int, data: bytes) -> int:
        """Write through the owner (a VM's DiskState, so CBT sees it); the registry lock keeps a snapshot from
        swapping the top link in the middle of the write."""
        if not self.write:
            raise DataPlaneError("read_only", f"handle {self.handle} was opened read-only")
        with ctx.registry.lock:
            link = self.link()
            self._check_range(link, offset, len(data))
            try:
                self.target.writer(offset, data)
            except DiskFullError as exc:
                name = ctx.datastore_of(link.path).name
                raise DataPlaneError(
                    "disk_full",
                    f"not enough space on datastore {name}",
                    {"bytes_written": exc.bytes_written, "datastore": name},
                ) from exc
        return len(data)

    def allocated(self, ctx: SimContext, offset: int, length: int, chunk: int) -> list[list[int]]:
        """Allocated extents widened to `chunk` boundaries, merged, clipped to [offset, offset + length)."""
        if chunk <= 0 or chunk % 512:
            raise DataPlaneError("invalid", f"chunk must be a positive multiple of 512 bytes, got {chunk}")
        link = self.link()
        self._check_range(link, offset, length)
        end = offset + length
        out: list[list[int]] = []
        for start, size in cbt_faults.allocated(ctx, link.allocated_extents()):
            lo = max(start // chunk * chunk, offset)
            hi = min(-(-(start + size) // chunk) * chunk, end, link.capacity)
            if lo >= hi:
                continue
            if out and out[-1][0] + out[-1][1] >= lo:
                out[-1][1] = max(out[-1][0] + out[-1][1], hi) - out[-1][0]
            else:
                out.append([lo, hi - lo])
        return out


class HandleTable:
    """Open handles of one session; thread-safe (requests of a session run concurrently)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, OpenDisk] = {}
        self._numbers = itertools.count(1)

    def add(self, target: DiskTarget, write: bool, transport: str) -> OpenDisk:
        with self._lock:
            entry = OpenDisk(next(self._numbers), target, write, transport)
            self._open[entry.handle] = entry
            return entry

    def get(self, handle: Any) -> OpenDisk:
        with self._lock:
            entry = self._open.get(handle) if isinstance(handle, int) else None
        if entry is None:
            raise DataPlaneError("invalid", f"no open handle {handle!r} in this session")
        return entry

    def remove(self, handle: Any) -> OpenDisk:
        entry = self.get(handle)
        with self._lock:
            self._open.pop(entry.handle, None)
        return entry

    def clear(self) -> int:
        with self._lock:
            count = len(self._open)
            self._open.clear()
            return count

    def write_paths(self) -> set[Path]:
        """Host paths of the links open for writing now (consolidation must not merge them)."""
        with self._lock:
            entries = [e for e in self._open.values() if e.write]
        paths: set[Path] = set()
        for entry in entries:
            try:
                paths.add(entry.link().path)
            except DataPlaneError:
                continue
        return paths


def open_disk(ctx: SimContext, access: Access, table: HandleTable, request: dict[str, Any]) -> OpenDisk:
    """Resolve an `open` request, apply the host, transport and write rules, and add a handle."""
    write = request.get("write", False)
    if not isinstance(write, bool):
        raise DataPlaneError("invalid", f"write must be true or false, got {write!r}")
    with ctx.registry.lock:
        target = _fcd_target(ctx, request) if request.get("fcd") is not None else _vm_target(ctx, request)
        if target.vm is not None:
            check_host_state(target.vm)
        link = target.resolve()
        check_transport(ctx, access, link, ctx.datastore_of(link.path))
        if write:
            check_write(access, target, link)
        if target.vm is not None:
            flag_reboot_for_adapter_open(ctx, access, target.vm)
        return table.add(target, write, access.transport)


def flag_reboot_for_adapter_open(ctx: SimContext, access: Access, vm: VirtualMachineImpl) -> None:
    """K3: on vSphere 6.x (profile flag), a Windows Server 2019 proxy that opens the disk adapter, not the disk,
    flags the target VM for a reboot it does not need (a configuration issue on the VM)."""
    proxy = access.proxy_vm
    if access.transport != "hotadd" or access.opens != "adapter" or proxy is None:
        return
    if ctx.profile.windows_adapter_reboot_flag and proxy.guest_id == "windows2019srv_64Guest":
        vm.flag_reboot(f"proxy {proxy.name} opened the disk adapter of {vm.name}: restart required")


def check_host_state(vm: VirtualMachineImpl) -> None:
    """The VM's host entering / in maintenance mode (VIX 14014 / 14015, by VDDK build, in the client)."""
    host = vm.host
    if host.maintenance != NORMAL:
        state = "entering" if host.maintenance == ENTERING else "in"
        phrase = "entering maintenance mode" if state == "entering" else "in maintenance mode"
        raise DataPlaneError(
            "host_state", f"host {host.name} of VM {vm.name} is {phrase}", {"state": state, "host": host.name}
        )


def check_transport(ctx: SimContext, access: Access, link: VirtualDiskFile, datastore: DatastoreImpl) -> None:
    if access.transport == "hotadd":
        proxy = access.proxy_vm
        if proxy is None or ctx.registry.find(proxy.moid) is not proxy:
            raise DataPlaneError("not_found", "the session's HotAdd proxy VM no longer exists")
        if access.vsan_needs_vsan_proxy and datastore.ds_type == "vsan" and proxy.home.ds_type != "vsan":
            raise DataPlaneError(
                "transport_unsupported",
                f"HotAdd of a disk on vSAN datastore {datastore.name} needs "
                f"a proxy on vSAN; proxy {proxy.name} lives on {proxy.home.name} "
                f"({proxy.home.ds_type}) (K4)",
                {"datastore": datastore.name},
            )
        if not any(_same(d.file.path, link.path) for d in proxy.disks):
            raise DataPlaneError(
                "not_attached",
                f"{datastore.datastore_path(link.path)} is not hot-added to proxy VM {proxy.name}",
                {"proxy_vm": proxy.moid},
            )
    elif access.transport == "san":
        proxy_info = access.physical_proxy or {}
        if datastore.ds_type not in BLOCK_TYPES:
            raise DataPlaneError(
                "san_unsupported_datastore",
                f"SAN transport cannot reach datastore {datastore.name} "
                f"of type {datastore.ds_type}: only block storage ({', '.join(BLOCK_TYPES)}) (C2)",
                {"datastore": datastore.name, "type": datastore.ds_type},
            )
        if datastore.name not in proxy_info.get("datastores", []):
            raise DataPlaneError(
                "not_zoned",
                f"physical proxy {proxy_info.get('name')} is not zoned to the LUN of datastore {datastore.name}",
                {"datastore": datastore.name},
            )


def check_write(access: Access, target: DiskTarget, link: VirtualDiskFile) -> None:
    if target.from_snapshot:
        raise DataPlaneError(
            "read_only", "a snapshot's disk is read-only; restores open the current disk (no snapshot)"
        )
    if access.transport == "san" and link.parent is not None:
        raise DataPlaneError(
            "san_redo_write",
            "SAN transport writes only to a base disk; this disk has a redo log (delete the VM's snapshots first)",
            {"num_links": len(link.chain())},
        )


def _vm_target(ctx: SimContext, request: dict[str, Any]) -> DiskTarget:
    from conformance.sim.objects.snapshot import SnapshotImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

    vm: VirtualMachineImpl = _lookup(ctx, str_field(request, "vm"), VirtualMachineImpl, "VM")
    path = _host_path(ctx, str_field(request, "path") or "")
    snapshot_ref = request.get("snapshot")
    if snapshot_ref is not None:
        snap: SnapshotImpl = _lookup(ctx, snapshot_ref, SnapshotImpl, "snapshot")
        if snap.vm is not vm:
            raise DataPlaneError("not_found", f"snapshot {snapshot_ref} does not belong to VM {vm.name}")
        key = next((k for k, link in snap.frozen.items() if _same(link.path, path)), None)
        if key is None:
            raise DataPlaneError("not_found", f"{request['path']} is not a disk of snapshot {snap.name} of {vm.name}")

        def frozen() -> VirtualDiskFile:
            alive = ctx.registry.find(snap.moid) is snap
            if not alive or key not in snap.frozen:
                raise DataPlaneError("not_found", f"snapshot {snap.name} of {vm.name} was removed")
            return snap.frozen[key]

        return DiskTarget(frozen, _refuse_write, vm.controller_type, True, vm)
    disk = next((d for d in vm.disks if d.attached_from is None and _same(d.file.path, path)), None)
    if disk is None:
        raise DataPlaneError("not_found", f"{request['path']} is not a current disk of VM {vm.name}")

    def current() -> VirtualDiskFile:
        alive = ctx.registry.find(vm.moid) is vm
        if not alive or not any(d is disk for d in vm.disks):
            raise DataPlaneError("not_found", f"disk {disk.key} was removed from VM {vm.name}")
        return disk.file

    return DiskTarget(current, disk.write, vm.controller_type, False, vm)


def _fcd_target(ctx: SimContext, request: dict[str, Any]) -> DiskTarget:
    manager = ctx.vstorage_object_manager
    fcd_id = str_field(request, "fcd")
    if manager is None:
        raise DataPlaneError("not_found", "this simulator has no First Class Disks")
    try:
        fcd = manager.find_fcd(fcd_id, request.get("datastore"))
    except (vim.fault.NotFound, vmodl.fault.ManagedObjectNotFound, vmodl.fault.InvalidArgument) as exc:
        raise DataPlaneError("not_found", fault_message(exc) or f"FCD {fcd_id} not found") from exc
    holder = fcd.holder()
    vm = holder[0] if holder is not None else None
    adapter = vm.controller_type if vm is not None else "lsilogic"
    snapshot_id = request.get("snapshot")
    if snapshot_id is not None:
        snap = next((s for s in fcd.snapshots if s.id == snapshot_id), None)
        if snap is None:
            raise DataPlaneError("not_found", f"FCD {fcd.id} has no snapshot {snapshot_id}")

        def frozen() -> VirtualDiskFile:
            if snap not in fcd.snapshots:
                raise DataPlaneError("not_found", f"snapshot {snapshot_id} of FCD {fcd.id} was deleted")
            return snap.frozen

        return DiskTarget(frozen, _refuse_write, adapter, True, vm)

    def top() -> VirtualDiskFile:
        if manager.disks.get(fcd.id) is not fcd:
            raise DataPlaneError("not_found", f"FCD {fcd.id} was deleted")
        return fcd.top()

    def write(offset: int, data: bytes) -> None:
        attached = fcd.holder()
        if attached is not None:
            attached[1].write(offset, data)
        else:
            fcd.file.write(offset, data)

    return DiskTarget(top, write, adapter, False, vm)


def _refuse_write(offset: int, data: bytes) -> None:
    raise DataPlaneError("read_only", "a snapshot's disk is read-only")


def _lookup(ctx: SimContext, ref: Any, kind: type[Any], what: str) -> Any:
    moid = ref if isinstance(ref, str) else None
    obj = ctx.registry.find(moid) if moid else None
    if not isinstance(obj, kind):
        raise DataPlaneError("not_found", f"no {what} {ref!r}")
    return obj


def _host_path(ctx: SimContext, ds_path: str) -> Path:
    try:
        return Path(ctx.resolve_datastore_path(ds_path)[1])
    except vim.fault.InvalidDatastorePath as exc:
        raise DataPlaneError("invalid", fault_message(exc) or f"invalid datastore path {ds_path!r}") from exc
    except vim.fault.NotFound as exc:
        raise DataPlaneError("not_found", fault_message(exc) or f"no datastore for {ds_path!r}") from exc


def fault_message(fault: BaseException) -> str:
    """The `msg` of a vSphere fault (pyVmomi faults carry it as an attribute, not in args)."""
    return str(getattr(fault, "msg", None) or "")


def _same(a: Path, b: Path) -> bool:
    return a == b or a.resolve() == b.resolve()


def window(request: dict[str, Any]) -> tuple[int, int]:
    """(offset, length) of a read or allocated request, validated."""
    return int_field(request, "offset"), int_field(request, "length")


def proxy_vm_for(ctx: SimContext, ref: Any) -> VirtualMachineImpl:
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

    vm: VirtualMachineImpl = _lookup(ctx, ref, VirtualMachineImpl, "proxy VM")
    return vm


__all__ = [
    "Access",
    "DiskTarget",
    "HandleTable",
    "OpenDisk",
    "check_host_state",
    "check_transport",
    "fault_message",
    "open_disk",
    "proxy_vm_for",
    "window",
]
