"""The NFC server's memory budget of each simulated ESXi host (hostd config.xml ``<nfcsvc><maxMemory>``).

An NBD/NBDSSL request needs a server buffer of its size plus a small message header for as long as it is in
flight; the buffers of every session served by one host come out of that host's budget (48 MiB by default on
vSphere 6.x). A request that does not fit fails with NFC's own text, "Failed to allocate the requested N
bytes", where N counts the header: the field reports show 2097176 for a 2 MiB read and 24117272 for 23 MiB,
i.e. 24 bytes more. HotAdd and SAN move data without NFC and never touch the budget.

The simulated VixDiskLib takes a buffer for each Read or Write call (op ``nfc_alloc``, reply ``buffer``) and
gives it back when the call ends (``nfc_free``, not waited for); a session that ends gives back what it still
holds, so a client that dies never leaks budget. Both ops run on the connection's reader thread, in frame
order: a free is granted before the same client's next allocation, and an allocation before the reads it
covers, without a second round trip per call.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conformance.sim.dataplane.protocol import DataPlaneError, int_field

if TYPE_CHECKING:
    from conformance.sim.dataplane.disks import OpenDisk
    from conformance.sim.dataplane.server import Session
    from conformance.sim.instance import SimContext

MiB = 2**20
#: hostd's default NFC memory (vSphere 6.x: 48 MB; the 8.0 guide gives 96 MB)
DEFAULT_MAX_MEMORY = 48 * MiB
#: bytes NFC adds to each request's buffer (2 MiB read -> "requested 2097176 bytes")
HEADER_BYTES = 24
#: the transports whose data flows through the host's NFC server
NFC_TRANSPORTS = ("nbd", "nbdssl")
NO_MEMORY = "nfc_no_memory"
#: ops the data plane runs in frame order on the connection's reader thread
INLINE_OPS = ("nfc_alloc", "nfc_free")


def requested_bytes(payload: int) -> int:
    """The buffer NFC asks for to move `payload` bytes (what its error message names)."""
    return payload + HEADER_BYTES


@dataclass(frozen=True)
class Buffer:
    host: str
    session: str
    size: int


class NfcMemory:
    """Per-host NFC buffer accounting of one simulator: budgets, what is in use, and who holds it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[str, int] = {}
        self._used: dict[str, int] = {}
        self._buffers: dict[int, Buffer] = {}
        self._ids = itertools.count(1)
        #: the highest use each host reached since its budget was last set (tests read it)
        self.peaks: dict[str, int] = {}

    def max_memory(self, host: str) -> int:
        with self._lock:
            return self._budgets.get(host, DEFAULT_MAX_MEMORY)

    def set_max_memory(self, host: str, max_bytes: int | None) -> None:
        """Set a host's budget in bytes; None restores the default. Buffers in flight stay granted."""
        if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0):
            raise ValueError(f"NFC maxMemory of {host} must be a byte count >= 0 or None, got {max_bytes!r}")
        with self._lock:
            if max_bytes is None:
                self._budgets.pop(host, None)
            else:
                self._budgets[host] = max_bytes
            self.peaks[host] = self._used.get(host, 0)

    def in_use(self, host: str) -> int:
        with self._lock:
            return self._used.get(host, 0)

    def allocate(self, host: str, session: str, payload: int) -> int:
        """A buffer for a request moving `payload` bytes (its id), or DataPlaneError kind "nfc_no_memory"."""
        size = requested_bytes(payload)
        with self._lock:
            budget = self._budgets.get(host, DEFAULT_MAX_MEMORY)
            used = self._used.get(host, 0)
            if used + size > budget:
                raise DataPlaneError(
                    NO_MEMORY,
                    f"Failed to allocate the requested {size} bytes",
                    {"host": host, "requested": size, "in_use": used, "max_memory": budget},
                )
            buffer_id = next(self._ids)
            self._buffers[buffer_id] = Buffer(host, session, size)
            self._used[host] = used + size
            self.peaks[host] = max(self.peaks.get(host, 0), used + size)
            return buffer_id

    def free(self, buffer_id: Any, session: str) -> None:
        """Give a buffer back; one that is not this session's is kind "invalid"."""
        with self._lock:
            buffer = self._buffers.get(buffer_id) if isinstance(buffer_id, int) else None
            if buffer is None or buffer.session != session:
                raise DataPlaneError("invalid", f"no NFC buffer {buffer_id!r} in this session")
            del self._buffers[buffer_id]
            self._used[buffer.host] -= buffer.size

    def end_session(self, session: str) -> int:
        """Give back every buffer a session still holds (its connection ended); how many there were."""
        with self._lock:
            held = [i for i, b in self._buffers.items() if b.session == session]
            for buffer_id in held:
                buffer = self._buffers.pop(buffer_id)
                self._used[buffer.host] -= buffer.size
            return len(held)


def ledger(ctx: SimContext) -> NfcMemory:
    """The simulator's NFC memory ledger, made on first use."""
    existing = getattr(ctx, "nfc_memory", None)
    if isinstance(existing, NfcMemory):
        return existing
    with ctx.registry.lock:
        existing = getattr(ctx, "nfc_memory", None)
        if not isinstance(existing, NfcMemory):
            existing = NfcMemory()
            ctx.nfc_memory = existing  # type: ignore[attr-defined]
    return existing


def host_of(ctx: SimContext, entry: OpenDisk) -> str:
    """The host whose NFC server serves a handle: its VM's host, else (a detached FCD) the first host."""
    vm = entry.target.vm
    if vm is not None:
        return str(vm.host.name)
    from conformance.sim.objects.host import HostImpl

    names = sorted(h.name for h in ctx.registry.all(HostImpl))
    return names[0] if names else "esx-unknown"


def allocate_op(ctx: SimContext, session: Session, request: dict[str, Any], payload: bytearray) -> Any:
    """Op ``nfc_alloc`` (handle, bytes) -> buffer (null for transports that do not use NFC)."""
    entry = session.table.get(request.get("handle"))
    size = int_field(request, "bytes")
    if entry.transport not in NFC_TRANSPORTS:
        return {"buffer": None}, b""
    return {"buffer": ledger(ctx).allocate(host_of(ctx, entry), session.id, size)}, b""


def free_op(ctx: SimContext, session: Session, request: dict[str, Any], payload: bytearray) -> Any:
    """Op ``nfc_free`` (buffer)."""
    if request.get("buffer") is not None:
        ledger(ctx).free(request.get("buffer"), session.id)
    return {}, b""


__all__ = [
    "DEFAULT_MAX_MEMORY",
    "HEADER_BYTES",
    "INLINE_OPS",
    "NFC_TRANSPORTS",
    "NO_MEMORY",
    "NfcMemory",
    "allocate_op",
    "free_op",
    "host_of",
    "ledger",
    "requested_bytes",
]
