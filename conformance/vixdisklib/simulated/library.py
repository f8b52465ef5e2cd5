"""The simulated VixDiskLib: VDDK's behaviour (of a chosen build) over the simulated ESXi.

It does what the real library does, through the same public interfaces: ConnectEx logs in to vCenter and
resolves the VM and snapshot; Open tries the transports in order (file, san, hotadd, nbd, nbdssl) and
moves data over the simulator's data plane; HotAdd attaches the disk to the proxy VM with
ReconfigVM_Task and records it for Cleanup. Build-specific behaviour comes from `behaviour.py` (data).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyVmomi import vim

from conformance.sim.dataplane import DataPlaneClient, DataPlaneError, ThumbprintMismatch
from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.backend import CompletionCallback
from conformance.vixdisklib.config import AIO_SESSION_LIMIT, VddkConfig, load_config
from conformance.vixdisklib.errors import VixCode, VixError, error_text
from conformance.vixdisklib.simulated.behaviour import played_behaviour
from conformance.vixdisklib.simulated.control import (
    ControlSession,
    declared_parents_with_k1,
    disks_of,
    login,
    normalize_thumbprint,
    parent_chain,
)
from conformance.vixdisklib.simulated.disk import DIRECT_REQUEST, SimDisk, map_dataplane_error
from conformance.vixdisklib.simulated.nfc_buffer import nfc_buffer
from conformance.vixdisklib.simulated.support import check_server, hotadd_refusal
from conformance.vixdisklib.simulated.tmpstate import (
    HotAddedDisk,
    SessionFolder,
    default_tmp_directory,
    session_folders,
)
from conformance.vixdisklib.types import (
    DEFAULT_TRANSPORT_MODES,
    MAX_CHUNK_NUMBER,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    SECTOR_SIZE,
    AdapterType,
    Block,
    ConnectParams,
    DiskInfo,
    OpenFlags,
    geometry_for,
)

log = logging.getLogger("conformance.vixdisklib.simulated")
#: refusals that make Open try the next transport rather than fail
TRANSPORT_REFUSALS = (
    "transport_unsupported",
    "san_unsupported_datastore",
    "not_zoned",
    "san_redo_write",
    "not_attached",
)


class CleanupError(VixError):
    """Cleanup could not release everything: carries numCleanedUp and numRemaining like the C API."""

    def __init__(self, cleaned: int, remaining: int, detail: str) -> None:
        super().__init__(VixCode.FAIL, "VixDiskLib_Cleanup", detail)
        self.cleaned = cleaned
        self.remaining = remaining

    def __reduce__(self) -> tuple[type[CleanupError], tuple[int, int, str]]:  # type: ignore[override]
        """Keep the counts when the error crosses a process boundary (VixError's own would pass its args)."""
        return (type(self), (self.cleaned, self.remaining, self.text))


@dataclass
class SimConnection:
    params: ConnectParams
    read_only: bool
    modes: list[str]
    control: ControlSession | None = None
    vm: Any = None
    snapshot: Any = None
    folder: SessionFolder | None = None
    hot_added: list[HotAddedDisk] = field(default_factory=list)
    clients: list[DataPlaneClient] = field(default_factory=list)
    ports: dict[str, Any] = field(default_factory=dict)


class SimulatedVixDiskLib:
    """A VixDiskLibBackend that behaves as VDDK `build` (default 7.0.3), with the known issues `fixed` played
    fixed (item ids of vddk_builds.toml's [fixed] table: K2, K4) and the library-side integrity faults of
    `sim_faults` played (``--sim-fault``, conformance/data/sim_faults.toml)."""

    name = "simulated"

    def __init__(
        self,
        build: str = "7.0.3",
        proxy_vm: str | None = None,
        physical_proxy: str | None = None,
        fixed: tuple[str, ...] = (),
        sim_faults: tuple[str, ...] = (),
    ) -> None:
        from conformance.knowledge.sim_faults import check_faults

        self.behaviour = played_behaviour(build, fixed)
        self.build = self.behaviour.build
        self.fixed = fixed
        self.sim_faults = frozenset(check_faults(sim_faults))
        self.proxy_vm = proxy_vm
        self.physical_proxy = physical_proxy
        self.config = VddkConfig()
        self.tmp_directory = self._default_tmp_directory()
        self._connections: list[SimConnection] = []
        self._lock = threading.Lock()
        self._initialised = False

    # --- library ---

    def init_ex(self, major: int, minor: int, lib_dir: Path | None, config_file: Path | None) -> None:
        if self._initialised:
            raise VixError(VixCode.FAIL, "VixDiskLib_InitEx", "InitEx may be called once per process")
        self.config = load_config(config_file) if config_file else VddkConfig()
        for problem in self.config.problems():
            log.warning("InitEx configuration %s %s: ignored", self.config.source, problem)
        self.tmp_directory = self.config.tmp_directory or self._default_tmp_directory()
        self.tmp_directory.mkdir(parents=True, exist_ok=True)
        self._initialised = True

    def exit(self) -> None:
        self._initialised = False

    def _default_tmp_directory(self) -> Path:
        return default_tmp_directory(per_process=self.behaviour.default_tmp_per_process)  # K2

    def list_transport_modes(self) -> str:
        return "file:san:hotadd:nbd:nbdssl"

    def get_error_text(self, code: int) -> str:
        return error_text(code)

    def _require_init(self, call: str) -> None:
        if not self._initialised:
            raise VixError(VixCode.DISK_NOINIT, call)

    # --- connections ---

    def connect_ex(
        self, params: ConnectParams, read_only: bool, snapshot_ref: str | None, transport_modes: str | None
    ) -> SimConnection:
        self._require_init("VixDiskLib_ConnectEx")
        modes = [m for m in (transport_modes or DEFAULT_TRANSPORT_MODES).split(":") if m]
        connection = SimConnection(params, read_only, modes)
        if params.server_name is None:
            return connection  # local (hosted) disks
        connection.control = login(params, "VixDiskLib_ConnectEx")
        try:
            check_server(self.build, connection.control.content.about, "VixDiskLib_ConnectEx")  # C4
            if params.vm_moref:
                connection.vm = connection.control.vm(params.vm_moref)
                if snapshot_ref:
                    connection.snapshot = connection.control.snapshot(connection.vm, snapshot_ref)
            connection.ports = connection.control.dataplane_ports()
            connection.folder = SessionFolder.create(self.tmp_directory, params.server_name)
        except BaseException:
            connection.control.logout()
            raise
        with self._lock:
            self._connections.append(connection)
        return connection

    def disconnect(self, connection: SimConnection) -> None:
        for client in connection.clients:
            client.bye()
        connection.clients.clear()
        if connection.folder is not None and not connection.hot_added:
            connection.folder.remove()
        if connection.control is not None:
            connection.control.logout()
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)

    # --- open, trying transports in order ---

    def open(self, connection: SimConnection, path: str, flags: int) -> SimDisk:
        self._require_init("VixDiskLib_Open")
        writable = not (flags & OpenFlags.READ_ONLY)
        if writable and connection.read_only:
            raise VixError(VixCode.FILE_READ_ONLY, "VixDiskLib_Open", "the connection is read-only")
        if connection.control is None:
            return self._open_local(path, writable)
        expected = normalize_thumbprint(connection.params.thumbprint)
        if expected != connection.control.presented:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open")  # what real VDDK says on a thumbprint mismatch
        refusals: list[str] = []
        for mode in connection.modes:
            try:
                return self._open_with(connection, mode, path, writable)
            except _TransportRefusedError as refused:
                refusals.append(f"{mode}: {refused}")
        raise VixError(
            VixCode.NOT_SUPPORTED if refusals else VixCode.INVALID_ARG,
            "VixDiskLib_Open",
            "no transport could open the disk (" + "; ".join(refusals or ["empty mode list"]) + ")",
        )

    def _open_local(self, path: str, writable: bool) -> SimDisk:
        local_path = Path(path)
        if not local_path.is_absolute() or not local_path.exists():
            raise VixError(VixCode.FILE_NOT_FOUND, "VixDiskLib_Open", f"{path} (local disks need an absolute path)")
        file = VirtualDiskFile.open(local_path)
        return SimDisk(
            path,
            "file",
            file.capacity,
            self.behaviour,
            writable,
            local=file,
            info={
                "uuid": file.uuid,
                "num_links": len(file.chain()),
                "parent_hint": file.parent.path.name if file.parent else None,
            },
        )

    def _open_with(self, connection: SimConnection, mode: str, path: str, writable: bool) -> SimDisk:
        if mode == "file":
            raise _TransportRefusedError("needs a local disk")
        if mode == "san":
            return self._open_san(connection, path, writable)
        if mode == "hotadd":
            return self._open_hotadd(connection, path, writable)
        if mode in ("nbd", "nbdssl"):
            if self.behaviour.nfc_aio_keys and self.config.aio_session_bytes > AIO_SESSION_LIMIT:
                raise VixError(
                    VixCode.INVALID_ARG,
                    "VixDiskLib_Open",
                    f"NFC AIO session memory {self.config.aio_session_bytes} bytes (BufSizeIn64KB x "
                    "BufCount x 64 KiB) exceeds 16 MiB",
                )
            disk = self._open_remote(connection, mode, path, writable)
            if self.behaviour.nfc_aio_keys:
                disk.chunk = self.config.aio_buf_size_64k * 64 * 1024
                disk.in_flight = self.config.aio_buf_count
            else:
                disk.chunk, disk.in_flight = 64 * 1024, 4
            return disk
        raise _TransportRefusedError(f"unknown transport mode {mode!r}")

    def _open_san(self, connection: SimConnection, path: str, writable: bool) -> SimDisk:
        if not self.physical_proxy:
            raise _TransportRefusedError("this proxy has no SAN access (not a physical proxy)")
        ds_type = _datastore_type(connection, path)
        if ds_type in ("vsan", "VVOL") and self.behaviour.san_rejected_on_vsan_vvol:
            raise _TransportRefusedError(f"SAN transport is not supported on {ds_type} datastores")
        if ds_type in ("vsan", "VVOL"):
            # builds before 6.7 do not refuse up front: Open succeeds and the I/O fails
            info = _disk_info_from_vsphere(connection, path)
            return SimDisk(
                path,
                "san",
                info["capacity"],
                self.behaviour,
                writable,
                info=info,
                deferred_error=VixError(VixCode.DISK_NOIO, "", f"SAN I/O failed on a {ds_type} datastore"),
            )
        return self._open_remote(connection, "san", path, writable, chunk=DIRECT_REQUEST)

    def _open_hotadd(self, connection: SimConnection, path: str, writable: bool) -> SimDisk:
        if not self.proxy_vm:
            raise _TransportRefusedError("not running in a proxy VM")
        assert connection.control is not None and connection.folder is not None
        proxy = connection.control.find_vm(self.proxy_vm)
        refusal = hotadd_refusal(self.build, proxy)  # F2
        if refusal is not None:
            raise _TransportRefusedError(refusal)
        if "transport-silently-replaced" in self.sim_faults:  # no HotAdd at all: nbd, labelled hotadd
            disk = self._open_remote(connection, "nbd", path, writable)
            disk.transport = "hotadd"
            return disk
        if self.behaviour.hotadd_special_names_broken and self.config.no_nfc_session:
            connection.control.fetch_file_encoded_once(connection.vm, path)  # K6: the descriptor, without NFC
        parents = None
        if self.behaviour.vvol_linked_clone_hotadd_bug:
            owner = connection.snapshot if connection.snapshot is not None and not writable else connection.vm
            parents = declared_parents_with_k1(path, parent_chain(owner, path))
        try:
            key = connection.control.attach(proxy, path, writable, parents)
        except vim.fault.InvalidDeviceBacking as exc:
            detail = getattr(exc, "msg", exc)
            raise VixError(VixCode.FAIL, "VixDiskLib_Open", f"HotAdd of {path} failed: {detail}") from exc
        except vim.fault.FileLocked as exc:  # another hot-add holds the disk's lock (a killed backup's leftover)
            detail = getattr(exc, "msg", exc)
            raise VixError(
                VixCode.FILE_ALREADY_LOCKED, "VixDiskLib_Open", f"HotAdd of {path} failed: {detail}"
            ) from exc
        record = HotAddedDisk(proxy._moId, path, key)
        connection.hot_added.append(record)
        connection.folder.record_hot_added(connection.hot_added)
        try:
            disk = self._open_remote(connection, "hotadd", path, writable, chunk=DIRECT_REQUEST, proxy=proxy._moId)
        except BaseException:
            self._release(connection, record, proxy)
            raise
        disk.hot_added = (proxy, key)
        return disk

    def _open_remote(
        self,
        connection: SimConnection,
        transport: str,
        path: str,
        writable: bool,
        chunk: int = DIRECT_REQUEST,
        proxy: str | None = None,
    ) -> SimDisk:
        assert connection.control is not None
        tls = transport != "nbd"
        port = connection.ports["nbdssl_port" if tls else "nbd_port"]
        try:
            client = DataPlaneClient(
                connection.control.host, int(port), tls=tls, thumbprint=connection.params.thumbprint
            )
        except ThumbprintMismatch as exc:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open") from exc
        except OSError as exc:
            # The host's NFC port cannot be reached (a firewall passing 443 but not 902, D4). Every build modelled
            # here (up to 7.0.3) reports that at Open as VIX_E_FILE_ACCESS_ERROR (13): only 7.0.3.3 started
            # returning the network error itself (14009), per its release notes. The address goes in the text, as
            # the library's log names it.
            where = f"{connection.control.host}:{port}"
            raise VixError(
                VixCode.FILE_ACCESS_ERROR,
                "VixDiskLib_Open",
                f"{error_text(VixCode.FILE_ACCESS_ERROR)} (cannot connect to the NFC port {where}: "
                f"{exc.strerror or exc})",
            ) from exc
        try:
            client.hello(
                connection.control.cookie,
                transport,
                proxy_vm=proxy,
                physical_proxy=self.physical_proxy,
                client={
                    "product": self.config.product_name or "Unknown",
                    "version": self.config.product_version or "Unknown",
                    "phone_home": self.config.enable_phone_home,
                    "phone_home_via": "server" if self.behaviour.phone_home_via_server else "library",
                },
                aio={"buf_size_64k": self.config.aio_buf_size_64k, "buf_count": self.config.aio_buf_count},
                opens=("disk" if self.behaviour.hotadd_opens_disk else "adapter") if transport == "hotadd" else None,
                vsan_needs_vsan_proxy=self.behaviour.vsan_hotadd_needs_vsan_proxy if transport == "hotadd" else None,
            )
            snapshot = connection.snapshot._moId if connection.snapshot is not None and not writable else None
            reply = client.open(vm=connection.vm._moId, path=path, snapshot=snapshot, write=writable)
        except DataPlaneError as exc:
            client.shutdown()
            if exc.kind in TRANSPORT_REFUSALS:
                raise _TransportRefusedError(exc.message) from exc
            raise map_dataplane_error(exc, self.behaviour, "VixDiskLib_Open") from exc
        connection.clients.append(client)
        return SimDisk(
            path,
            transport,
            int(reply["capacity"]),
            self.behaviour,
            writable,
            client=client,
            handle=reply["handle"],
            info=reply,
            chunk=chunk,
        )

    def _release(self, connection: SimConnection, record: HotAddedDisk, proxy: Any) -> None:
        assert connection.control is not None and connection.folder is not None
        connection.control.detach(proxy, record.device_key, record.file_name)
        connection.hot_added.remove(record)
        connection.folder.record_hot_added(connection.hot_added)

    def close(self, disk: SimDisk) -> None:
        if disk.attached_child is not None:
            if not self.behaviour.attach_marks_parent:
                raise VixError(
                    VixCode.INVALID_HANDLE,
                    "VixDiskLib_Close",
                    "the parent handle belongs to the child after VixDiskLib_Attach",
                )
            return  # 6.7.3+: the library marked the parent; closing the child releases it
        self._close_one(disk)
        if disk.attached_parent is not None:
            self._close_one(disk.attached_parent)

    def _close_one(self, disk: SimDisk) -> None:
        if disk.closed:
            return
        disk.shutdown()
        if disk.client is not None:
            try:
                disk.client.close(disk.handle)
            except DataPlaneError as exc:
                log.warning("closing %s: %s", disk.path, exc)
        if disk.local is not None:
            disk.local.close()
        disk.closed = True
        if disk.hot_added is not None:
            self._hot_remove(disk)

    def _hot_remove(self, disk: SimDisk) -> None:
        proxy, key = disk.hot_added  # type: ignore[misc]
        connection = next((c for c in self._connections if any(h.device_key == key for h in c.hot_added)), None)
        if connection is None:
            return
        record = next(h for h in connection.hot_added if h.device_key == key)
        host = proxy.runtime.host
        if (
            host.runtime.inMaintenanceMode is False
            and _entering_maintenance(host)
            and not self.behaviour.releases_hotadd_during_emm
        ):
            log.warning("hot-added %s stays on %s: host entering maintenance mode", disk.path, proxy.name)
            return
        self._release(connection, record, proxy)

    # --- disk calls ---

    def get_info(self, disk: SimDisk) -> DiskInfo:
        sectors = disk.capacity_sectors
        adapter = AdapterType.SCSI_LSILOGIC
        sizes = SECTOR_SIZE if self.behaviour.info_sector_sizes else None
        return DiskInfo(
            capacity=sectors,
            bios_geometry=geometry_for(sectors),
            phys_geometry=geometry_for(sectors),
            adapter_type=adapter,
            num_links=int(disk.info.get("num_links", 1)),
            parent_file_name_hint=disk.info.get("parent_hint"),
            uuid=disk.info.get("uuid"),
            logical_sector_size=sizes,
            physical_sector_size=sizes,
        )

    def get_transport_mode(self, disk: SimDisk) -> str:
        return disk.transport

    def read(self, disk: SimDisk, start_sector: int, num_sectors: int) -> bytes:
        with nfc_buffer(disk, start_sector, num_sectors, "VixDiskLib_Read"):
            return disk.read(start_sector, num_sectors)

    def write(self, disk: SimDisk, start_sector: int, data: bytes) -> None:
        with nfc_buffer(disk, start_sector, len(data) // SECTOR_SIZE, "VixDiskLib_Write"):
            disk.write(start_sector, data)

    def read_async(
        self, disk: SimDisk, start_sector: int, num_sectors: int, buffer: bytearray, callback: CompletionCallback
    ) -> None:
        def work() -> None:
            buffer[: num_sectors * SECTOR_SIZE] = self.read(disk, start_sector, num_sectors)

        disk.submit(work, callback)

    def write_async(self, disk: SimDisk, start_sector: int, data: bytes, callback: CompletionCallback) -> None:
        disk.submit(lambda: self.write(disk, start_sector, data), callback)

    def wait(self, disk: SimDisk) -> None:
        disk.wait()

    def flush(self, disk: SimDisk) -> None:
        disk.wait()

    def query_allocated_blocks(
        self, disk: SimDisk, start_sector: int, num_sectors: int, chunk_size: int
    ) -> list[Block]:
        call = "VixDiskLib_QueryAllocatedBlocks"
        if not self.behaviour.query_allocated_blocks:
            raise VixError(VixCode.NOT_SUPPORTED, call, f"QueryAllocatedBlocks needs VDDK 6.7 (this is {self.build})")
        if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise VixError(
                VixCode.INVALID_ARG, call, f"chunkSize {chunk_size} is outside {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}"
            )
        if num_sectors > chunk_size * MAX_CHUNK_NUMBER:
            raise VixError(VixCode.INVALID_ARG, call, f"more than {MAX_CHUNK_NUMBER} chunks in one call")
        if start_sector + num_sectors > disk.capacity_sectors:
            raise VixError(VixCode.INVALID_ARG, call, "Invalid sector parameter (must in disk capacity range)")
        return disk.allocated(start_sector, num_sectors, chunk_size)

    def attach(self, parent: SimDisk, child: SimDisk) -> None:
        if (
            child.local is None
            or parent.local is None
            or child.local.parent is None
            or child.local.parent.path.resolve() != parent.local.path.resolve()
        ):
            raise VixError(VixCode.INVALID_ARG, "VixDiskLib_Attach", "the child disk is not a child of the parent")
        child.attached_parent, parent.attached_child = parent, child

    # --- access control and cleanup ---

    def _access(self, params: ConnectParams, identity: str, op: str) -> None:
        call = "VixDiskLib_PrepareForAccess" if op == "prepare_access" else "VixDiskLib_EndAccess"
        if len(identity) > 50:
            raise VixError(VixCode.INVALID_ARG, call, "identity is limited to 50 characters")
        if not params.vm_moref:
            raise VixError(VixCode.INVALID_ARG, call, "vmxSpec must name the VM (moref=vm-N)")
        control = login(params, call)
        try:
            control.set_access(params.vm_moref, identity, op == "prepare_access", call)
        finally:
            control.logout()

    def prepare_for_access(self, params: ConnectParams, identity: str) -> None:
        self._access(params, identity, "prepare_access")

    def end_access(self, params: ConnectParams, identity: str) -> None:
        self._access(params, identity, "end_access")

    def cleanup(self, params: ConnectParams) -> tuple[int, int]:
        self._require_init("VixDiskLib_Cleanup")
        if params.server_name is None:
            return 0, 0
        active = {c.folder.path for c in self._connections if c.folder is not None}
        stale = [
            f
            for f in session_folders(self.tmp_directory, params.server_name)
            if f.path not in active and not (f.owner_alive() and _owned_by_other(f))
        ]
        if not stale:
            return 0, 0
        cleaned, remaining, problems = 0, 0, []
        control = login(params, "VixDiskLib_Cleanup")
        try:
            for folder in stale:
                disks = folder.hot_added()
                if disks is None:
                    if self.behaviour.cleanup_orphan_session_dir:
                        folder.remove()
                        cleaned += 1
                    else:
                        remaining += 1
                        problems.append(f"Could not unmount {folder.path.name}: unmount.dat is missing")
                    continue
                for entry in disks:
                    proxy = control.find_vm(entry.proxy_vm)
                    control.detach(proxy, entry.device_key, entry.file_name)
                folder.remove()
                cleaned += 1
        finally:
            control.logout()
        if remaining:
            raise CleanupError(cleaned, remaining, "; ".join(problems))
        return cleaned, remaining


class _TransportRefusedError(Exception):
    """This transport cannot open this disk; Open tries the next one."""


def _owned_by_other(folder: SessionFolder) -> bool:
    import json
    import os

    try:
        return int(json.loads((folder.path / "owner.json").read_text())["pid"]) != os.getpid()
    except (OSError, ValueError, KeyError):
        return False


def _entering_maintenance(host: Any) -> bool:
    return any(
        t.info.state in ("queued", "running")
        and t.info.name is not None
        and t.info.name.info.name == "EnterMaintenanceMode"
        for t in host.recentTask
    )


def _datastore_type(connection: SimConnection, path: str) -> str:
    assert connection.control is not None
    name = path.strip()[1:].split("]", 1)[0]
    for ds in connection.vm.datastore:
        if ds.name == name:
            return str(ds.summary.type)
    return "unknown"


def _disk_info_from_vsphere(connection: SimConnection, path: str) -> dict[str, Any]:
    owner = connection.snapshot or connection.vm
    for disk in disks_of(owner):
        if disk.backing.fileName == path:
            return {"capacity": int(disk.capacityInBytes), "uuid": disk.backing.uuid, "num_links": 1}
    raise VixError(VixCode.FILE_NOT_FOUND, "VixDiskLib_Open", path)
