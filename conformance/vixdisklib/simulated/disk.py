"""Open disks of the simulated VixDiskLib: I/O over the simulator's data plane or on local files.

NBD/NBDSSL I/O is cut into NFC AIO buffers (BufSizeIn64KB x 64 KiB, up to BufCount in flight) when the
build honours those keys (F1); HotAdd and SAN move larger requests one at a time, as those transports
are effectively synchronous.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from conformance.sim.dataplane import DataPlaneClient, DataPlaneError
from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.backend import CompletionCallback
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.simulated.behaviour import BuildBehaviour
from conformance.vixdisklib.types import SECTOR_SIZE, Block

DIRECT_REQUEST = 4 * 2**20  # bytes per request for hotadd/san/file


def map_dataplane_error(error: DataPlaneError, behaviour: BuildBehaviour, call: str) -> VixError:
    """The VIX error the library reports for a data-plane failure, as the simulated build would."""
    kind = error.kind
    if kind == "disk_full":
        if behaviour.disk_full_code == VixCode.DISK_FULL:
            return VixError(VixCode.DISK_FULL, call, f"not enough space on the datastore: {error.message}")
        return VixError(behaviour.disk_full_code, call)
    if kind == "host_state":
        state = error.extra.get("state")
        if not behaviour.maintenance_codes:
            return VixError(VixCode.FILE_ACCESS_ERROR, call)
        code = VixCode.HOST_SERVER_SHUTDOWN if state == "entering" else VixCode.HOST_SERVER_NOT_AVAILABLE
        return VixError(code, call, f"host is {'entering' if state == 'entering' else 'in'} maintenance mode")
    codes = {
        "out_of_range": VixCode.DISK_OUTOFRANGE,
        "read_only": VixCode.FILE_READ_ONLY,
        "not_found": VixCode.FILE_NOT_FOUND,
        "auth": VixCode.AUTHENTICATION_FAIL,
        "connection_lost": VixCode.HOST_TCP_CONN_LOST,
    }
    return VixError(codes.get(kind, VixCode.FAIL), call, error.message)


@dataclass
class SimDisk:
    """A VixDiskLibHandle of the simulated library."""

    path: str
    transport: str
    capacity: int  # bytes
    behaviour: BuildBehaviour
    writable: bool
    client: DataPlaneClient | None = None
    handle: Any = None  # data-plane handle id
    local: VirtualDiskFile | None = None
    info: dict[str, Any] = field(default_factory=dict)
    chunk: int = DIRECT_REQUEST
    in_flight: int = 1
    #: raised at the first I/O: what builds before 6.7 do with SAN on vSAN/vVol (C2 affected behaviour)
    deferred_error: VixError | None = None
    hot_added: tuple[Any, int] | None = None  # (proxy VM, device key)
    attached_parent: SimDisk | None = None
    attached_child: SimDisk | None = None
    closed: bool = False
    _executor: ThreadPoolExecutor | None = None
    _pending: list[Future[None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def capacity_sectors(self) -> int:
        return self.capacity // SECTOR_SIZE

    def _check(self, call: str, start: int, count: int) -> None:
        if self.closed:
            raise VixError(VixCode.INVALID_HANDLE, call, "the disk handle is closed")
        if start < 0 or count < 0 or start + count > self.capacity_sectors:
            raise VixError(
                VixCode.DISK_OUTOFRANGE,
                call,
                f"sectors {start}..{start + count} are past the capacity of {self.capacity_sectors}",
            )
        if self.deferred_error is not None:
            raise VixError(self.deferred_error.code, call, self.deferred_error.text)

    def read(self, start: int, count: int) -> bytes:
        self._check("VixDiskLib_Read", start, count)
        offset, length = start * SECTOR_SIZE, count * SECTOR_SIZE
        if self.local is not None:
            return self.local.read(offset, length)
        assert self.client is not None
        pieces: list[Future[Any]] = []
        out = bytearray()
        try:
            for piece in range(offset, offset + length, self.chunk):
                size = min(self.chunk, offset + length - piece)
                pieces.append(
                    self.client.submit({"op": "read", "handle": self.handle, "offset": piece, "length": size})
                )
                if len(pieces) >= self.in_flight:
                    out += _payload(pieces.pop(0).result())
            for pending in pieces:
                out += _payload(pending.result())
        except DataPlaneError as exc:
            raise map_dataplane_error(exc, self.behaviour, "VixDiskLib_Read") from exc
        return bytes(out)

    def write(self, start: int, data: bytes) -> None:
        count = len(data) // SECTOR_SIZE
        self._check("VixDiskLib_Write", start, count)
        if not self.writable:
            raise VixError(VixCode.FILE_READ_ONLY, "VixDiskLib_Write", "the disk was opened read-only")
        offset = start * SECTOR_SIZE
        if self.local is not None:
            self.local.write(offset, data)
            return
        assert self.client is not None
        view = memoryview(data)
        pieces: list[Future[Any]] = []
        try:
            for piece in range(0, len(data), self.chunk):
                body = bytes(view[piece : piece + self.chunk])
                pieces.append(
                    self.client.submit({"op": "write", "handle": self.handle, "offset": offset + piece}, body)
                )
                if len(pieces) >= self.in_flight:
                    pieces.pop(0).result()
            for pending in pieces:
                pending.result()
        except DataPlaneError as exc:
            # The rest were sent already: wait for their answers (cancelling them would make the client's
            # reader thread fail on a cancelled future and leave the connection without a reader).
            for pending in pieces:
                with contextlib.suppress(DataPlaneError):
                    pending.result()
            raise map_dataplane_error(exc, self.behaviour, "VixDiskLib_Write") from exc

    def allocated(self, start: int, count: int, chunk: int) -> list[Block]:
        self._check("VixDiskLib_QueryAllocatedBlocks", start, count)
        offset, length, chunk_bytes = start * SECTOR_SIZE, count * SECTOR_SIZE, chunk * SECTOR_SIZE
        if self.local is not None:
            extents = [(o, n) for o, n in self.local.allocated_extents() if o < offset + length and o + n > offset]
        else:
            assert self.client is not None
            try:
                reply = self.client.submit(
                    {"op": "allocated", "handle": self.handle, "offset": offset, "length": length, "chunk": chunk_bytes}
                ).result()
            except DataPlaneError as exc:
                raise map_dataplane_error(exc, self.behaviour, "VixDiskLib_QueryAllocatedBlocks") from exc
            extents = [(int(o), int(n)) for o, n in _header(reply)["extents"]]
        blocks: list[Block] = []
        for ext_offset, ext_length in extents:
            first = max(ext_offset, offset) // chunk_bytes * chunk_bytes
            last = -(-min(ext_offset + ext_length, offset + length) // chunk_bytes) * chunk_bytes
            if blocks and blocks[-1].offset + blocks[-1].length >= first // SECTOR_SIZE:
                end = max(blocks[-1].offset + blocks[-1].length, last // SECTOR_SIZE)
                blocks[-1] = Block(blocks[-1].offset, end - blocks[-1].offset)
            else:
                blocks.append(Block(first // SECTOR_SIZE, (last - first) // SECTOR_SIZE))
        return blocks

    # --- asynchronous I/O: completion callbacks run on the library's worker threads ---

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=max(1, self.in_flight), thread_name_prefix=f"vixdisklib-aio-{self.transport}"
                )
            return self._executor

    def submit(self, work: Any, callback: CompletionCallback) -> None:
        def run() -> None:
            try:
                work()
            except VixError as exc:
                callback(exc.code)
            else:
                callback(VixCode.OK)

        future = self._pool().submit(run)
        with self._lock:
            self._pending.append(future)

    def wait(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def shutdown(self) -> None:
        self.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _header(reply: Any) -> dict[str, Any]:
    return reply[0] if isinstance(reply, tuple) else dict(reply)


def _payload(reply: Any) -> bytes:
    return bytes(reply[1]) if isinstance(reply, tuple) else b""
