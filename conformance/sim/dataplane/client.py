"""Client of the simulator's data plane: what the simulated VixDiskLib uses in place of NFC to ESXi.

One connection, many requests in flight: `submit` sends a frame and returns a Future that the single
reader thread completes when the answer with the same id arrives (answers may come out of order).
TLS is pinned by thumbprint, not by CA, exactly as VDDK pins ESXi's certificate.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import logging
import socket
import ssl
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from conformance.sim.dataplane import protocol
from conformance.sim.dataplane.protocol import DataPlaneError

log = logging.getLogger("conformance.sim.dataplane.client")

Answer = tuple[dict[str, Any], bytes]


class ThumbprintMismatch(Exception):  # noqa: N818 - the name VDDK users know
    """The server's certificate is not the one the caller pinned."""

    def __init__(self, expected: str | None, actual: str) -> None:
        super().__init__(f"server certificate thumbprint {actual} does not match the expected {expected}")
        self.expected = expected
        self.actual = actual


def normalise_thumbprint(text: str) -> str:
    return text.replace(":", "").replace(" ", "").strip().lower()


def certificate_matches(der: bytes, thumbprint: str | None) -> tuple[bool, str]:
    """(whether `der` matches, the thumbprint it has): SHA-1 for 40 hex digits, SHA-256 for 64."""
    wanted = normalise_thumbprint(thumbprint or "")
    algorithm = "sha256" if len(wanted) == 64 else "sha1"
    actual = hashlib.new(algorithm, der).hexdigest()
    pretty = ":".join(actual[i : i + 2] for i in range(0, len(actual), 2)).upper()
    return bool(wanted) and wanted == actual, pretty


def _pinned_context() -> ssl.SSLContext:
    """TLS without CA checks: the thumbprint comparison after the handshake is the authentication."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class DataPlaneClient:
    """A thread-safe connection to the data plane; failures raise DataPlaneError(kind, message, extra)."""

    def __init__(self, host: str, port: int, *, tls: bool, thumbprint: str | None, timeout: float = 30.0) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                sock = _pinned_context().wrap_socket(sock, server_hostname=host)
                der = sock.getpeercert(binary_form=True) or b""
                matches, actual = certificate_matches(der, thumbprint)
                if not matches:
                    raise ThumbprintMismatch(thumbprint, actual)
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        self.host, self.port, self.tls = host, port, tls
        self._sock = protocol.FrameSocket(sock)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards _pending and _lost
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[Answer]] = {}
        self._lost: DataPlaneError | None = None
        self.session: str | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True, name=f"dataplane-client-{port}")
        self._reader.start()

    def __enter__(self) -> DataPlaneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- transport ---

    def submit(self, header: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> Future[Answer]:
        """Send one request (its id is assigned here); the Future yields (reply header, payload bytes) or
        raises DataPlaneError."""
        future: Future[Answer] = Future()
        with self._lock:
            if self._lost is not None:
                future.set_exception(self._lost)
                return future
            request_id = next(self._ids)
            self._pending[request_id] = future
        try:
            with self._send_lock:
                protocol.send_frame(self._sock, {**header, "id": request_id}, payload)
        except OSError as exc:
            self._fail_all(DataPlaneError("connection_lost", f"sending {header.get('op')} failed: {exc}"))
        return future

    def call(self, op: str, payload: bytes | bytearray | memoryview = b"", **fields: Any) -> Answer:
        return self.submit({"op": op, **fields}, payload).result()

    def _fields(self, op: str, **fields: Any) -> dict[str, Any]:
        """A reply's own fields, without the framing keys (id, ok, payload)."""
        header = self.call(op, **fields)[0]
        return {k: v for k, v in header.items() if k not in ("id", "ok", "payload")}

    def _read_loop(self) -> None:
        try:
            while True:
                header, payload = protocol.recv_frame(self._sock)
                with self._lock:
                    future = self._pending.pop(header.get("id", -1), None)
                if future is None:
                    log.warning("data plane answer for unknown request %r", header.get("id"))
                elif header.get("ok"):
                    future.set_result((header, bytes(payload)))
                else:
                    future.set_exception(DataPlaneError.from_wire(header.get("error")))
        except (EOFError, OSError, protocol.FramingError, DataPlaneError) as exc:
            self._fail_all(
                DataPlaneError("connection_lost", f"data plane connection to {self.host}:{self.port} lost: {exc}")
            )

    def _fail_all(self, error: DataPlaneError) -> None:
        with self._lock:
            if self._lost is None:
                self._lost = error
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def shutdown(self) -> None:
        """Close the socket without saying bye (pending requests fail with connection_lost)."""
        self._sock.shutdown()
        self._sock.close()
        self._reader.join(timeout=5)

    # --- ops ---

    def hello(
        self,
        cookie: str,
        transport: str,
        *,
        proxy_vm: str | None = None,
        physical_proxy: str | None = None,
        client: dict[str, Any] | None = None,
        aio: dict[str, Any] | None = None,
        opens: str | None = None,
        vsan_needs_vsan_proxy: bool | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"cookie": cookie, "transport": transport, "client": client or {}, "aio": aio or {}}
        if opens is not None:
            fields["opens"] = opens  # HotAdd: "disk" (VDDK 7.0+) or "adapter" (older; K3)
        if vsan_needs_vsan_proxy is not None:
            fields["vsan_needs_vsan_proxy"] = vsan_needs_vsan_proxy  # HotAdd: K4, off only when played fixed
        if proxy_vm is not None:
            fields["proxy_vm"] = proxy_vm
        if physical_proxy is not None:
            fields["physical_proxy"] = physical_proxy
        reply = self._fields("hello", **fields)
        self.session = reply["session"]
        return reply

    def open(
        self,
        *,
        vm: str | None = None,
        path: str | None = None,
        snapshot: str | None = None,
        fcd: str | None = None,
        datastore: str | None = None,
        write: bool = False,
    ) -> dict[str, Any]:
        """Open a VM disk (vm + path [+ snapshot moref]) or an FCD (fcd + datastore [+ snapshot id])."""
        if fcd is not None:
            return self._fields("open", fcd=fcd, datastore=datastore, snapshot=snapshot, write=write)
        return self._fields("open", vm=vm, path=path, snapshot=snapshot, write=write)

    def read(self, handle: int, offset: int, length: int) -> bytes:
        return self.submit({"op": "read", "handle": handle, "offset": offset, "length": length}).result()[1]

    def write(self, handle: int, offset: int, data: bytes | bytearray | memoryview) -> int:
        header = self.submit({"op": "write", "handle": handle, "offset": offset}, data).result()[0]
        return int(header["written"])

    def allocated(self, handle: int, offset: int, length: int, chunk: int) -> list[tuple[int, int]]:
        reply = self._fields("allocated", handle=handle, offset=offset, length=length, chunk=chunk)
        return [(int(o), int(n)) for o, n in reply["extents"]]

    def info(self, handle: int) -> dict[str, Any]:
        return self._fields("info", handle=handle)

    def close(self, handle: int) -> None:
        self.call("close", handle=handle)

    def ping(self) -> None:
        self.call("ping")

    def prepare_access(self, vm: str, identity: str) -> None:
        self.call("prepare_access", vm=vm, identity=identity)

    def end_access(self, vm: str, identity: str) -> None:
        self.call("end_access", vm=vm, identity=identity)

    def bye(self) -> None:
        """End the session (the server closes its handles) and the connection."""
        try:
            self.call("bye")
        finally:
            self.shutdown()


def discover(
    https_host: str, https_port: int, cookie: str, cafile_or_thumbprint: str, timeout: float = 30.0
) -> dict[str, Any]:
    """GET /sim/dataplane: {"nbd_port", "nbdssl_port", "clients"}; pinned by thumbprint or verified by a CA file."""
    pin: str | None = None
    if Path(cafile_or_thumbprint).is_file():
        context = ssl.create_default_context(cafile=cafile_or_thumbprint)
        context.check_hostname = False
    else:
        context, pin = _pinned_context(), cafile_or_thumbprint
    conn = http.client.HTTPSConnection(https_host, https_port, timeout=timeout, context=context)
    try:
        conn.connect()
        if pin is not None:
            assert isinstance(conn.sock, ssl.SSLSocket)
            matches, actual = certificate_matches(conn.sock.getpeercert(binary_form=True) or b"", pin)
            if not matches:
                raise ThumbprintMismatch(pin, actual)
        value = cookie if "vmware_soap_session=" in cookie else f'vmware_soap_session="{cookie}"'
        conn.request("GET", "/sim/dataplane", headers={"Cookie": value})
        response = conn.getresponse()
        body = response.read()
        if response.status == 401:
            raise DataPlaneError("auth", "GET /sim/dataplane needs a logged-in vSphere session")
        if response.status != 200:
            raise DataPlaneError("internal", f"GET /sim/dataplane: HTTP {response.status} {body[:200]!r}")
        result: dict[str, Any] = json.loads(body)
        return result
    finally:
        conn.close()


__all__ = ["DataPlaneClient", "DataPlaneError", "ThumbprintMismatch", "certificate_matches", "discover"]
