"""Targets: what a run drives (the embedded simulator or a lab vCenter), and what each one supports.

Tests never ask "is this simulated?"; they ask the target for a capability (`target.supports(...)`), and
skip with the target's own reason when it lacks one.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.vixdisklib.types import ConnectParams, UidCredentials
from conformance.vsphere.connection import Endpoint
from conformance.vsphere.guest import GuestCredentials

#: capability names a test may require
FAULT_INJECTION = "fault-injection"  # latency, free space, maintenance timing on demand
PHYSICAL_PROXY = "physical-proxy"  # a SAN-attached backup server
MAINTENANCE_MODE = "maintenance-mode"  # the run may put a host into maintenance mode
GUEST_OPERATIONS = "guest-operations"  # workloads can run inside target VMs
CREATE_VMS = "create-vms"  # the run may create (and delete) VMs for restores and clones
LIBRARY_BUILDS = "library-builds"  # the run may load VDDK builds other than its own (K3's upgrade workaround)
#: a library can be placed in any of the target's proxy VMs (the simulated library can; VMware's runs where the
#: harness runs, the proxy VM the target file names in `vms.harness_vm`)
PROXY_PLACEMENT = "proxy-placement"
#: the target shows what its data plane received from each client (vendor name, phone home), via `controls`
SERVER_RECORDS = "server-records"
#: the target's VixMntApi mounts the harness's own volume format (VDDKCFS1, conformance.vsphere.volumes)
SIMPLE_VOLUMES = "simple-volumes"
#: the run may set a host's NFC memory budget (hostd config.xml nfcsvc maxMemory) via `controls` (D3)
NFC_MEMORY_LIMIT = "nfc-memory-limit"
#: a process may hold several initialised libraries at once (the simulated library in-process can; VMware's
#: library, and the simulated C library that behaves like it, take one InitEx per process until Exit)
LIBRARY_SESSIONS = "library-sessions"


@dataclass
class Target:
    """Where a run goes and what it may do there."""

    name: str
    endpoint: Endpoint
    user: str
    password: str = field(repr=False)
    datacenter: str = "dc1"
    vsphere: str = "7.0U3"
    proxies: dict[str, str] = field(default_factory=dict)  # guest OS label -> proxy VM name
    default_proxy: str | None = None
    physical_proxy: str | None = None
    datastores: dict[str, list[str]] = field(default_factory=dict)  # summary.type -> names
    target_vms: dict[str, str] = field(default_factory=dict)  # datastore type -> target VM name
    transports: tuple[str, ...] = ("nbd", "nbdssl", "hotadd", "san")
    capabilities: frozenset[str] = frozenset()
    guest: GuestCredentials = field(default_factory=lambda: GuestCredentials("root", "unused"))
    cafile: Path | None = None
    controls: Any = None  # fault-injection controller when the target has that capability
    #: the VMs the run may snapshot, restore into, revert, clone or delete (besides those it created itself)
    allow_vms: frozenset[str] = frozenset()
    backend: str = "simulated"  # VixDiskLib backend: "simulated" or "native" (ctypes, with `libdir`)
    libdir: Path | None = None
    source: Path | None = None  # the target file, when there is one
    lock_dir: Path | None = None  # where VM lock files go (None: the shared default, see conformance.vsphere.locks)
    nfc_port: int = 902  # the ESXi hosts' NFC port, which VMware's library reaches for disk data

    @property
    def lock_key(self) -> str:
        """What identifies the server for cross-process VM locks (two runs on one lab share its locks)."""
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def placement_missing(self, proxy_vm: str | None) -> str | None:
        """The capability a library in `proxy_vm` needs and this target lacks (None: it can run there). Without
        PROXY_PLACEMENT the library runs only where the harness runs: `default_proxy` (or no proxy at all)."""
        if proxy_vm is None or proxy_vm == self.default_proxy or self.supports(PROXY_PLACEMENT):
            return None
        return PROXY_PLACEMENT

    def missing(self, *capabilities: str) -> list[str]:
        return [c for c in capabilities if c not in self.capabilities]

    def datastore_of_type(self, ds_type: str) -> str | None:
        names = self.datastores.get(ds_type, [])
        return names[0] if names else None

    def connect_params(self, vm_moref: str | None = None) -> ConnectParams:
        params = ConnectParams(
            server_name=self.endpoint.host,
            port=self.endpoint.port,
            credentials=UidCredentials(self.user, self.password),
            thumbprint=self.endpoint.thumbprint,
        )
        return params.with_vm(vm_moref) if vm_moref else params

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying context for HTTPS transfers (guest files, file service) to this target: its CA file, or
        else the server's own certificate, fetched over a connection checked against the pinned thumbprint."""
        if self.cafile is not None:
            return ssl.create_default_context(cafile=str(self.cafile))
        from conformance.vsphere.connection import pinned_certificate_pem

        context = ssl.create_default_context(cadata=pinned_certificate_pem(self.endpoint))
        context.check_hostname = False  # the thumbprint identifies the server, not its name
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # trust the pinned certificate itself
        return context

    def describe(self) -> dict[str, Any]:
        """What reports may show: no password."""
        return {
            "name": self.name,
            "server": f"{self.endpoint.host}:{self.endpoint.port}",
            "thumbprint": self.endpoint.thumbprint,
            "user": self.user,
            "vsphere": self.vsphere,
            "datacenter": self.datacenter,
            "transports": list(self.transports),
            "capabilities": sorted(self.capabilities),
            "allow_vms": sorted(self.allow_vms),
            "backend": self.backend,
            **({"libdir": str(self.libdir), "simulated_library": self.simulated_library} if self.libdir else {}),
            "target_file": str(self.source) if self.source else None,
            "proxy_vm": self.default_proxy,
            "proxy_os": self.proxy_os(),
        }

    @property
    def simulated_library(self) -> bool:
        """The run's library is the harness's simulated one: in-process (backend "simulated") or the simulated
        libvixDiskLib.so under `libdir` (backend "native", recognised by its build stamp: shim/kit.py)."""
        if self.backend == "simulated":
            return True
        from conformance.vixdisklib.shim.kit import simulated_kit

        return simulated_kit(self.libdir)

    @property
    def data_plane_backend(self) -> str:
        """How the run's library finds the data plane (conformance.lab.dataplane_check): "simulated" for the
        simulated library in either backend (it asks the server), "native" for VMware's (each host's NFC port)."""
        return "simulated" if self.simulated_library else self.backend

    def proxy_os(self) -> str | None:
        """The guest OS of the HotAdd proxy the library runs in: the proxy VM's for the simulated library (in
        either backend); VMware's runs on this machine, which the reports describe themselves (None)."""
        if not self.simulated_library:
            return None
        return next((guest for guest, vm in self.proxies.items() if vm == self.default_proxy), None)


class SimulatorControls:
    """Fault hooks of an embedded simulator, offered to tests through the FAULT_INJECTION capability."""

    def __init__(self, simulator: Any) -> None:
        self._simulator = simulator

    def set(self, **hooks: Any) -> None:
        self._simulator.faults.update(**hooks)

    def datastore_free_space(self, name: str, free_bytes: int | None) -> None:
        self._simulator.set_datastore_free_space(name, free_bytes)

    def nfc_max_memory(self, host: str, max_bytes: int | None) -> None:
        """NFC_MEMORY_LIMIT: a host's NFC memory budget in bytes (None: the host's default again)."""
        self._simulator.set_nfc_max_memory(host, max_bytes)

    def dataplane_clients(self) -> list[dict[str, Any]]:
        """SERVER_RECORDS: what the server recorded for every data-plane client, oldest first (product,
        version, phone_home, transport, session), from the server's own records."""
        clients: list[dict[str, Any]] = self._simulator.ctx.dataplane.describe()["clients"]
        return clients

    def reset(self) -> None:
        self._simulator.faults.update(
            soap_latency=0.0, disk_latency=0.0, maintenance_entering_seconds=1.0, drop_connections=0
        )
        for ds in self._simulator.ctx.datastores():
            self._simulator.set_datastore_free_space(ds.name, None)
        for host in self._simulator.inventory.hosts:
            self._simulator.set_nfc_max_memory(host, None)


def simulator_target(
    simulator: Any, build: str | None = None, backend: str = "simulated", libdir: Path | None = None
) -> Target:
    """A Target for a running embedded simulator, its inventory read back through the vSphere API. Its default
    HotAdd proxy is the first proxy VM whose guest OS ``build`` supports (F2: a lab runs its proxy on a supported
    OS; the inventory offers several), else the first one.

    `backend` "native" loads libvixDiskLib.so from `libdir` through ctypes. When that is the simulated C library
    (the run builds it: `vddk-conformance run --vddk-backend native`), its agent is told the proxy VM and build to
    play, so the target keeps PROXY_PLACEMENT and LIBRARY_BUILDS; it lacks LIBRARY_SESSIONS (one InitEx per
    process, as VMware's) and SIMPLE_VOLUMES (the kit has no libvixMntapi.so). Another kit (`--vddk-libdir`,
    VMware's) runs where the harness runs, like a lab's: it lacks those four."""
    from conformance.lab.secrets import remember
    from conformance.vsphere.about import server_version
    from conformance.vsphere.session import VsphereSession

    remember(simulator.password)  # the run scrubs its reports of it, as of a lab's password
    endpoint = Endpoint(simulator.host, simulator.port, simulator.thumbprint)
    session = VsphereSession(endpoint, simulator.user, simulator.password, simulator.inventory.datacenter)
    try:
        vsphere = server_version(session.content.about).name  # what the server says it is, as for a lab
        datastores = session.datastores_by_type()
        proxies: dict[str, str] = {}
        targets: dict[str, str] = {}
        ds_types = {name: t for t, names in datastores.items() for name in names}
        for spec in simulator.inventory.vms:
            if spec.role == "proxy":
                proxies[spec.guest_detail or spec.guest_full_name] = spec.name
            elif not spec.guest_id.startswith("windows"):
                targets.setdefault(ds_types[spec.datastore], spec.name)
    finally:
        session.close()
    physical = simulator.inventory.physical_proxies
    # the simulated library in-process: any proxy VM, any build, several at once, and its VixMntApi mounts
    library: set[str] = {PROXY_PLACEMENT, LIBRARY_BUILDS, LIBRARY_SESSIONS, SIMPLE_VOLUMES}
    if backend != "simulated":  # the C library has no libvixMntapi.so (VMware's would not read VDDKCFS1 either)
        from conformance.vixdisklib.shim.kit import simulated_kit

        library = {PROXY_PLACEMENT, LIBRARY_BUILDS} if simulated_kit(libdir) else set()
    return Target(
        name=f"sim (vSphere {simulator.profile.name})",
        endpoint=endpoint,
        user=simulator.user,
        password=simulator.password,
        datacenter=simulator.inventory.datacenter,
        vsphere=vsphere,
        proxies=proxies,
        default_proxy=_supported_proxy(proxies, build),
        physical_proxy=physical[0].name if physical else None,
        datastores=datastores,
        target_vms=targets,
        capabilities=frozenset(
            {FAULT_INJECTION, MAINTENANCE_MODE, GUEST_OPERATIONS, CREATE_VMS}
            | {SERVER_RECORDS, NFC_MEMORY_LIMIT}
            | library
            | ({PHYSICAL_PROXY} if physical else set())
        ),
        guest=GuestCredentials("root", "simulated-guest"),
        cafile=simulator.cert_file,
        controls=SimulatorControls(simulator),
        allow_vms=frozenset(spec.name for spec in simulator.inventory.vms),  # the simulator is the run's own
        lock_dir=simulator.state_dir / "locks",  # only this process uses it; gone with the simulator
        backend=backend,
        libdir=libdir,
    )


def _supported_proxy(proxies: dict[str, str], build: str | None) -> str | None:
    """The first proxy VM whose guest OS ``build`` supports, Linux ones first (the inventory's first proxy is
    Linux; a Windows proxy brings its own behaviours, K3); the first proxy when none is supported."""
    from conformance.knowledge.proxy_support import find_os, proxy_supported

    def linux_first(item: tuple[str, str]) -> bool:
        entry = find_os(item[0])
        return entry is None or entry.platform != "linux"

    supported = [item for item in proxies.items() if build is None or proxy_supported(item[0], build)]
    return next((vm for _, vm in sorted(supported, key=linux_first)), next(iter(proxies.values()), None))


@dataclass(frozen=True)
class ServerFacts:
    """What a target file leaves to the server: its release, and the guest OS of the HotAdd proxy VM."""

    release: str
    proxy_os: str | None


def server_facts(
    endpoint: Endpoint, user: str, password: str, spec: Any, proxy: str | None, origin: str
) -> ServerFacts:
    """The vSphere release the server reports (``content.about``; the declared one is kept when the server's
    release agrees: VMC milestones cannot be told apart by version) and the guest OS it reports for `proxy`;
    TargetFileError, one line, when the server cannot be read or the proxy VM is not there."""
    from conformance.lab.target_file import TargetFileError
    from conformance.vsphere.about import ServerVersionError, server_version
    from conformance.vsphere.connection import PinMismatchError, VsphereConnectError
    from conformance.vsphere.guest_os import reported_guest_os
    from conformance.vsphere.session import InventoryLookupError, VsphereSession

    try:
        session = VsphereSession(endpoint, user, password, spec.datacenter)
    except PinMismatchError as exc:
        raise TargetFileError(f"{origin}: server.thumbprint: {exc}") from None
    except (VsphereConnectError, OSError) as exc:
        where = f"{endpoint.host}:{endpoint.port}"
        raise TargetFileError(f"{origin}: server: cannot read the version of {where}: {exc}") from None
    try:
        try:
            release = server_version(session.content.about, spec.vsphere).name
        except ServerVersionError as exc:
            raise TargetFileError(f"{origin}: {exc}") from None
        if proxy is None:
            return ServerFacts(release, None)
        try:
            reported = reported_guest_os(session.vm(proxy)) or None
        except InventoryLookupError:
            raise TargetFileError(
                f"{origin}: vms.proxy: no VM {proxy!r} in {spec.datacenter} (fix: name the proxy VM)"
            ) from None
        return ServerFacts(release, reported)
    finally:
        session.close()


def file_target(path: str | Path, read_server: bool = True) -> Target:
    """A Target from a target file; reads the passwords (TargetFileError, one line, when one is missing) and,
    unless ``read_server`` is False (parsing alone), the vSphere release from the server itself."""
    from conformance.lab.target_file import TargetFileError, load_target_file

    spec = load_target_file(path)
    password = spec.password.read()
    guest = (
        GuestCredentials(spec.guest_user or "root", spec.guest_password.read())
        if spec.guest_password is not None
        else GuestCredentials("root", "unused")
    )
    proxy = spec.proxy or spec.harness_vm
    capabilities = set(spec.capabilities) | ({PHYSICAL_PROXY} if spec.physical_proxy else set())
    endpoint = Endpoint(spec.host, spec.port, spec.thumbprint)
    vsphere = spec.vsphere or ""  # not read: only a parsed file, never a guessed release
    proxy_os = spec.proxy_os
    if read_server:
        facts = server_facts(endpoint, spec.user, password, spec, proxy, str(spec.path))
        vsphere = facts.release
        proxy_os = proxy_os or facts.proxy_os  # declared wins (a generic guest id); else what the server says
    if proxy and not proxy_os and read_server:
        raise TargetFileError(
            f"{spec.path}: vms.proxy_os: the server reports no guest OS for proxy VM {proxy!r} "
            '(fix: set vms.proxy_os to the proxy\'s OS, for example "Red Hat Enterprise Linux 8.3")'
        )
    proxies = {proxy_os or "proxy": proxy} if proxy else {}
    # the simulated library places itself in any proxy VM; VMware's runs where the harness runs (vms.harness_vm)
    default_proxy = spec.proxy if spec.backend == "simulated" else spec.harness_vm
    if spec.backend == "simulated":
        capabilities |= {PROXY_PLACEMENT, LIBRARY_SESSIONS}
    return Target(
        name=spec.name,
        endpoint=endpoint,
        user=spec.user,
        password=password,
        datacenter=spec.datacenter,
        vsphere=vsphere,
        proxies=proxies,
        default_proxy=default_proxy,
        physical_proxy=spec.physical_proxy,
        datastores=spec.datastores,
        target_vms=dict(spec.sources),
        transports=spec.transports,
        capabilities=frozenset(capabilities),
        guest=guest,
        allow_vms=frozenset(spec.allow_vms),
        backend=spec.backend,
        libdir=spec.libdir,
        source=spec.path,
        nfc_port=spec.nfc_port,
    )


@contextmanager
def embedded_simulator(vsphere: str = "7.0U3") -> Iterator[Target]:
    """Start a simulator on 127.0.0.1, yield its Target, stop it (and remove its state) afterwards."""
    from conformance.sim.instance import Simulator

    with Simulator(vsphere=vsphere) as simulator:
        yield simulator_target(simulator)
