"""Datastore files through vCenter's HTTP file service (`/folder/<path>?dcPath=<dc>&dsName=<datastore>`), with
names encoded adaptively (release-note item K6).

Why adaptive: the file service of vSphere 6.7 GA and U1 percent-decodes names twice, every other release once.
A name that is encoded once works on both only while it holds no ``%``; ``a%41`` sent once-encoded (``a%2541``)
is ``aA`` on a double-decoding server, which may be another file. So the service's decoding is probed once per
datastore on a file known to exist (every character of its name sent as ``%25XX``: only a double-decoding
server finds it, a single-decoding one looks for a literal ``%XX...`` name), and every name is then encoded
as many times as the server decodes it. The session cookie of a pyVmomi login authenticates the requests; the
certificate is pinned by the endpoint's thumbprint like every other connection of the harness.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from conformance.vsphere.connection import Endpoint, _pinned_https

__all__ = ["FileServiceError", "HttpFiles", "encode_name", "session_cookie"]

PREFIX = "/folder/"


class FileServiceError(OSError):
    """A file service answer other than success: the method, name, status and the server's message."""

    def __init__(self, method: str, name: str, status: int, message: str) -> None:
        super().__init__(f"{method} {name}: HTTP {status}: {message}")
        self.status = status


def session_cookie(service_instance: Any) -> str:
    """The `vmware_soap_session` cookie header value of a pyVmomi login."""
    raw = str(service_instance._stub.cookie)
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "vmware_soap_session":
            return f"vmware_soap_session={value}"
    raise FileServiceError("login", "", 401, "the pyVmomi session has no vmware_soap_session cookie")


def encode_name(name: str, times: int) -> str:
    """A datastore path percent-encoded `times` times ('/' kept as the separator)."""
    for _ in range(times):
        name = quote(name, safe="/")
    return name


def _every_character(name: str) -> str:
    """Every byte of every path segment as %XX, then that encoded once more (%25XX)."""
    segments = ["".join(f"%{b:02X}" for b in segment.encode()) for segment in name.split("/")]
    return encode_name("/".join(segments), 1)


class HttpFiles:
    """GET (adaptive), HEAD and PUT of datastore files for one logged-in session."""

    def __init__(self, endpoint: Endpoint, cookie: str, datacenter: str, timeout: float = 60.0) -> None:
        self.endpoint, self.cookie, self.datacenter, self.timeout = endpoint, cookie, datacenter, timeout
        self._times: dict[str, int] = {}  # datastore -> how many times the service decodes names

    @classmethod
    def for_session(cls, session: Any, endpoint: Endpoint, datacenter: str) -> HttpFiles:
        """Files of a ``VsphereSession`` (its pyVmomi login's cookie)."""
        return cls(endpoint, session_cookie(session.si), datacenter)

    def _request(self, method: str, datastore: str, encoded: str, times: int, body: bytes | None = None) -> Any:
        query = {"dcPath": encode_name(self.datacenter, times - 1), "dsName": encode_name(datastore, times - 1)}
        conn = _pinned_https(self.endpoint, self.timeout)
        try:
            conn.request(method, f"{PREFIX}{encoded}?{urlencode(query)}", body=body, headers={"Cookie": self.cookie})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def decodings(self, datastore: str, existing: str) -> int:
        """How many times the service decodes names on this datastore (1 or 2), probed on an existing file
        (cached per datastore)."""
        if datastore not in self._times:
            status, body = self._request("HEAD", datastore, _every_character(existing), 2)
            if status == 200:
                self._times[datastore] = 2
            elif status != 404:
                raise FileServiceError("HEAD", existing, status, body.decode(errors="replace").strip())
            elif self._request("HEAD", datastore, encode_name(existing, 1), 1)[0] == 200:
                self._times[datastore] = 1
            else:
                return 1  # the file does not exist (either way): nothing learnt, nothing cached
        return self._times[datastore]

    def put(self, datastore: str, name: str, data: bytes, *, times: int | None = None) -> None:
        """Upload a file; `times` defaults to the probed decoding count (probe first with ``decodings``), or 1."""
        count = times if times is not None else self._times.get(datastore, 1)
        status, body = self._request("PUT", datastore, encode_name(name, count), count, data)
        if status not in (200, 201):
            raise FileServiceError("PUT", name, status, body.decode(errors="replace").strip())

    def download(self, datastore: str, name: str) -> bytes:
        """The file's bytes, its name encoded as often as the service decodes it (probed on the file itself)."""
        times = self.decodings(datastore, name)
        status, body = self._request("GET", datastore, encode_name(name, times), times)
        if status != 200:
            raise FileServiceError("GET", name, status, body.decode(errors="replace").strip())
        return body
