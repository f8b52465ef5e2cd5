"""Is the data plane reachable? A firewall that passes the vSphere API port (443) but not the ESXi hosts' NFC port
(902) lets login and every metadata call succeed, and fails the first disk Open or Read (D4). Checked before any
backup starts (the preflight, and the run itself once per session), and said in one line that names the host,
the port and the fix, so such a run is a lab problem, not a product defect.

The endpoints are found the way the library in use finds them: VMware's library connects to each ESXi host's
NFC port (hosts from the vSphere API, the port from the target, 902 by default); the simulated library asks the
server for its data-plane endpoint (``conformance.sim.dataplane.client.discover``), behind every simulated host.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

__all__ = ["LAB_PROBLEM", "DataPlaneEndpoint", "data_plane_endpoints", "data_plane_problems", "unreachable"]

#: how every line starts: the report categories (conformance/reports/categories.py) class it as a lab problem
LAB_PROBLEM = "lab problem: data plane unreachable"


@dataclass(frozen=True)
class DataPlaneEndpoint:
    """One address and port the library connects to for disk data, and the hosts whose disks go through it."""

    hosts: tuple[str, ...]
    address: str
    port: int


def data_plane_endpoints(
    session: Any, backend: str, nfc_port: int = 902, timeout: float = 10.0
) -> list[DataPlaneEndpoint]:
    """The data-plane endpoints of the server behind a logged-in ``VsphereSession``, as ``backend`` reaches them."""
    from pyVmomi import vim

    hosts = tuple(sorted(str(h.name) for h in session._all(vim.HostSystem)))
    if backend != "simulated":
        return [DataPlaneEndpoint((host,), host, nfc_port) for host in hosts]
    from conformance.sim.dataplane.client import discover

    endpoint = session.endpoint
    raw = str(session.si._stub.cookie)
    match = re.search(r'vmware_soap_session="?([^";]+)', raw)
    ports = discover(endpoint.host, endpoint.port, match.group(1) if match else raw, endpoint.thumbprint, timeout)
    return [DataPlaneEndpoint(hosts, endpoint.host, int(ports[key])) for key in ("nbdssl_port", "nbd_port")]


def unreachable(endpoints: list[DataPlaneEndpoint], timeout: float = 5.0) -> list[str]:
    """One line per address whose data-plane port(s) refuse a TCP connection; empty when all answer."""
    failed: dict[tuple[str, tuple[str, ...]], list[tuple[int, str]]] = {}
    for endpoint in endpoints:
        try:
            socket.create_connection((endpoint.address, endpoint.port), timeout=timeout).close()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            failed.setdefault((endpoint.address, endpoint.hosts), []).append((endpoint.port, reason))
    lines = []
    for (address, hosts), ports in failed.items():
        numbers = " and ".join(str(port) for port, _ in ports)
        reason = ports[0][1]
        named = ", ".join(hosts) if hosts else address
        where = f"ESXi host {named}" if len(hosts) <= 1 else f"ESXi hosts {named}"
        lines.append(
            f"{LAB_PROBLEM}: cannot connect to {where} at {address} TCP {numbers} ({reason}): login and metadata "
            f"work but every disk Open will fail (fix: open TCP {numbers} from the proxy to {where})"
        )
    return lines


def data_plane_problems(session: Any, backend: str, nfc_port: int = 902, timeout: float = 5.0) -> list[str]:
    """The one-line problems of the data plane behind ``session`` (empty when every endpoint answers)."""
    try:
        endpoints = data_plane_endpoints(session, backend, nfc_port, timeout)
    except Exception as exc:  # discovery failing in any way is itself the finding, in one line
        return [f"{LAB_PROBLEM}: cannot find the data-plane endpoints of {session.endpoint.host}: {exc}"]
    return unreachable(endpoints, timeout)
