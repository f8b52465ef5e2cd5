"""The simulated VixDiskLib: VDDK's behaviour (of a chosen build) over the simulated ESXi.

It does what the real library does, through the same public interfaces: ConnectEx logs in to vCenter and
resolves the VM and snapshot; Open tries the transports in order (file, san, hotadd, nbd, nbdssl) and
moves data over the simulator's data plane; HotAdd attaches the disk to the proxy VM with
ReconfigVM_Task and records it for Cleanup. Build-specific behaviour comes from `behaviour.py` (data).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from conformance.sim.dataplane import DataPlaneError
from conformance.vixdisklib.backend import CompletionCallback
from conformance.vixdisklib.config import VddkConfig, load_config
from conformance.vixdisklib.errors import VixCode, VixError, error_text
from conformance.vixdisklib.simulated.behaviour import played_behaviour
from conformance.vixdisklib.simulated.control import (
    login,
    normalize_thumbprint,
)
from conformance.vixdisklib.simulated.disk import SimDisk
from conformance.vixdisklib.simulated.nfc_buffer import nfc_buffer
from conformance.vixdisklib.simulated.support import check_server
from conformance.vixdisklib.simulated.tmpstate import (
    SessionFolder,
    default_tmp_directory,
    remove_empty_trail,
    session_folders,
)
from conformance.vixdisklib.simulated.transports import SimConnection, TransportRefusedError, Transports
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


class CleanupError(VixError):
    """Cleanup could not release everything: carries numCleanedUp and numRemaining like the C API."""

    def __init__(self, cleaned: int, remaining: int, detail: str) -> None:
        super().__init__(VixCode.FAIL, "VixDiskLib_Cleanup", detail)
        self.cleaned = cleaned
        self.remaining = remaining

    def __reduce__(self) -> tuple[type[CleanupError], tuple[int, int, str]]:  # type: ignore[override]
        """Keep the counts when the error crosses a process boundary (VixError's own would pass its args)."""
        return (type(self), (self.cleaned, self.remaining, self.text))


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
        self._transports = Transports(self)
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
        if self.config.tmp_directory is None:  # ours (VDDK's default); a configured folder is the user's
            remove_empty_trail(self.tmp_directory)

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
            return self._transports.open_local(path, writable)
        expected = normalize_thumbprint(connection.params.thumbprint)
        if expected != connection.control.presented:
            raise VixError(VixCode.FAIL, "VixDiskLib_Open")  # what real VDDK says on a thumbprint mismatch
        refusals: list[str] = []
        for mode in connection.modes:
            try:
                return self._transports.open_with(connection, mode, path, writable)
            except TransportRefusedError as refused:
                refusals.append(f"{mode}: {refused}")
        raise VixError(
            VixCode.NOT_SUPPORTED if refusals else VixCode.INVALID_ARG,
            "VixDiskLib_Open",
            "no transport could open the disk (" + "; ".join(refusals or ["empty mode list"]) + ")",
        )

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
        self._transports.release(connection, record, proxy)

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
