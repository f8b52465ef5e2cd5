"""Connecting pyVmomi to vCenter/ESXi with the server certificate pinned by thumbprint.

pyVmomi's SmartConnect cannot negotiate a version with a pinned thumbprint (its version probe fails
verification), and disabling verification silently accepts any thumbprint. So the version document is
fetched here over a connection whose certificate is checked against the pin, and `Connect` is then given
both the thumbprint and a verifying context: a wrong thumbprint is refused, never ignored.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from pyVim import connect as pyvim_connect
from pyVmomi import VmomiSupport, vim

from conformance.vsphere.tls import pinned_client_context


class PinMismatchError(ConnectionError):
    """The server's certificate does not match the pinned thumbprint."""


class VsphereConnectError(ConnectionError):
    """Could not reach or log in to the server; the message says which and how to fix it."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    thumbprint: str  # SHA-1 (or SHA-256) of the server certificate, colon-separated hex

    def normalized_thumbprint(self) -> str:
        return self.thumbprint.replace(":", "").lower()


def certificate_thumbprint(der: bytes, length: int) -> str:
    algorithm = "sha1" if length == 40 else "sha256"
    return hashlib.new(algorithm, der).hexdigest()


def _pinned_https(endpoint: Endpoint, timeout: float) -> http.client.HTTPSConnection:
    context = pinned_client_context()  # verified below against the pin, not a CA
    conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, context=context, timeout=timeout)
    conn.connect()
    der = conn.sock.getpeercert(binary_form=True)
    expected = endpoint.normalized_thumbprint()
    if der is None or certificate_thumbprint(der, len(expected)) != expected:
        conn.close()
        raise PinMismatchError(
            f"certificate of {endpoint.host}:{endpoint.port} does not match thumbprint {endpoint.thumbprint}; "
            "check the thumbprint in the target file"
        )
    return conn


def pinned_certificate_pem(endpoint: Endpoint, timeout: float = 30.0) -> str:
    """The server's certificate (PEM), taken only after it matched the pinned thumbprint."""
    conn = _pinned_https(endpoint, timeout)
    try:
        der = conn.sock.getpeercert(binary_form=True)
    finally:
        conn.close()
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der)


def negotiate_version(endpoint: Endpoint, timeout: float = 30.0) -> str:
    """The newest vim25 API version both the server (vimServiceVersions.xml) and pyVmomi know."""
    conn = _pinned_https(endpoint, timeout)
    try:
        conn.request("GET", "/sdk/vimServiceVersions.xml")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise VsphereConnectError(
            f"{endpoint.host}:{endpoint.port} is not a vSphere API endpoint "
            f"(GET /sdk/vimServiceVersions.xml answered {response.status})"
        )
    root = ET.fromstring(body)
    offered = [el.text.strip() for el in root.iter("version") if el.text]
    for uri in offered:
        try:
            return str(VmomiSupport.GetVersionFromVersionUri(f"urn:vim25/{uri}"))
        except KeyError:
            continue
    raise VsphereConnectError(f"{endpoint.host}: no API version in common (server offers {', '.join(offered)})")


def connect(endpoint: Endpoint, user: str, password: str, timeout: float = 60.0) -> Any:
    """A logged-in ServiceInstance; the certificate must match `endpoint.thumbprint`."""
    version = negotiate_version(endpoint, timeout)
    try:
        return pyvim_connect.Connect(
            host=endpoint.host,
            port=endpoint.port,
            user=user,
            pwd=password,
            thumbprint=endpoint.thumbprint,
            sslContext=pinned_client_context(),  # pyVmomi checks the thumbprint
            version=version,
            connectionPoolTimeout=timeout,
        )
    except vim.fault.InvalidLogin as exc:
        raise VsphereConnectError(
            f"login to {endpoint.host} as {user} refused: check the user and the password variable of the target"
        ) from exc


def disconnect(service_instance: Any) -> None:
    pyvim_connect.Disconnect(service_instance)
