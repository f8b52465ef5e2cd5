"""HTTPS front door of the simulator: /sdk (SOAP), version documents, and the other HTTP services.

Routing only: SOAP calls go to `dispatch`, file and guest transfers to their modules.
"""

from __future__ import annotations

import contextlib
import http.cookies
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pyVmomi import VmomiSupport, vmodl

from conformance.sim import soap
from conformance.sim.registry import current_session

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext

log = logging.getLogger("conformance.sim.server")

COOKIE_NAME = "vmware_soap_session"
#: calls allowed without a session
ANONYMOUS_METHODS = {"RetrieveServiceContent", "Login", "LoginByToken", "CurrentTime", "Fetch"}
#: Fetch of these objects' properties is allowed without a session (pyVmomi reads content before login)
ANONYMOUS_FETCH_TYPES = ("ServiceInstance", "SessionManager")


def session_cookie(raw: str | None) -> str | None:
    """The vmware_soap_session value of a Cookie header (None when absent or malformed)."""
    if not raw:
        return None
    jar = http.cookies.SimpleCookie()
    try:
        jar.load(raw)
    except http.cookies.CookieError:
        return None
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel else None


def versions_document(ctx: SimContext) -> bytes:
    versions = ctx.profile.supported_api_versions()
    prior = "".join(f"<version>{v}</version>" for v in versions[1:])
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n'
        '<namespaces version="1.0"><namespace><name>urn:vim25</name>'
        f"<version>{versions[0]}</version><priorVersions>{prior}</priorVersions>"
        "</namespace></namespaces>\n"
    ).encode()


def dispatch(
    ctx: SimContext, body: bytes, soap_action: str | None, cookie: str | None
) -> tuple[int, bytes, str | None]:
    """Serve one SOAP call: (HTTP status, response body, new session cookie or None)."""
    try:
        call = soap.parse_request(body, soap_action)
    except soap.SoapRequestError as exc:
        fault = vmodl.fault.InvalidRequest(msg=str(exc))
        return 500, soap.serialize_fault(fault, soap.version_from_action(soap_action)), None
    sessions = ctx.session_manager
    session = sessions.session_for_cookie(cookie)
    token = current_session.set(session)
    try:
        if session is None and not _anonymous_allowed(call):
            raise vim_not_authenticated(call)
        if ctx.faults.soap_latency:
            time.sleep(ctx.faults.soap_latency)
        result_type, value = ctx.invoke(call)
        new_cookie = sessions.cookie_to_set()
        return 200, soap.serialize_result(call.method, result_type, value, call.version), new_cookie
    except vmodl.MethodFault as fault:
        return 500, soap.serialize_fault(fault, call.version), None
    except Exception as exc:
        log.exception("simulator error in %s", call.method)
        return (
            500,
            soap.serialize_fault(vmodl.fault.SystemError(msg=f"simulator error: {exc}", reason=str(exc)), call.version),
            None,
        )
    finally:
        current_session.reset(token)


def vim_not_authenticated(call: soap.SoapCall) -> Exception:
    from pyVmomi import vim

    return vim.fault.NotAuthenticated(
        msg="The session is not authenticated.", object=call.this, privilegeId="System.View"
    )


def _anonymous_allowed(call: soap.SoapCall) -> bool:
    if call.method not in ANONYMOUS_METHODS:
        return False
    if call.method == "Fetch":
        return type(call.this).__name__.split(".")[-1] in ANONYMOUS_FETCH_TYPES
    return True


class SimRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # without it every call waits ~40 ms for delayed ACKs
    server: SimHTTPServer
    server_version = "VMware-vSphere-sim"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def setup(self) -> None:
        super().setup()
        if self.server.ctx.faults.take_dropped_connection():
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _cookie(self) -> str | None:
        return session_cookie(self.headers.get("Cookie"))

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_bytes(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/sdk/vimServiceVersions.xml":
            self.send_bytes(200, versions_document(self.server.ctx), "text/xml")
        elif path.startswith("/folder"):
            self.server.ctx.file_service.handle(self, "GET")
        elif path.startswith("/guestFile"):
            self.server.ctx.guest_transfers.handle(self, "GET")
        elif path == "/sim/faults":
            self._faults("GET")
        elif path == "/sim/dataplane":
            self._dataplane()
        else:
            self.send_bytes(404, b"not found\n", "text/plain")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/folder"):
            self.server.ctx.file_service.handle(self, "PUT")
        elif path.startswith("/guestFile"):
            self.server.ctx.guest_transfers.handle(self, "PUT")
        else:
            self.send_bytes(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/sdk":
            body = self._body()
            status, payload, cookie = dispatch(self.server.ctx, body, self.headers.get("SOAPAction"), self._cookie())
            extra = {}
            if cookie:
                extra["Set-Cookie"] = f'{COOKIE_NAME}="{cookie}"; Path=/; HttpOnly; Secure;'
            self.send_bytes(status, payload, "text/xml; charset=utf-8", extra)
        elif path == "/sim/faults":
            self._faults("POST")
        elif path == "/sim/access":
            self._access()
        else:
            self._body()
            self.send_bytes(404, b"not found\n", "text/plain")

    def _faults(self, method: str) -> None:
        """Fault hooks over HTTP, for clients in another process; needs a logged-in session."""
        ctx = self.server.ctx
        body = self._body() if method == "POST" else b""
        if ctx.session_manager.session_for_cookie(self._cookie()) is None:
            self.send_bytes(401, b'{"error": "log in first (vmware_soap_session cookie)"}', "application/json")
            return
        if method == "POST":
            try:
                changes = json.loads(body or b"{}")
                ctx.apply_fault_hooks(changes)
            except (ValueError, TypeError) as exc:
                self.send_bytes(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                return
        self.send_bytes(200, json.dumps(ctx.fault_state()).encode(), "application/json")

    def _access(self) -> None:
        """PrepareForAccess / EndAccess: {"vm", "identity", "disabled"} disables or re-enables RelocateVM_Task. On
        ESXi this is AuthorizationManager.DisableMethods over the SOAP port, never NFC: it keeps working when the
        data plane's port is closed (nfc-port-closed)."""
        from conformance.sim.objects.virtual_machine import VirtualMachineImpl

        ctx = self.server.ctx
        body = self._body()
        if ctx.session_manager.session_for_cookie(self._cookie()) is None:
            self.send_bytes(401, b'{"error": "log in first (vmware_soap_session cookie)"}', "application/json")
            return
        try:
            request = json.loads(body or b"{}")
            vm_ref, identity, disabled = str(request["vm"]), str(request["identity"]), bool(request["disabled"])
        except (ValueError, TypeError, KeyError) as exc:
            self.send_bytes(400, json.dumps({"error": f"bad request: {exc}"}).encode(), "application/json")
            return
        with ctx.registry.lock:
            vm = ctx.registry.find(vm_ref)
            if not isinstance(vm, VirtualMachineImpl):
                self.send_bytes(404, json.dumps({"error": f"no VM {vm_ref!r}"}).encode(), "application/json")
                return
            ctx.set_disabled(vm, ["RelocateVM_Task"], identity, disabled)
            methods = sorted(ctx.disabled_methods(vm))
        self.send_bytes(200, json.dumps({"disabled_methods": methods}).encode(), "application/json")

    def _dataplane(self) -> None:
        """Data plane ports and the vendor info its clients sent; needs a logged-in session."""
        ctx = self.server.ctx
        if ctx.session_manager.session_for_cookie(self._cookie()) is None:
            self.send_bytes(401, b'{"error": "log in first (vmware_soap_session cookie)"}', "application/json")
            return
        dataplane = getattr(ctx, "dataplane", None)
        if dataplane is None:
            self.send_bytes(503, b'{"error": "the data plane is not running"}', "application/json")
            return
        self.send_bytes(200, json.dumps(dataplane.describe()).encode(), "application/json")


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ctx: SimContext, address: tuple[str, int]) -> None:
        self.ctx = ctx
        super().__init__(address, SimRequestHandler)
        context = ctx.certificate.server_context()
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error from %s", client_address, exc_info=True)


def serve_in_thread(server: SimHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="vsphere-sim-https", daemon=True)
    thread.start()
    return thread


__all__ = ["COOKIE_NAME", "SimHTTPServer", "VmomiSupport", "dispatch", "serve_in_thread", "versions_document"]
