"""Target files: a lab vCenter/ESXi described in TOML, read into a `TargetFile` with one-line errors.

Why a file: a lab run needs the address, the pinned certificate, where the password is kept, which VMs it
may touch and which proxy and datastores to use; one reviewed file per lab keeps that out of command lines.
The password is never in the file (a `password` key is refused): it comes from an environment variable or a
file of its own. There is no "ignore certificate" switch: the thumbprint is required and always verified.

Layout::

    name = "lab-a"                                  # optional, shown in reports
    capabilities = ["create-vms", "guest-operations"]

    [server]
    host = "vc.lab.example"
    port = 443                                      # optional
    nfc_port = 902                                  # optional: the ESXi hosts' NFC port (NBD/NBDSSL data)
    thumbprint = "AB:CD:..."                        # SHA-1 (40 hex) or SHA-256 (64 hex) of the certificate
    datacenter = "dc1"
    vsphere = "M16"                                 # optional: the server's about decides; declare a VMC milestone

    [credentials]
    user = "backup@vsphere.local"
    password_env = "VDDKC_PASSWORD"                 # or password_file = "/run/secrets/vc"

    [vms]
    allow = ["target-vmfs", "target-nfs"]           # the only VMs the run may snapshot, restore into or clone
    proxy = "proxy-rhel83"                          # the HotAdd proxy VM
    proxy_os = "Red Hat Enterprise Linux 8.3"       # optional
    harness_vm = "proxy-rhel83"                     # backend native: the proxy VM this harness runs in
    physical_proxy = "backup-server"                # optional (SAN)
    sources = { VMFS = "target-vmfs" }              # VM per datastore type that fresh clones start from

    [datastores]                                    # datastore names by summary.type
    VMFS = ["vmfs-01"]

    [vddk]
    build = "7.0.3"                                 # native: must be the release the library announces
    backend = "simulated"                           # or "native" (VMware's libvixDiskLib through ctypes)
    libdir = "/opt/vmware-vix-disklib-distrib"      # required with backend = "native"
    transports = ["nbdssl", "hotadd"]

    [guest]                                         # optional: guest operations in the allow-listed VMs
    user = "root"
    password_env = "VDDKC_GUEST_PASSWORD"
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError
from conformance.knowledge.transports import TRANSPORTS
from conformance.lab.secrets import remember

__all__ = ["BACKENDS", "CAPABILITIES", "TargetFile", "TargetFileError", "load_target_file"]

BACKENDS = ("simulated", "native")
#: capabilities a target file may declare (fault injection needs the embedded simulator's hooks)
CAPABILITIES = ("create-vms", "guest-operations", "maintenance-mode", "physical-proxy", "simple-volumes")
_SECTIONS: dict[str, tuple[str, ...]] = {
    "": ("name", "capabilities", "server", "credentials", "vms", "datastores", "vddk", "guest"),
    "server": ("host", "port", "nfc_port", "thumbprint", "datacenter", "vsphere"),
    "credentials": ("user", "password_env", "password_file"),
    "vms": ("allow", "proxy", "proxy_os", "harness_vm", "physical_proxy", "sources"),
    "vddk": ("build", "backend", "libdir", "transports"),
    "guest": ("user", "password_env", "password_file"),
}
_SECRET_KEYS = ("password", "pwd", "passwd", "secret", "token", "cookie")
_THUMBPRINT = re.compile(
    r"^([0-9A-Fa-f]{2}:){19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{40}$|^[0-9A-Fa-f]{64}$"
)


class TargetFileError(InputError):
    """A target file problem: one line naming the file, the key and the fix."""


@dataclass(frozen=True)
class SecretSource:
    """Where a password is read from (an environment variable or a file), never the password itself."""

    path: Path
    key: str  # "credentials" or "guest", for messages
    env: str | None
    file: Path | None

    def read(self) -> str:
        """The password now; TargetFileError naming the variable or file when it is missing or empty."""
        if self.env is not None:
            value = os.environ.get(self.env, "")
            if not value:
                raise TargetFileError(
                    f"{self.path}: {self.key}.password_env: environment variable {self.env} is unset or empty "
                    f"(fix: export {self.env}=...)"
                )
            return remember(value) or value
        assert self.file is not None
        try:
            value = self.file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise TargetFileError(
                f"{self.path}: {self.key}.password_file: cannot read {self.file}: {exc.strerror or exc} "
                "(fix: point it at a readable file holding the password)"
            ) from None
        if not value:
            raise TargetFileError(
                f"{self.path}: {self.key}.password_file: {self.file} is empty (fix: write the password)"
            )
        return remember(value) or value


@dataclass(frozen=True)
class TargetFile:
    """A parsed target file; passwords are read on demand through `password.read()`."""

    path: Path
    name: str
    host: str
    port: int
    thumbprint: str
    datacenter: str
    vsphere: str | None
    user: str
    password: SecretSource = field(repr=False)
    allow_vms: tuple[str, ...]
    proxy: str | None
    proxy_os: str | None
    physical_proxy: str | None
    harness_vm: str | None  # the proxy VM the harness (and so a native library) runs in
    sources: dict[str, str]
    datastores: dict[str, list[str]]
    build: str | None
    backend: str
    libdir: Path | None
    transports: tuple[str, ...]
    capabilities: tuple[str, ...]
    guest_user: str | None
    guest_password: SecretSource | None = field(repr=False)
    nfc_port: int = 902  # where the ESXi hosts' NFC service listens: disk data of NBD/NBDSSL (and HotAdd's session)

    @property
    def lock_key(self) -> str:
        """What identifies this server for cross-process VM locks."""
        return f"{self.host}:{self.port}"


class _Reader:
    """Typed access to the TOML document with errors that name the file and the key."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc

    def fail(self, key: str, problem: str, fix: str) -> TargetFileError:
        return TargetFileError(f"{self.path}: {key}: {problem} (fix: {fix})")

    def section(self, name: str, required: bool = True) -> dict[str, Any]:
        value = self.doc.get(name)
        if value is None:
            if required:
                raise self.fail(name, "missing section", f"add a [{name}] table")
            return {}
        if not isinstance(value, dict):
            raise self.fail(name, "must be a table", f"write it as [{name}]")
        return value

    def string(self, table: dict[str, Any], section: str, key: str, required: bool = True) -> str | None:
        where = f"{section}.{key}" if section else key
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(
                    where, "missing", f'add {key} = "..." to [{section}]' if section else f'add {key} = "..."'
                )
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"must be a non-empty string, got {value!r}", f'write {key} = "..."')
        return value.strip()

    def strings(self, table: dict[str, Any], section: str, key: str, required: bool = False) -> list[str]:
        where = f"{section}.{key}" if section else key
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(where, "missing", f'add {key} = ["..."]')
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(where, f"must be a list of names, got {value!r}", f'write {key} = ["a", "b"]')
        return [v.strip() for v in value]

    def check_keys(self, table: dict[str, Any], section: str) -> None:
        allowed = _SECTIONS[section]
        for key in table:
            where = f"{section}.{key}" if section else key
            if any(s in key.lower() for s in _SECRET_KEYS) and key not in ("password_env", "password_file"):
                raise self.fail(
                    where,
                    "secrets are never kept in a target file",
                    "remove it and set password_env (an environment variable) or password_file instead",
                )
            if key in ("insecure", "ignore_certificate", "verify", "no_verify", "skip_verify"):
                raise self.fail(
                    where,
                    "the certificate is always verified against the thumbprint",
                    "remove it and set server.thumbprint to the server's certificate thumbprint",
                )
            if key not in allowed:
                raise self.fail(where, "unknown key", f"use one of {', '.join(allowed)}")

    def secret(self, table: dict[str, Any], section: str) -> SecretSource:
        env = self.string(table, section, "password_env", required=False)
        file = self.string(table, section, "password_file", required=False)
        if (env is None) == (file is None):
            raise self.fail(
                f"{section}.password_env",
                "give exactly one of password_env and password_file",
                f'add password_env = "VARIABLE" to [{section}]',
            )
        if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
            raise self.fail(
                f"{section}.password_env", f"{env!r} is not a variable name", "name the variable, e.g. VDDKC_PASSWORD"
            )
        resolved = None if file is None else (self.path.parent / Path(file).expanduser())
        return SecretSource(self.path, section, env, resolved)


def load_target_file(path: str | Path) -> TargetFile:
    """Parse and check a target file (it does not connect: that is the preflight's job)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TargetFileError(
            f"{path}: cannot read: {exc.strerror or exc} (fix: give the path of a target file)"
        ) from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TargetFileError(f"{path}: not valid TOML: {exc} (fix: correct the syntax)") from None
    r = _Reader(path, doc)
    r.check_keys(doc, "")
    server = r.section("server")
    r.check_keys(server, "server")
    creds = r.section("credentials")
    r.check_keys(creds, "credentials")
    vms = r.section("vms")
    r.check_keys(vms, "vms")
    vddk = r.section("vddk", required=False)
    r.check_keys(vddk, "vddk")
    guest = r.section("guest", required=False)
    r.check_keys(guest, "guest")
    datastores_table = r.section("datastores", required=False)

    host = r.string(server, "server", "host")
    port = server.get("port", 443)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise r.fail("server.port", f"must be a port number, got {port!r}", "write port = 443")
    nfc_port = server.get("nfc_port", 902)
    if not isinstance(nfc_port, int) or isinstance(nfc_port, bool) or not 0 < nfc_port < 65536:
        raise r.fail("server.nfc_port", f"must be a port number, got {nfc_port!r}", "write nfc_port = 902")
    thumbprint = r.string(server, "server", "thumbprint")
    assert thumbprint is not None and host is not None
    if not _THUMBPRINT.match(thumbprint):
        raise r.fail(
            "server.thumbprint",
            f"{thumbprint!r} is not a SHA-1 or SHA-256 thumbprint",
            "copy the certificate thumbprint, e.g. from `openssl x509 -fingerprint -sha1`",
        )
    datacenter = r.string(server, "server", "datacenter")
    vsphere = r.string(server, "server", "vsphere", required=False)
    if vsphere is not None:
        from conformance.knowledge.versions import VersionError, vsphere_release

        try:
            vsphere = vsphere_release(vsphere).name
        except VersionError as exc:
            raise r.fail("server.vsphere", str(exc), 'write the release, e.g. vsphere = "7.0U3"') from None

    user = r.string(creds, "credentials", "user")
    password = r.secret(creds, "credentials")

    allow = r.strings(vms, "vms", "allow", required=True)
    if not allow:
        raise r.fail(
            "vms.allow", "is empty: the run could not touch any VM", 'list the VMs it may use, allow = ["vm-a"]'
        )
    proxy = r.string(vms, "vms", "proxy", required=False)
    proxy_os = r.string(vms, "vms", "proxy_os", required=False)
    harness_vm = r.string(vms, "vms", "harness_vm", required=False)
    physical_proxy = r.string(vms, "vms", "physical_proxy", required=False)
    sources_raw = vms.get("sources", {})
    if not isinstance(sources_raw, dict) or not all(isinstance(v, str) and v for v in sources_raw.values()):
        raise r.fail(
            "vms.sources",
            f"must map datastore types to VM names, got {sources_raw!r}",
            'write sources = { VMFS = "vm-a" }',
        )
    sources = {str(k): str(v) for k, v in sources_raw.items()}
    for ds_type, vm_name in sources.items():
        if vm_name not in allow:
            raise r.fail(
                f"vms.sources.{ds_type}",
                f"{vm_name!r} is not in vms.allow",
                f'add "{vm_name}" to vms.allow or pick an allowed VM',
            )

    datastores: dict[str, list[str]] = {}
    for ds_type in datastores_table:
        datastores[str(ds_type)] = r.strings(datastores_table, "datastores", str(ds_type), required=True)
    for ds_type in sources:
        if ds_type not in datastores:
            raise r.fail(
                f"vms.sources.{ds_type}",
                f"no datastore of type {ds_type} is declared",
                f'add {ds_type} = ["name"] to [datastores]',
            )

    build = r.string(vddk, "vddk", "build", required=False)
    if build is not None:
        from conformance.knowledge.versions import VddkBuild, VersionError

        try:
            build = VddkBuild.parse(build).name
        except VersionError as exc:
            raise r.fail("vddk.build", str(exc), 'write a VDDK build, e.g. build = "7.0.3"') from None
    backend = r.string(vddk, "vddk", "backend", required=False) or "simulated"
    if backend not in BACKENDS:
        raise r.fail("vddk.backend", f"unknown backend {backend!r}", f"use one of {', '.join(BACKENDS)}")
    libdir_text = r.string(vddk, "vddk", "libdir", required=False)
    libdir = None if libdir_text is None else (path.parent / Path(libdir_text).expanduser())
    if backend == "native" and libdir is None:
        raise r.fail(
            "vddk.libdir", 'required with backend = "native"', 'add libdir = "/path/to/vmware-vix-disklib-distrib"'
        )
    transports = r.strings(vddk, "vddk", "transports") or ["nbdssl"]
    for transport in transports:
        if transport not in TRANSPORTS:
            raise r.fail("vddk.transports", f"unknown transport {transport!r}", f"use some of {', '.join(TRANSPORTS)}")

    capabilities = r.strings(doc, "", "capabilities")
    for capability in capabilities:
        if capability not in CAPABILITIES:
            raise r.fail(
                "capabilities",
                f"unknown or unavailable capability {capability!r}",
                f"use some of {', '.join(CAPABILITIES)}",
            )
    guest_user = r.string(guest, "guest", "user", required=False) if guest else None
    guest_password = r.secret(guest, "guest") if guest else None
    if "guest-operations" in capabilities and guest_password is None:
        raise r.fail(
            "guest", "capability guest-operations needs guest credentials", "add [guest] with user and password_env"
        )
    if "physical-proxy" in capabilities and physical_proxy is None:
        raise r.fail("vms.physical_proxy", "capability physical-proxy needs it", 'add physical_proxy = "name" to [vms]')

    name = r.string(doc, "", "name", required=False) or path.stem
    return TargetFile(
        path=path,
        name=name,
        host=host,
        port=port,
        thumbprint=thumbprint,
        datacenter=datacenter or "",
        vsphere=vsphere,
        user=user or "",
        password=password,
        allow_vms=tuple(allow),
        proxy=proxy,
        proxy_os=proxy_os,
        physical_proxy=physical_proxy,
        harness_vm=harness_vm,
        sources=sources,
        datastores=datastores,
        build=build,
        backend=backend,
        libdir=libdir,
        transports=tuple(transports),
        capabilities=tuple(capabilities),
        guest_user=guest_user or ("root" if guest else None),
        guest_password=guest_password,
        nfc_port=nfc_port,
    )
