"""The preflight: what is wrong with a run's VDDK build, server, HotAdd proxy OS and InitEx configuration, said
before any connection is made.

Why: an unsupported VDDK/vSphere pair (C4), a proxy OS the build does not support (F2), or an InitEx
configuration the build will refuse or misuse (F1, K5, K6) must be reported up front, one line each, instead
of failing somewhere in a backup. ``preflight`` returns those lines (empty when everything is fine); lines
that only warn start with ``warning:``. The decisions come from data: the support policy
(``conformance.knowledge.versions.vddk_supports``), the proxy matrix (``conformance.knowledge.proxy_support``), the
per-build switches of ``conformance/data/vddk_builds.toml`` (``conformance.knowledge.build_facts``) and the vSphere
versions
(``conformance/data/vsphere_versions.toml``), never the simulator's own tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.knowledge.build_facts import behaviour_of
from conformance.knowledge.proxy_support import check_proxy
from conformance.knowledge.versions import VddkBuild, VersionError, VsphereVersion, vddk_supports
from conformance.vixdisklib.config import (
    AIO_SESSION_LIMIT,
    KEY_AIO_BUF_COUNT,
    KEY_AIO_BUF_SIZE,
    KEY_NO_NFC_SESSION,
    ConfigFileError,
    VddkConfig,
    load_config,
    parse_config,
    render_config,
)
from conformance.vsphere.tls import pinned_client_context

__all__ = ["WARNING", "ConfigLike", "compatibility_problems", "config_problems", "preflight", "target_preflight"]

WARNING = "warning: "
#: VMC milestones after this one need NoNfcSession=1 (K6)
LAST_VMC_WITHOUT_NO_NFC_SESSION = 5

ConfigLike = VddkConfig | Path | str | Mapping[str, "str | int"]


def compatibility_problems(build: VddkBuild, vsphere: VsphereVersion) -> list[str]:
    """C4: the pair against VMware's support policy (N-2 .. N+1 on-prem, the milestone table on VMC)."""
    support = vddk_supports(build, vsphere)
    if support:
        return []
    return [f"unsupported: VDDK {build} with {vsphere.label}: {support.reason} (fix: pick a supported pair)"]


def _load(config: ConfigLike) -> VddkConfig:
    if isinstance(config, VddkConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(render_config(dict(config)), "<InitEx configuration>")
    return load_config(Path(config))


def config_problems(
    config: ConfigLike, build: VddkBuild, vsphere: VsphereVersion, *, hotadd: bool = False
) -> list[str]:
    """F1, K5 and K6 problems of an InitEx configuration for this build and server."""
    try:
        parsed = _load(config)
    except (ConfigFileError, OSError) as exc:
        return [f"InitEx configuration: {exc}"]
    where = f"InitEx configuration {parsed.source}"
    lines = [f"{where}: {p}" for p in parsed.problems()]  # malformed values (F1, K5, K6) and syntax
    behaviour = behaviour_of(build.name)
    malformed = {p.key for p in parsed.problems()}
    if behaviour.nfc_aio_keys and not {KEY_AIO_BUF_SIZE, KEY_AIO_BUF_COUNT} & malformed:
        size = parsed.aio_session_bytes
        if size > AIO_SESSION_LIMIT:
            lines.append(
                f"{where}: NFC AIO session memory {parsed.aio_buf_size_64k} x 64 KiB x {parsed.aio_buf_count} = "
                f"{size // 1024} KiB exceeds the 16 MiB limit of VDDK {build}: Open will fail "
                f"(fix: lower {KEY_AIO_BUF_SIZE} or {KEY_AIO_BUF_COUNT})"
            )
    if KEY_NO_NFC_SESSION in malformed:
        return lines
    no_nfc = parsed.get(KEY_NO_NFC_SESSION)
    if vsphere.is_vmc and (vsphere.milestone or 0) > LAST_VMC_WITHOUT_NO_NFC_SESSION and no_nfc != "1":
        lines.append(
            f"{where}: {vsphere.label} needs {KEY_NO_NFC_SESSION}=1 for security (after M5), "
            f"got {no_nfc if no_nfc is not None else 'unset (0)'} (fix: set it to 1)"
        )
    special_names_broken = behaviour.hotadd_special_names_broken and vsphere.facts.http_double_decode
    if hotadd and special_names_broken and not vsphere.is_vmc and no_nfc == "1":
        lines.append(
            f"{WARNING}{where}: with VDDK {build} against {vsphere.label}, HotAdd cannot open disks whose names "
            f"have special characters while {KEY_NO_NFC_SESSION}=1 (K6; workaround: set it to 0, "
            f"or use VDDK 6.7.2 or later)"
        )
    return lines


def preflight(
    build: str | VddkBuild,
    vsphere: str | VsphereVersion,
    *,
    proxy_os: str | None = None,
    config: ConfigLike | None = None,
    transports: str | None = None,
) -> list[str]:
    """Every problem of a run, one line each (``warning:`` lines only warn); empty when there is none.

    ``proxy_os`` names the HotAdd proxy's OS (F2); ``config`` is an InitEx configuration (a parsed one, a file
    path, or a mapping of keys to values); ``transports`` ("hotadd:nbdssl") says whether HotAdd is used — by
    default it is when a proxy OS is given.
    """
    lines: list[str] = []
    try:
        vddk: VddkBuild | None = VddkBuild.parse(build)
    except VersionError as exc:
        vddk = None
        lines.append(f"VDDK build: {exc}")
    try:
        server: VsphereVersion | None = VsphereVersion.parse(vsphere)
    except VersionError as exc:
        server = None
        lines.append(f"vSphere version: {exc}")
    if vddk is None:
        return lines
    if server is not None:
        lines += compatibility_problems(vddk, server)
    if proxy_os is not None:
        lines += check_proxy(proxy_os, vddk)
    if config is not None and server is not None:
        hotadd = "hotadd" in transports.split(":") if transports is not None else proxy_os is not None
        lines += config_problems(config, vddk, server, hotadd=hotadd)
    return [" ".join(line.split()) for line in lines]


# --- a lab target: everything the run needs from the server, checked before the run ---


def _reported_proxy_problems(where: str, session: Any, proxy: str, build: str | None) -> list[str]:
    """Without vms.proxy_os the run takes the proxy's OS from the server: it must report one (else F2 has no
    proxy OS to test), and the build must support it like a declared one."""
    from conformance.vsphere.guest_os import reported_guest_os

    reported = reported_guest_os(session.vm(proxy))
    if not reported:
        return [
            f"{where}: vms.proxy_os: not set, and the server reports no guest OS for proxy VM {proxy!r}; the F2 "
            "tests would find no proxy OS (fix: set vms.proxy_os to the proxy's OS)"
        ]
    if build is None:
        return []
    try:
        return [f"{line} (proxy {proxy!r}, as the server reports it)" for line in check_proxy(reported, build)]
    except VersionError as exc:
        return [f"VDDK build: {exc}"]


def _presented_thumbprint(host: str, port: int, length: int, timeout: float) -> str:
    import hashlib
    import socket

    context = pinned_client_context()  # only to tell the user what the server presents
    with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True) or b""
    digest = hashlib.new("sha1" if length == 40 else "sha256", der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _libdir_problems(where: str, libdir: Path, build: str | None, transports: tuple[str, ...]) -> list[str]:
    """The kit must be there, and the library in it must load, initialise as `build` and offer the transports
    the target uses (loaded in a child process: `native/probe.py`)."""
    if not libdir.is_dir():
        return [f"{where}: vddk.libdir {libdir} is not a folder (fix: point it at the VDDK distribution folder)"]
    found = [p for d in (libdir, libdir / "lib64") for p in sorted(d.glob("libvixDiskLib.so.*")) if d.is_dir()]
    if not found:
        return [
            f"{where}: vddk.libdir {libdir} holds no libvixDiskLib.so.N (nor lib64/ below it) "
            "(fix: point it at the unpacked vmware-vix-disklib-distrib folder)"
        ]
    if build is None:
        return [f"{where}: vddk.build is not set: the native library is checked against it (fix: set vddk.build)"]
    from conformance.vixdisklib.native.probe import library_problems

    return library_problems(where, libdir, build, transports)


def target_preflight(path: str | Path, build: str | None = None, timeout: float = 15.0) -> list[str]:
    """Every problem of a target file and its server, one line each: file, password, reachability, thumbprint,
    login, versions (the VDDK build against the server's release), datacenter, allow-listed VMs, proxy,
    datastores and their types, the data plane (each ESXi host's NFC port, D4), the VDDK libdir for the native
    backend. Empty when the target is ready."""
    import socket

    from conformance.lab.dataplane_check import data_plane_problems
    from conformance.lab.target_file import TargetFileError, load_target_file
    from conformance.vsphere.about import ServerVersionError
    from conformance.vsphere.about import server_version as server_version_of
    from conformance.vsphere.connection import Endpoint, PinMismatchError, VsphereConnectError
    from conformance.vsphere.session import InventoryLookupError, VsphereSession

    try:
        spec = load_target_file(path)
    except TargetFileError as exc:
        return [str(exc)]
    where = str(spec.path)
    lines: list[str] = []
    vddk_name = spec.build or build
    if spec.backend == "native" and spec.libdir is not None:
        lines += _libdir_problems(where, spec.libdir, vddk_name, spec.transports)
    if spec.proxy_os is not None and vddk_name is not None:
        try:
            lines += check_proxy(spec.proxy_os, VddkBuild.parse(vddk_name))
        except VersionError as exc:
            lines.append(f"VDDK build: {exc}")
    try:
        password = spec.password.read()
    except TargetFileError as exc:
        return [*lines, str(exc)]
    address = f"{spec.host}:{spec.port}"
    try:
        socket.create_connection((spec.host, spec.port), timeout=timeout).close()
    except OSError as exc:
        problem = f"cannot reach {address}: {exc.strerror or exc}"
        return [*lines, f"{where}: server: {problem} (fix: check server.host and server.port)"]
    endpoint = Endpoint(spec.host, spec.port, spec.thumbprint)
    try:
        session = VsphereSession(endpoint, spec.user, password, spec.datacenter)
    except PinMismatchError:
        length = len(endpoint.normalized_thumbprint())
        try:
            presented = _presented_thumbprint(spec.host, spec.port, length, timeout)
        except OSError:
            presented = "unknown"
        return [
            *lines,
            f"{where}: server.thumbprint: {address} presents a certificate with thumbprint {presented}, not "
            f"{spec.thumbprint} (fix: verify the server's certificate out of band, then update server.thumbprint)",
        ]
    except VsphereConnectError as exc:
        return [*lines, f"{where}: credentials: {exc}"]
    except OSError as exc:
        return [*lines, f"{where}: server: {address}: {exc} (fix: check that it is a vCenter or ESXi SDK endpoint)"]
    try:
        try:  # the server's own report of its release; a declared one is kept when the release agrees (VMC)
            server_version: str | None = server_version_of(session.content.about, spec.vsphere).name
        except ServerVersionError as exc:
            lines.append(f"{where}: {exc}")
            server_version = None
        if vddk_name is not None and server_version is not None:
            try:
                lines += compatibility_problems(VddkBuild.parse(vddk_name), VsphereVersion.parse(server_version))
            except VersionError as exc:
                lines.append(f"versions: {exc}")
        try:
            session.datacenter  # noqa: B018 - the lookup is the check
        except InventoryLookupError:
            return [
                *lines,
                f"{where}: server.datacenter: no datacenter {spec.datacenter!r} on {address} (fix: use its exact name)",
            ]
        present = {vm.name for vm in session.vms()}
        for vm_name in spec.allow_vms:
            if vm_name not in present:
                lines.append(f"{where}: vms.allow: no VM {vm_name!r} in {spec.datacenter} (fix: correct or remove it)")
        if spec.proxy is not None and spec.proxy not in present:
            lines.append(f"{where}: vms.proxy: no VM {spec.proxy!r} in {spec.datacenter} (fix: name the proxy VM)")
        elif spec.proxy is not None and spec.proxy_os is None:
            lines += _reported_proxy_problems(where, session, spec.proxy, vddk_name)
        actual = {name: t for t, names in session.datastores_by_type().items() for name in names}
        for ds_type, names in spec.datastores.items():
            for ds_name in names:
                if ds_name not in actual:
                    lines.append(f"{where}: datastores.{ds_type}: no datastore {ds_name!r} (fix: correct or remove it)")
                elif actual[ds_name] != ds_type:
                    lines.append(
                        f"{where}: datastores.{ds_type}: {ds_name!r} is of type {actual[ds_name]} "
                        f"(fix: list it under {actual[ds_name]})"
                    )
        # D4: 443 answered; the disk data goes over the hosts' NFC port, which a firewall may still close
        lines += [f"{where}: {line}" for line in data_plane_problems(session, spec.backend, spec.nfc_port, timeout)]
    finally:
        session.close()
    return [" ".join(line.split()) for line in lines]
