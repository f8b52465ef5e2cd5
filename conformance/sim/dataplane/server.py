"""The data plane's listeners: plain TCP (nbd) and TLS (nbdssl) on 127.0.0.1, one session per connection.

Each connection has a reader thread that parses frames and a small worker pool that runs the requests, so
pipelined reads overlap their (simulated) storage latency the way NFC requests to ESXi do. `hello` and
`bye` run on the reader thread: they are the ordering points of a session.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vmodl

from conformance.sim.dataplane import faults, nfc_memory, protocol
from conformance.sim.dataplane.disks import Access, HandleTable, fault_message, open_disk, proxy_vm_for, window
from conformance.sim.dataplane.protocol import MAX_PAYLOAD, DataPlaneError, int_field, str_field
from conformance.sim.server import COOKIE_NAME, session_cookie

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext

log = logging.getLogger("conformance.sim.dataplane")

#: requests of one connection run at most this many at a time ...
WORKERS = 16
#: ... and at most this many are read ahead of the workers (bounds memory when a client floods us)
MAX_QUEUED = 64
HANDSHAKE_TIMEOUT = 30.0
#: server fault: the listeners refuse every connection (see DataPlane.start)
NFC_PORT_CLOSED = "nfc-port-closed"
Reply = tuple[dict[str, Any], bytes | bytearray]


@dataclass
class Session:
    """What `hello` established on one connection."""

    id: str
    user: str
    access: Access
    tls: bool
    client: dict[str, Any]
    aio: dict[str, Any]
    table: HandleTable = field(default_factory=HandleTable)


def cookie_value(raw: Any) -> str | None:
    """The vSphere session cookie from either the bare value or a `vmware_soap_session="..."` header."""
    if not isinstance(raw, str) or not raw:
        return None
    if f"{COOKIE_NAME}=" not in raw:
        return raw.strip()
    return session_cookie(raw)


class DataPlane:
    """Both listeners of one simulator and its live connections; `ctx.dataplane`."""

    def __init__(self, ctx: SimContext, host: str = "127.0.0.1") -> None:
        self.ctx = ctx
        self.host = host
        self.clients: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._listeners: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._tls_context: ssl.SSLContext | None = None
        self.nbd_port = 0
        self.nbdssl_port = 0

    def start(self) -> DataPlane:
        self._tls_context = self.ctx.certificate.server_context()
        # nfc-port-closed: a firewall between the proxy and the hosts' NFC port. The ports are bound (so nothing
        # else takes them, and discovery still names them) but never listen: a connect is refused, as at a
        # closed port, while the SOAP port keeps working.
        closed = self.ctx.faults.playing(NFC_PORT_CLOSED)
        plain, tls = self._listen(closed), self._listen(closed)
        self.nbd_port, self.nbdssl_port = plain.getsockname()[1], tls.getsockname()[1]
        for listener, is_tls in () if closed else ((plain, False), (tls, True)):
            thread = threading.Thread(
                target=self._accept_loop,
                args=(listener, is_tls),
                daemon=True,
                name=f"dataplane-{'nbdssl' if is_tls else 'nbd'}-accept",
            )
            thread.start()
            self._threads.append(thread)
        log.info("data plane listening: nbd %s:%d, nbdssl %s:%d", self.host, self.nbd_port, self.host, self.nbdssl_port)
        return self

    def _listen(self, closed: bool = False) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        if not closed:
            listener.listen(64)
        listener.settimeout(1.0)  # accept() wakes up to notice stop() even where shutdown() does not wake it
        self._listeners.append(listener)
        return listener

    def _accept_loop(self, listener: socket.socket, tls: bool) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(self, sock, tls)
            with self._lock:
                if self._stopped.is_set():
                    sock.close()
                    break
                self._connections.add(connection)
            threading.Thread(target=connection.run, daemon=True, name="dataplane-connection").start()

    def stop(self) -> None:
        """Close the listeners and every connection (their handles close with them); idempotent."""
        self._stopped.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._listeners.clear()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.abort()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def tls_wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        assert self._tls_context is not None
        return self._tls_context.wrap_socket(sock, server_side=True)

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def record_client(self, info: dict[str, Any]) -> None:
        with self._lock:
            self.clients.append(info)

    def paths_open_for_writing(self) -> set[Path]:
        """Host paths open for writing in any session: consolidation treats them as locked."""
        with self._lock:
            sessions = [c.session for c in self._connections if c.session is not None]
        paths: set[Path] = set()
        for session in sessions:
            paths |= session.table.write_paths()
        return paths

    def describe(self) -> dict[str, Any]:
        """The body of GET /sim/dataplane."""
        with self._lock:
            clients = [dict(c) for c in self.clients]
        return {"nbd_port": self.nbd_port, "nbdssl_port": self.nbdssl_port, "clients": clients}


class Connection:
    """One client connection: frames in on the reader thread, requests on the worker pool, answers out."""

    _session_ids = itertools.count(1)

    def __init__(self, plane: DataPlane, sock: socket.socket, tls: bool) -> None:
        self.plane = plane
        self.ctx = plane.ctx
        self.sock: socket.socket = sock
        self.io: protocol.FrameSocket | None = None
        self.tls = tls
        self.session: Session | None = None
        self._send_lock = threading.Lock()
        self._slots = threading.Semaphore(MAX_QUEUED)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dataplane-worker")
        self._ops: dict[str, Callable[[Session, dict[str, Any], bytearray], Reply]] = {
            "open": self._open,
            "read": self._read,
            "write": self._write,
            "allocated": self._allocated,
            "info": self._info,
            "close": self._close,
            "prepare_access": self._prepare_access,
            "end_access": self._end_access,
            "nfc_alloc": functools.partial(nfc_memory.allocate_op, self.ctx),
            "nfc_free": functools.partial(nfc_memory.free_op, self.ctx),
        }

    def abort(self) -> None:
        if self.io is not None:
            self.io.shutdown()
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def run(self) -> None:
        try:
            if self.tls:
                self.sock.settimeout(HANDSHAKE_TIMEOUT)  # a client that never handshakes must not pin a thread
                self.sock = self.plane.tls_wrap(self.sock)
                self.sock.settimeout(None)
            self.io = protocol.FrameSocket(self.sock)
            self._serve()
        except (EOFError, OSError, protocol.FramingError) as exc:
            log.debug("data plane connection ended: %s", exc)
        except Exception:
            log.exception("data plane connection failed")
        finally:
            self._pool.shutdown(wait=True)
            self._end_session()
            self.plane.forget(self)
            if self.io is not None:
                self.io.close()
            else:
                with contextlib.suppress(OSError):
                    self.sock.close()

    def _serve(self) -> None:
        assert self.io is not None
        while True:
            try:
                request, payload = protocol.recv_frame(self.io)
            except DataPlaneError as exc:  # oversized payload, already drained
                header = exc.extra.pop("header", {})
                self._send(protocol.failure(_request_id(header), exc))
                continue
            request_id = _request_id(request)
            op = request.get("op")
            if op == "hello":
                self._send(self._run_inline(request_id, self._hello, request))
            elif op == "bye":
                self._pool.shutdown(wait=True)  # let in-flight requests answer first
                closed = self._end_session()
                self._send(protocol.ok(request_id, closed=closed))
                return
            elif op == "ping":
                self._send(protocol.ok(request_id))
            elif op in nfc_memory.INLINE_OPS:  # cheap, and in order with the reads and writes around them
                self._slots.acquire()
                self._work(request_id, op, request, payload)
            else:
                self._slots.acquire()
                try:
                    self._pool.submit(self._work, request_id, op, request, payload)
                except RuntimeError:
                    self._slots.release()
                    raise

    def _run_inline(
        self, request_id: int, body: Callable[[dict[str, Any]], dict[str, Any]], request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return protocol.ok(request_id, **body(request))
        except DataPlaneError as exc:
            return protocol.failure(request_id, exc)
        except Exception as exc:
            log.exception("data plane hello failed")
            return protocol.failure(request_id, DataPlaneError("internal", f"{type(exc).__name__}: {exc}"))

    def _work(self, request_id: int, op: Any, request: dict[str, Any], payload: bytearray) -> None:
        try:
            reply: Reply = ({}, b"")
            try:
                if not isinstance(request.get("id"), int) or isinstance(request.get("id"), bool):
                    raise DataPlaneError("invalid", f"request id must be an integer, got {request.get('id')!r}")
                handler = self._ops.get(op) if isinstance(op, str) else None
                if handler is None:
                    raise DataPlaneError("invalid", f"unknown op {op!r}; ops are {', '.join(protocol.OPS)}")
                if self.session is None:
                    raise DataPlaneError("auth", "say hello with a vSphere session cookie first")
                reply = handler(self.session, request, payload)
                header = protocol.ok(request_id, **reply[0])
            except DataPlaneError as exc:
                header = protocol.failure(request_id, exc)
            except vmodl.MethodFault as fault:
                message = fault_message(fault) or type(fault).__name__
                header = protocol.failure(request_id, DataPlaneError("internal", message))
            except Exception as exc:
                log.exception("data plane %s failed", op)
                header = protocol.failure(request_id, DataPlaneError("internal", f"{type(exc).__name__}: {exc}"))
            self._send(header, reply[1] if header["ok"] else b"")
        finally:
            self._slots.release()

    def _send(self, header: dict[str, Any], payload: bytes | bytearray = b"") -> None:
        try:
            with self._send_lock:
                assert self.io is not None
                protocol.send_frame(self.io, header, payload)
        except OSError as exc:
            log.debug("data plane reply %s not sent: %s", header.get("id"), exc)

    def _end_session(self) -> int:
        session, self.session = self.session, None
        if session is None:
            return 0
        nfc_memory.ledger(self.ctx).end_session(session.id)  # buffers a dead client held go back to the host
        closed = session.table.clear()
        if closed:
            self.ctx.registry.changed()  # consolidationNeeded may change now that write locks are gone
        return closed

    # --- ops ---

    def _hello(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.session is not None:
            raise DataPlaneError("invalid", "this connection already has a session")
        vsphere = self.ctx.session_manager.session_for_cookie(cookie_value(request.get("cookie")))
        if vsphere is None:
            raise DataPlaneError("auth", "the cookie is not a live vSphere session (log in first)")
        transport = request.get("transport")
        if transport == "file":
            raise DataPlaneError("invalid", "the file transport is local; it never goes over the data plane")
        if transport not in protocol.TRANSPORTS:
            raise DataPlaneError(
                "invalid", f"transport must be one of {', '.join(protocol.TRANSPORTS)}, got {transport!r}"
            )
        if transport == "nbd" and self.tls:
            raise DataPlaneError("invalid", "nbd must use the plain port; this is the TLS (nbdssl) port")
        if transport == "nbdssl" and not self.tls:
            raise DataPlaneError("invalid", "nbdssl must use the TLS port; this is the plain (nbd) port")
        access = Access(str(transport))
        host_name = None
        if transport == "hotadd":
            with self.ctx.registry.lock:
                access.proxy_vm = proxy_vm_for(self.ctx, str_field(request, "proxy_vm"))
                host_name = access.proxy_vm.host.name
            opens = request.get("opens", "disk")
            if opens not in ("disk", "adapter"):
                raise DataPlaneError("invalid", f"opens must be 'disk' or 'adapter', got {opens!r}")
            access.opens = str(opens)
            vsan_check = request.get("vsan_needs_vsan_proxy", True)
            if not isinstance(vsan_check, bool):
                raise DataPlaneError("invalid", f"vsan_needs_vsan_proxy must be true or false, got {vsan_check!r}")
            access.vsan_needs_vsan_proxy = vsan_check
        elif transport == "san":
            name = str_field(request, "physical_proxy")
            access.physical_proxy = next((p for p in self.ctx.physical_proxies if p.get("name") == name), None)
            if access.physical_proxy is None:
                raise DataPlaneError("not_found", f"no physical proxy {name!r} is known to this simulator")
        client, aio = request.get("client") or {}, request.get("aio") or {}
        if not isinstance(client, dict) or not isinstance(aio, dict):
            raise DataPlaneError("invalid", "client and aio must be JSON objects")
        session = Session(
            f"dp-{next(self._session_ids)}-{secrets.token_hex(4)}",
            vsphere.user_name,
            access,
            self.tls,
            dict(client),
            dict(aio),
        )
        self.session = session
        self.plane.record_client(
            {
                "product": client.get("product"),
                "version": client.get("version"),
                "phone_home": bool(client.get("phone_home"))
                and not (client.get("phone_home_via") == "server" and self.ctx.profile.phone_home_by_ceip),
                "transport": transport,
                "session": session.id,
            }
        )
        return {"session": session.id, "host": host_name or self._default_host()}

    def _default_host(self) -> str:
        from conformance.sim.objects.host import HostImpl

        names = sorted(h.name for h in self.ctx.registry.all(HostImpl))
        return names[0] if names else "esx-unknown"

    def _open(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        entry = open_disk(self.ctx, session.access, session.table, request)
        return faults.describe(entry, entry.describe()), b""

    def _info(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        entry = session.table.get(request.get("handle"))
        return faults.describe(entry, entry.describe()), b""

    def _close(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        entry = session.table.remove(request.get("handle"))
        faults.close(entry)
        if entry.write:
            self.ctx.registry.changed()
        return {}, b""

    def _latency(self) -> None:
        delay = self.ctx.faults.disk_latency
        if delay:
            time.sleep(delay)

    def _read(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        entry = session.table.get(request.get("handle"))
        offset, length = window(request)
        if length > MAX_PAYLOAD:
            raise DataPlaneError("invalid", f"reads are limited to {MAX_PAYLOAD} bytes, asked for {length}")
        self._latency()
        return {}, faults.read(self.ctx, entry, offset, length)

    def _write(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        entry = session.table.get(request.get("handle"))
        offset = int_field(request, "offset")
        self._latency()
        return {"written": faults.write(self.ctx, entry, offset, bytes(payload))}, b""

    def _allocated(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        entry = session.table.get(request.get("handle"))
        offset, length = window(request)
        return {"extents": entry.allocated(self.ctx, offset, length, int_field(request, "chunk", 1))}, b""

    def _set_access(self, request: dict[str, Any], disabled: bool) -> Reply:
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        identity = str_field(request, "identity") or ""
        with self.ctx.registry.lock:
            vm = self.ctx.registry.find(str_field(request, "vm") or "")
            if not isinstance(vm, VirtualMachineImpl):
                raise DataPlaneError("not_found", f"no VM {request.get('vm')!r}")
            self.ctx.set_disabled(vm, ["RelocateVM_Task"], identity, disabled)
            return {"disabled_methods": sorted(self.ctx.disabled_methods(vm))}, b""

    def _prepare_access(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        return self._set_access(request, True)

    def _end_access(self, session: Session, request: dict[str, Any], payload: bytearray) -> Reply:
        return self._set_access(request, False)


def _request_id(header: dict[str, Any]) -> int:
    value = header.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


__all__ = ["COOKIE_NAME", "DataPlane", "Session", "cookie_value"]
