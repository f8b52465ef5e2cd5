"""Wire protocol of the simulator's data plane (the stand-in for NFC on ESXi port 902), shared by both ends.

Framing (both directions)
    4-byte big-endian length N, then N bytes of UTF-8 JSON (the header), then ``header["payload"]`` bytes
    of binary payload when that key is present and > 0. Headers are at most 1 MiB; payloads at most
    64 MiB (a larger payload is drained and answered with kind "invalid").

Requests ``{"op": str, "id": int, ...}``; responses ``{"id": int, "ok": true, ...}`` or
``{"id": int, "ok": false, "error": {"kind": str, "message": str, ...extra}}``. Requests on one connection
may be pipelined: the server runs them on a small per-connection worker pool and may answer out of order;
the client matches answers by id. ``hello`` and ``bye`` are sequence points (handled in order).

Ops (fields; reply)
    hello      cookie, transport ("nbd" on the plain port, "nbdssl" on the TLS port, "hotadd"/"san" on
               either), proxy_vm (moref, hotadd), physical_proxy (name, san), client {product, version},
               aio {buf_size_64k, buf_count}; -> session, host
    open       vm, snapshot (moref|null), path "[ds] dir/x.vmdk", write; or fcd, datastore, snapshot (id|null),
               write; -> handle, capacity, uuid, parent_hint, num_links, adapter, transport
    read       handle, offset, length; -> payload bytes
    write      handle, offset + payload; -> written
    allocated  handle, offset, length, chunk; -> extents [[offset, length], ...] (chunk aligned, clipped)
    info       handle; -> as open.    close: handle.    ping.    bye: ends the session, closes its handles.
    prepare_access / end_access  vm, identity: disable / re-enable RelocateVM_Task on the VM.
    nfc_alloc  handle, bytes; -> buffer (id; null off NBD/NBDSSL): the host's NFC memory for one request.
    nfc_free   buffer: give it back (see nfc_memory).

Error kinds: auth, invalid, not_found, host_state (+state "entering"|"in"), not_attached,
transport_unsupported, san_unsupported_datastore, not_zoned, san_redo_write, read_only, out_of_range,
disk_full (+bytes_written), nfc_no_memory (+host, requested, in_use, max_memory), internal; the client adds
connection_lost.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import struct
import threading
from typing import Any

MAX_HEADER = 1024 * 1024
MAX_PAYLOAD = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")
_DRAIN_CHUNK = 1024 * 1024
_SEND_CHUNK = 256 * 1024

TRANSPORTS = ("nbd", "nbdssl", "hotadd", "san")
OPS = (
    *("hello", "open", "read", "write", "allocated", "info", "close", "ping", "bye", "prepare_access", "end_access"),
    *("nfc_alloc", "nfc_free"),
)


class DataPlaneError(Exception):
    """A failed request: `kind` is the machine-readable reason, `extra` the kind-specific fields."""

    def __init__(self, kind: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.extra: dict[str, Any] = dict(extra or {})

    def to_wire(self) -> dict[str, Any]:
        return {**self.extra, "kind": self.kind, "message": self.message}

    @classmethod
    def from_wire(cls, error: Any) -> DataPlaneError:
        if not isinstance(error, dict):
            return cls("internal", f"malformed error reply: {error!r}")
        extra = {k: v for k, v in error.items() if k not in ("kind", "message")}
        return cls(str(error.get("kind", "internal")), str(error.get("message", "")), extra)


class FramingError(Exception):
    """The byte stream cannot be parsed any more: the connection must be closed."""


def encode(header: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> tuple[bytes, memoryview]:
    """(length prefix + JSON header, payload view); `payload` is set in the header from the data."""
    view = memoryview(payload).cast("B")
    fields = {k: v for k, v in header.items() if k != "payload"}
    if len(view):
        fields["payload"] = len(view)
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return _LENGTH.pack(len(raw)) + raw, view


class FrameSocket:
    """One socket used by a reader thread and sender threads at once.

    An OpenSSL connection must never be driven by two threads at the same time (a blocked SSL_read in one
    thread and an SSL_write in another can lose data or hang the session), so every call on the socket
    runs under one lock in non-blocking mode, and threads wait for readiness with poll() outside it (poll,
    not select: select() cannot watch descriptors numbered 1024 and above, which a busy process reaches).
    """

    WAIT = 0.5

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        sock.setblocking(False)

    def _wait(self, want: str) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN if want == "read" else select.POLLOUT)
        poller.poll(self.WAIT * 1000)

    def recv_into(self, view: memoryview, count: int) -> int:
        while True:
            with self._lock:
                try:
                    return self.sock.recv_into(view, count)
                except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                    want = "read"
                except ssl.SSLWantWriteError:
                    want = "write"
            self._wait(want)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        sent = 0
        while sent < len(view):
            with self._lock:
                try:
                    sent += self.sock.send(view[sent : sent + _SEND_CHUNK])
                    continue
                except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                    want = "write"
                except ssl.SSLWantReadError:
                    want = "read"
            self._wait(want)

    def shutdown(self) -> None:
        with contextlib.suppress(OSError), self._lock:
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError), self._lock:
            self.sock.close()


def send_frame(
    sock: socket.socket | FrameSocket, header: dict[str, Any], payload: bytes | bytearray | memoryview = b""
) -> None:
    """Send one frame; small payloads ride in the same send as the header (callers serialise sends)."""
    head, view = encode(header, payload)
    if len(view) <= 65536:
        sock.sendall(head + view.tobytes() if len(view) else head)
    else:
        sock.sendall(head)
        sock.sendall(view)


def recv_exact(sock: socket.socket | FrameSocket, count: int) -> bytearray:
    """Exactly `count` bytes; EOFError when the peer closes first."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = sock.recv_into(view[got:], count - got)
        if n == 0:
            raise EOFError("connection closed by peer")
        got += n
    return buffer


def _drain(sock: socket.socket | FrameSocket, count: int) -> None:
    while count > 0:
        count -= len(recv_exact(sock, min(count, _DRAIN_CHUNK)))


def recv_frame(sock: socket.socket | FrameSocket) -> tuple[dict[str, Any], bytearray]:
    """One frame: (header, payload). An oversized payload is drained and reported as DataPlaneError with
    the header attached (`extra["header"]`), so the stream stays usable; broken framing is FramingError."""
    (length,) = _LENGTH.unpack(recv_exact(sock, _LENGTH.size))
    if length > MAX_HEADER:
        raise FramingError(f"header of {length} bytes exceeds {MAX_HEADER}")
    try:
        header = json.loads(recv_exact(sock, length))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FramingError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise FramingError("header is not a JSON object")
    size = header.get("payload", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise FramingError(f"payload length {size!r} is not a byte count")
    if size > MAX_PAYLOAD:
        _drain(sock, size)
        raise DataPlaneError(
            "invalid", f"payload of {size} bytes exceeds the {MAX_PAYLOAD} byte limit", {"header": header}
        )
    return header, recv_exact(sock, size) if size else bytearray()


def ok(request_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, **fields}


def failure(request_id: int, error: DataPlaneError) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": error.to_wire()}


def int_field(request: dict[str, Any], name: str, minimum: int = 0) -> int:
    """A required integer field >= `minimum`, else kind "invalid" naming it."""
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise DataPlaneError("invalid", f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def str_field(request: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = request.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise DataPlaneError("invalid", f"{name} must be a non-empty string, got {value!r}")
    return value


__all__ = [
    "MAX_HEADER",
    "MAX_PAYLOAD",
    "OPS",
    "TRANSPORTS",
    "DataPlaneError",
    "FrameSocket",
    "FramingError",
    "encode",
    "failure",
    "int_field",
    "ok",
    "recv_exact",
    "recv_frame",
    "send_frame",
    "str_field",
]
