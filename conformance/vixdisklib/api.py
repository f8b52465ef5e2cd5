"""The VixDiskLib facade: the C API's calls in Python, on a chosen backend, every call recorded.

Tests and sequences only ever use this class; whether the library is simulated or VMware's own through
ctypes is the backend's business.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conformance.vixdisklib.backend import CompletionCallback, VixDiskLibBackend
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.recorder import CallRecorder
from conformance.vixdisklib.rules import Violation, check
from conformance.vixdisklib.types import (
    MAX_CHUNK_NUMBER,
    SECTOR_SIZE,
    VIXDISKLIB_VERSION_MAJOR,
    VIXDISKLIB_VERSION_MINOR,
    Block,
    ConnectParams,
    DiskInfo,
    OpenFlags,
)


class Connection:
    """A VixDiskLibConnection."""

    def __init__(self, raw: Any, params: ConnectParams, label: str) -> None:
        self.raw = raw
        self.params = params
        self.label = label

    def __repr__(self) -> str:
        return f"<Connection {self.label}>"


class Disk:
    """A VixDiskLibHandle: an open disk."""

    def __init__(self, raw: Any, connection: Connection, path: str, label: str) -> None:
        self.raw = raw
        self.connection = connection
        self.path = path
        self.label = label
        self.closed = False

    def __repr__(self) -> str:
        return f"<Disk {self.label} {self.path}>"


class VixDiskLib:
    """One initialised library (InitEx ... Exit). Thread-safe where the C library is."""

    def __init__(self, backend: VixDiskLibBackend, recorder: CallRecorder | None = None) -> None:
        self.backend = backend
        self.recorder = recorder or CallRecorder()
        self._labels = iter(range(1, 1 << 62))
        self._label_lock = threading.Lock()
        self.initialised = False
        self.config_file: Path | None = None

    def _label(self, prefix: str) -> str:
        with self._label_lock:
            return f"{prefix}{next(self._labels)}"

    # --- library lifetime ---

    def init_ex(
        self,
        config_file: Path | None = None,
        lib_dir: Path | None = None,
        major: int = VIXDISKLIB_VERSION_MAJOR,
        minor: int = VIXDISKLIB_VERSION_MINOR,
    ) -> None:
        self.recorder.mark_init()
        with self.recorder.call(
            "VixDiskLib_InitEx",
            major=major,
            minor=minor,
            libDir=str(lib_dir) if lib_dir else None,
            configFile=str(config_file) if config_file else None,
        ):
            self.backend.init_ex(major, minor, lib_dir, config_file)
        self.initialised = True
        #: the InitEx configuration (a partner's product run by the harness gets the same one)
        self.config_file = config_file

    def exit(self) -> None:
        with self.recorder.call("VixDiskLib_Exit"):
            self.backend.exit()
        self.initialised = False

    def list_transport_modes(self) -> str:
        with self.recorder.call("VixDiskLib_ListTransportModes") as record:
            modes = self.backend.list_transport_modes()
            record.args["result"] = modes
            return modes

    # --- connections ---

    def connect_ex(
        self,
        params: ConnectParams,
        read_only: bool = True,
        snapshot_ref: str | None = None,
        transport_modes: str | None = None,
    ) -> Connection:
        label = self._label("conn-")
        with self.recorder.call(
            "VixDiskLib_ConnectEx",
            handle=label,
            params=params,
            readOnly=read_only,
            snapshotRef=snapshot_ref,
            transportModes=transport_modes,
        ):
            raw = self.backend.connect_ex(params, read_only, snapshot_ref, transport_modes)
        return Connection(raw, params, label)

    def disconnect(self, connection: Connection) -> None:
        with self.recorder.call("VixDiskLib_Disconnect", handle=connection.label):
            self.backend.disconnect(connection.raw)

    def prepare_for_access(self, params: ConnectParams, identity: str) -> None:
        with self.recorder.call("VixDiskLib_PrepareForAccess", params=params, identity=identity):
            self.backend.prepare_for_access(params, identity)

    def end_access(self, params: ConnectParams, identity: str) -> None:
        with self.recorder.call("VixDiskLib_EndAccess", params=params, identity=identity):
            self.backend.end_access(params, identity)

    def cleanup(self, params: ConnectParams) -> tuple[int, int]:
        """(numCleanedUp, numRemaining); VixError if something still needs cleaning up."""
        with self.recorder.call("VixDiskLib_Cleanup", params=params) as record:
            cleaned, remaining = self.backend.cleanup(params)
            record.args.update(numCleanedUp=cleaned, numRemaining=remaining)
            return cleaned, remaining

    # --- disks ---

    def open(self, connection: Connection, path: str, flags: int = OpenFlags.READ_ONLY) -> Disk:
        label = self._label("disk-")
        with self.recorder.call(
            "VixDiskLib_Open", handle=label, connection=connection.label, path=path, flags=int(flags)
        ) as record:
            raw = self.backend.open(connection.raw, path, int(flags))
            # the transport Open chose, so the rules see a HotAdd open without a GetTransportMode call
            record.args["transport"] = self.backend.get_transport_mode(raw)
        return Disk(raw, connection, path, label)

    def close(self, disk: Disk) -> None:
        with self.recorder.call("VixDiskLib_Close", handle=disk.label):
            self.backend.close(disk.raw)
        disk.closed = True

    def get_info(self, disk: Disk) -> DiskInfo:
        with self.recorder.call("VixDiskLib_GetInfo", handle=disk.label):
            return self.backend.get_info(disk.raw)

    def get_transport_mode(self, disk: Disk) -> str:
        with self.recorder.call("VixDiskLib_GetTransportMode", handle=disk.label) as record:
            mode = self.backend.get_transport_mode(disk.raw)
            record.args["result"] = mode
            return mode

    def read(self, disk: Disk, start_sector: int, num_sectors: int) -> bytes:
        with self.recorder.call("VixDiskLib_Read", handle=disk.label, startSector=start_sector, numSectors=num_sectors):
            return self.backend.read(disk.raw, start_sector, num_sectors)

    def write(self, disk: Disk, start_sector: int, data: bytes) -> None:
        if len(data) % SECTOR_SIZE:
            raise VixError(
                VixCode.INVALID_ARG, "VixDiskLib_Write", f"{len(data)} bytes is not a whole number of sectors"
            )
        with self.recorder.call(
            "VixDiskLib_Write", handle=disk.label, startSector=start_sector, numSectors=len(data) // SECTOR_SIZE
        ):
            self.backend.write(disk.raw, start_sector, data)

    def read_async(
        self, disk: Disk, start_sector: int, num_sectors: int, buffer: bytearray, callback: CompletionCallback
    ) -> None:
        with self.recorder.call(
            "VixDiskLib_ReadAsync", handle=disk.label, startSector=start_sector, numSectors=num_sectors
        ):
            self.backend.read_async(disk.raw, start_sector, num_sectors, buffer, callback)

    def write_async(self, disk: Disk, start_sector: int, data: bytes, callback: CompletionCallback) -> None:
        with self.recorder.call(
            "VixDiskLib_WriteAsync", handle=disk.label, startSector=start_sector, numSectors=len(data) // SECTOR_SIZE
        ):
            self.backend.write_async(disk.raw, start_sector, data, callback)

    def wait(self, disk: Disk) -> None:
        with self.recorder.call("VixDiskLib_Wait", handle=disk.label):
            self.backend.wait(disk.raw)

    def flush(self, disk: Disk) -> None:
        with self.recorder.call("VixDiskLib_Flush", handle=disk.label):
            self.backend.flush(disk.raw)

    def query_allocated_blocks(self, disk: Disk, start_sector: int, num_sectors: int, chunk_size: int) -> list[Block]:
        with self.recorder.call(
            "VixDiskLib_QueryAllocatedBlocks",
            handle=disk.label,
            startSector=start_sector,
            numSectors=num_sectors,
            chunkSize=chunk_size,
        ) as record:
            blocks = self.backend.query_allocated_blocks(disk.raw, start_sector, num_sectors, chunk_size)
            record.args["numBlocks"] = len(blocks)
            return blocks

    def attach(self, parent: Disk, child: Disk) -> None:
        with self.recorder.call("VixDiskLib_Attach", handle=child.label, parent=parent.label):
            self.backend.attach(parent.raw, child.raw)

    def get_error_text(self, code: int) -> str:
        return self.backend.get_error_text(code)

    # --- conveniences built only on the calls above ---

    @contextmanager
    def connected(
        self,
        params: ConnectParams,
        read_only: bool = True,
        snapshot_ref: str | None = None,
        transport_modes: str | None = None,
    ) -> Iterator[Connection]:
        connection = self.connect_ex(params, read_only, snapshot_ref, transport_modes)
        try:
            yield connection
        finally:
            self.disconnect(connection)

    @contextmanager
    def opened(self, connection: Connection, path: str, flags: int = OpenFlags.READ_ONLY) -> Iterator[Disk]:
        disk = self.open(connection, path, flags)
        try:
            yield disk
        finally:
            if not disk.closed:
                self.close(disk)

    def allocated_blocks(
        self, disk: Disk, capacity_sectors: int, chunk_size: int, on_window: Callable[[list[Block]], None] | None = None
    ) -> list[Block]:
        """Every allocated block, queried in chunk-aligned windows that never pass capacity.

        Like VMware's sample: windows of at most MAX_CHUNK_NUMBER chunks; the final partial chunk
        (capacity % chunk_size) is not queried and counts as allocated.
        """
        blocks: list[Block] = []
        whole = capacity_sectors - capacity_sectors % chunk_size
        window = MAX_CHUNK_NUMBER * chunk_size
        offset = 0
        while offset < whole:
            count = min(window, whole - offset)
            found = self.query_allocated_blocks(disk, offset, count, chunk_size)
            if on_window is not None:
                on_window(found)
            blocks.extend(found)
            offset += count
        if whole < capacity_sectors:
            blocks.append(Block(whole, capacity_sectors - whole))
        return blocks

    def violations(self) -> list[Violation]:
        return check(self.recorder.records(), self.recorder.threads_before_init)
