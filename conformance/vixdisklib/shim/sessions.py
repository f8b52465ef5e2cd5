"""The agent's sessions: the simulated VixDiskLib of one product process, its handles, and how it ends.

A session is what one process of the product sees as "the library" (wire.py). Its library is the harness's
`SimulatedVixDiskLib`, told which process it lives in: VDDK's default temporary directory is per process
(K2) and a session folder names its owner process, so that Cleanup from another process leaves a live
process's hot-adds alone and releases a dead one's, as on a real proxy where each process loads its own
library. Handles are u64 ids of the session (never reused), so a stale or foreign id is refused, not
dereferenced.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from conformance.vixdisklib.backend import CompletionCallback
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.shim.wire import MAX_FRAME, Bytes, Op, Value
from conformance.vixdisklib.simulated.disk import SimDisk
from conformance.vixdisklib.simulated.library import SimConnection, SimulatedVixDiskLib
from conformance.vixdisklib.simulated.tmpstate import (
    OWNER,
    default_tmp_directory,
    process_start_time,
    remove_empty_trail,
)
from conformance.vixdisklib.types import (
    SECTOR_SIZE,
    ConnectParams,
    CredType,
    SessionCredentials,
    SpecType,
    UidCredentials,
    VStorageObjectSpec,
)

log = logging.getLogger("conformance.vixdisklib.shim.sessions")

FIRST_ID = 0x10000
Results = list[Value | Bytes]
#: the most sector data one response may carry (the rest of a frame is the response header and log lines)
MAX_DATA = MAX_FRAME - 1024 * 1024
#: how long an async operation may take to call back once nothing of its disk is pending any more
ASYNC_GRACE = 120.0

CALLS: dict[Op, str] = {
    Op.HELLO: "shim HELLO", Op.INIT: "VixDiskLib_InitEx", Op.EXIT: "VixDiskLib_Exit",
    Op.LIST_MODES: "VixDiskLib_ListTransportModes", Op.CONNECT: "VixDiskLib_ConnectEx",
    Op.DISCONNECT: "VixDiskLib_Disconnect", Op.OPEN: "VixDiskLib_Open", Op.CLOSE: "VixDiskLib_Close",
    Op.GET_INFO: "VixDiskLib_GetInfo", Op.TRANSPORT: "VixDiskLib_GetTransportMode", Op.READ: "VixDiskLib_Read",
    Op.WRITE: "VixDiskLib_Write", Op.READ_ASYNC: "VixDiskLib_ReadAsync", Op.WRITE_ASYNC: "VixDiskLib_WriteAsync",
    Op.WAIT: "VixDiskLib_Wait", Op.FLUSH: "VixDiskLib_Flush", Op.QUERY_BLOCKS: "VixDiskLib_QueryAllocatedBlocks",
    Op.ATTACH: "VixDiskLib_Attach", Op.PREPARE: "VixDiskLib_PrepareForAccess", Op.END_ACCESS: "VixDiskLib_EndAccess",
    Op.CLEANUP: "VixDiskLib_Cleanup", Op.ERROR_TEXT: "VixDiskLib_GetErrorText",
}  # fmt: skip


class Secrets:
    """Passwords, cookies and keys the product handed over, masked in every line the agent writes or sends
    (counted: several sessions may share a password)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, secret: str | None) -> None:
        if secret:
            with self._lock:
                self._counts[secret] = self._counts.get(secret, 0) + 1

    def forget(self, secret: str) -> None:
        with self._lock:
            left = self._counts.pop(secret, 0) - 1
            if left > 0:
                self._counts[secret] = left

    def mask(self, text: str) -> str:
        with self._lock:
            known = sorted(self._counts, key=len, reverse=True)
        for secret in known:
            text = text.replace(secret, "********")
        return text


SECRETS = Secrets()


class ProductLibrary(SimulatedVixDiskLib):
    """The simulated library as loaded into product process `product_pid`: its default temporary directory is
    that process's (K2 differs per product process, not per agent), unless K2 is played fixed."""

    def __init__(self, product_pid: int, build: str, **options: Any) -> None:
        self.product_pid = product_pid
        super().__init__(build, **options)  # proxy_vm, physical_proxy, fixed, sim_faults: as make_library passes

    def _default_tmp_directory(self) -> Path:
        shared = default_tmp_directory(per_process=False)
        return shared.parent / f"vixDiskLib-{self.product_pid}" if self.behaviour.default_tmp_per_process else shared


class TmpStateGate:
    """ConnectEx (shared) against Cleanup (exclusive): Cleanup must never see a session folder between its
    creation, owned by the agent's pid, and the moment it names the product process as its owner."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sharing = 0
        self._exclusive = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._sharing += 1
        try:
            yield
        finally:
            with self._cond:
                self._sharing -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._sharing)
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Session:
    """One product process's library: InitEx ... Exit, its connections and disks by id."""

    def __init__(self, token: str, label: str, pid: int, backend: SimulatedVixDiskLib, gate: TmpStateGate) -> None:
        self.token, self.label, self.pid = token, label, pid
        self.backend = backend
        self.gate = gate
        self.links = 0  # open agent connections (one per product thread)
        self.ended = False
        self._lock = threading.Lock()
        self._ids = itertools.count(FIRST_ID)
        self._connections: dict[int, SimConnection] = {}
        self._disks: dict[int, SimDisk] = {}
        self._secrets: list[str] = []
        disk, backend = self._disk, self.backend
        self._handlers: dict[Op, Callable[..., Results | None]] = {
            Op.INIT: self._init, Op.EXIT: self._exit, Op.LIST_MODES: lambda: [backend.list_transport_modes()],
            Op.CONNECT: self._connect, Op.DISCONNECT: self._disconnect, Op.OPEN: self._open, Op.CLOSE: self._close,
            Op.GET_INFO: self._get_info,
            Op.TRANSPORT: lambda d: [backend.get_transport_mode(disk(d, CALLS[Op.TRANSPORT]))],
            Op.READ: self._read, Op.WRITE: self._write, Op.READ_ASYNC: self._read_async,
            Op.WRITE_ASYNC: self._write_async, Op.WAIT: lambda d: backend.wait(disk(d, CALLS[Op.WAIT])),
            Op.FLUSH: lambda d: backend.flush(disk(d, CALLS[Op.FLUSH])), Op.QUERY_BLOCKS: self._query_blocks,
            Op.ATTACH: self._attach, Op.PREPARE: lambda p, i: self._access(Op.PREPARE, p, i),
            Op.END_ACCESS: lambda p, i: self._access(Op.END_ACCESS, p, i), Op.CLEANUP: self._cleanup,
            Op.ERROR_TEXT: lambda code: [backend.get_error_text(code)],
        }  # fmt: skip

    def call(self, op: Op, args: list[Any]) -> Results:
        """Run one op on the backend; failures raise (VixError as the library reports them)."""
        if self.ended and op != Op.ERROR_TEXT:
            raise VixError(VixCode.DISK_NOINIT, CALLS[op], "VixDiskLib_Exit ended this process's library session")
        return self._handlers[op](*args) or []

    # --- handles ---

    def _add(self, table: dict[int, Any], raw: Any) -> int:
        with self._lock:
            ident = next(self._ids)
            table[ident] = raw
        return ident

    def _connection(self, ident: int, call: str) -> SimConnection:
        with self._lock:
            found = self._connections.get(ident)
        if found is None:
            raise VixError(VixCode.INVALID_ARG, call, f"connection {ident:#x} is not open (disconnected or never made)")
        return found

    def _disk(self, ident: int, call: str) -> SimDisk:
        with self._lock:
            found = self._disks.get(ident)
        if found is None:
            raise VixError(VixCode.INVALID_ARG, call, f"disk handle {ident:#x} is not open (closed or never opened)")
        return found

    def _params(self, raw: dict[str, Any], call: str) -> ConnectParams:
        """PARAMS as the harness models them; the secrets are masked from here on, for the session's life."""
        with self._lock:
            for secret in (raw["password"], raw["cookie"], raw["key"]):
                if secret and secret not in self._secrets:
                    SECRETS.add(secret)
                    self._secrets.append(secret)
        creds: UidCredentials | SessionCredentials | None = None
        if raw["credType"] == CredType.UID:
            creds = UidCredentials(raw["userName"] or "", raw["password"] or "")
        elif raw["credType"] == CredType.SESSIONID:
            creds = SessionCredentials(raw["cookie"] or "", raw["userName"] or "", raw["key"] or "")
        fcd = None
        if raw["specType"] == SpecType.VSTORAGE_OBJECT:
            if not raw["fcdId"] or not raw["fcdDatastoreMoRef"]:
                raise VixError(VixCode.INVALID_ARG, call, "a vStorageObject spec needs its id and datastoreMoRef")
            fcd = VStorageObjectSpec(raw["fcdId"], raw["fcdDatastoreMoRef"], raw["fcdSnapshotId"] or None)
        elif raw["specType"] != SpecType.VMX:
            raise VixError(VixCode.INVALID_ARG, call, f"specType {raw['specType']} is not a spec VixDiskLib knows")
        return ConnectParams(
            server_name=raw["serverName"] or None,
            credentials=creds,
            vmx_spec=raw["vmxSpec"] or None,
            thumbprint=raw["thumbPrint"] or None,
            port=raw["port"] or 443,
            nfc_host_port=raw["nfcHostPort"] or 902,
            spec_type=SpecType(raw["specType"]),
            vstorage_object=fcd,
        )

    def _product_path(self, text: str | None) -> Path | None:
        """A path the product passed: relative ones are relative to the product's working directory."""
        if not text:
            return None
        path = Path(text)
        if not path.is_absolute():
            with contextlib.suppress(OSError):
                path = Path(f"/proc/{self.pid}/cwd").readlink() / path
        return path

    def _claim(self, connection: SimConnection) -> None:
        """Name the product process as the owner of the connection's session folder (the library wrote the
        agent's pid), so another process's Cleanup skips it while the product lives and takes it once it died."""
        start = process_start_time(self.pid)
        if connection.folder is None or start is None:
            return  # the product's pid is not visible here: the folder stays the agent's
        path = connection.folder.path / OWNER
        owner = json.loads(path.read_text())
        owner.update(pid=self.pid, start=start)
        scratch = path.with_suffix(".claim")
        scratch.write_text(json.dumps(owner))
        scratch.replace(path)

    # --- the ops (None: no results) ---

    def _init(self, major: int, minor: int, lib_dir: str | None, config_file: str | None) -> Results:
        self.backend.init_ex(major, minor, self._product_path(lib_dir), self._product_path(config_file))
        return [self.backend.list_transport_modes()]

    def _exit(self) -> None:
        self.backend.exit()
        self.end()

    def _connect(self, raw: dict[str, Any], read_only: int, snapshot: str | None, modes: str | None) -> Results:
        params = self._params(raw, CALLS[Op.CONNECT])
        log.debug("%s ConnectEx %s", self.label, params.redacted())
        with self.gate.shared():
            connection = self.backend.connect_ex(params, bool(read_only), snapshot, modes)
            self._claim(connection)
        return [self._add(self._connections, connection)]

    def _disconnect(self, ident: int) -> None:
        self.backend.disconnect(self._connection(ident, CALLS[Op.DISCONNECT]))
        with self._lock:
            self._connections.pop(ident, None)

    def _open(self, ident: int, path: str | None, flags: int) -> Results:
        connection = self._connection(ident, CALLS[Op.OPEN])
        if path is None:
            raise VixError(VixCode.INVALID_ARG, CALLS[Op.OPEN], "path is NULL")
        disk = self.backend.open(connection, path, flags)
        return [self._add(self._disks, disk), self.backend.get_transport_mode(disk)]

    def _close(self, ident: int) -> None:
        self.backend.close(self._disk(ident, CALLS[Op.CLOSE]))
        with self._lock:
            self._disks.pop(ident, None)

    def _get_info(self, ident: int) -> Results:
        info = self.backend.get_info(self._disk(ident, CALLS[Op.GET_INFO]))
        bios, phys = info.bios_geometry, info.phys_geometry
        return [
            info.capacity, int(info.adapter_type), info.num_links, info.parent_file_name_hint, info.uuid,
            bios.cylinders, bios.heads, bios.sectors, phys.cylinders, phys.heads, phys.sectors,
            info.logical_sector_size or 0, info.physical_sector_size or 0,
        ]  # fmt: skip

    def _sized(self, op: Op, count: int) -> int:
        """The bytes of `count` sectors, refused when one frame could not carry them."""
        if count * SECTOR_SIZE > MAX_DATA:
            raise VixError(VixCode.INVALID_ARG, CALLS[op], f"{count} sectors are more than one call moves")
        return count * SECTOR_SIZE

    def _data(self, op: Op, data: bytes) -> bytes:
        if len(data) % SECTOR_SIZE:
            raise VixError(VixCode.INVALID_ARG, CALLS[op], f"{len(data)} bytes is not a whole number of sectors")
        return data

    def _read(self, ident: int, start: int, count: int) -> Results:
        disk = self._disk(ident, CALLS[Op.READ])
        self._sized(Op.READ, count)
        return [Bytes(self.backend.read(disk, start, count))]

    def _write(self, ident: int, start: int, data: bytes) -> None:
        self.backend.write(self._disk(ident, CALLS[Op.WRITE]), start, self._data(Op.WRITE, data))

    def _read_async(self, ident: int, start: int, count: int) -> Results:
        disk = self._disk(ident, CALLS[Op.READ_ASYNC])
        buffer = bytearray(self._sized(Op.READ_ASYNC, count))
        result = self._completed(
            disk, Op.READ_ASYNC, lambda cb: self.backend.read_async(disk, start, count, buffer, cb)
        )
        return [result, Bytes(bytes(buffer))]

    def _write_async(self, ident: int, start: int, data: bytes) -> Results:
        disk = self._disk(ident, CALLS[Op.WRITE_ASYNC])
        data = self._data(Op.WRITE_ASYNC, data)
        return [self._completed(disk, Op.WRITE_ASYNC, lambda cb: self.backend.write_async(disk, start, data, cb))]

    def _completed(self, disk: SimDisk, op: Op, submit: Callable[[CompletionCallback], None]) -> int:
        """Submit an async operation and wait for its completion callback; its VIX result.

        The simulated library completes on its own worker threads; Wait on the disk returns once they are done
        and surfaces a worker that died without calling back (anything but a VixError), so that never hangs.
        """
        done = threading.Event()
        results: list[int] = []

        def completed(result: int) -> None:
            results.append(int(result))
            done.set()

        submit(completed)  # a submission error is the response's error
        try:
            self.backend.wait(disk)
        except Exception:
            log.exception("%s: an asynchronous operation of %s failed on a library worker", self.label, CALLS[op])
        if not done.wait(ASYNC_GRACE):
            raise VixError(VixCode.FAIL, CALLS[op], "the asynchronous operation ended without its completion")
        return results[0]

    def _query_blocks(self, ident: int, start: int, count: int, chunk: int) -> Results:
        disk = self._disk(ident, CALLS[Op.QUERY_BLOCKS])
        blocks = self.backend.query_allocated_blocks(disk, start, count, chunk)
        return [len(blocks), *(n for block in blocks for n in (block.offset, block.length))]

    def _attach(self, parent: int, child: int) -> None:
        self.backend.attach(self._disk(parent, CALLS[Op.ATTACH]), self._disk(child, CALLS[Op.ATTACH]))

    def _access(self, op: Op, raw: dict[str, Any], identity: str | None) -> None:
        params = self._params(raw, CALLS[op])
        if identity is None:
            raise VixError(VixCode.INVALID_ARG, CALLS[op], "identity is NULL")
        access = self.backend.prepare_for_access if op == Op.PREPARE else self.backend.end_access
        access(params, identity)

    def _cleanup(self, raw: dict[str, Any]) -> Results:
        params = self._params(raw, CALLS[Op.CLEANUP])
        with self.gate.exclusive():
            cleaned, remaining = self.backend.cleanup(params)
        return [cleaned, remaining]

    # --- the end ---

    def end(self) -> None:
        """Exit or the product's death: what a process's end does to the library's state. Sockets close (no
        bye, no Disconnect, no Logout); hot-added disks and session folders stay for a later Cleanup. Only the
        default folder's empty trail goes (real VDDK leaves it; nothing reads an empty one, and runs leave nothing)."""
        with self._lock:
            if self.ended:
                return
            self.ended = True
            connections, self._connections = list(self._connections.values()), {}
            disks, self._disks = list(self._disks.values()), {}
            secrets, self._secrets = self._secrets, []
        for connection in connections:
            try:
                _close_like_killed(connection)
            except Exception:
                log.exception("%s: closing the sockets of a connection", self.label)
        for disk in disks:
            try:
                disk.shutdown()  # its async workers end: their requests fail on the closed socket
            except Exception:
                log.exception("%s: stopping the async workers of %s", self.label, disk.path)
        for secret in secrets:
            SECRETS.forget(secret)
        if self.backend.config.tmp_directory is None:  # the default folder, were it left empty: nothing to Cleanup
            remove_empty_trail(self.backend.tmp_directory)


def _close_like_killed(connection: SimConnection) -> None:
    """The connection's sockets close as the kernel closes a dead process's: no bye, no Logout."""
    for client in connection.clients:
        client.shutdown()
    connection.clients.clear()
    stub = getattr(connection.control.si, "_stub", None) if connection.control is not None else None
    if stub is not None and hasattr(stub, "DropConnections"):
        stub.DropConnections()  # the vSphere session itself stays until the server times it out
