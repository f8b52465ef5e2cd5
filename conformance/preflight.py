"""The preflight: what is wrong with a run's VDDK build, server, HotAdd proxy OS and InitEx configuration, said
before any connection is made.

Why: an unsupported VDDK/vSphere pair (C4), a proxy OS the build does not support (F2), or an InitEx
configuration the build will refuse or misuse (F1, K5, K6) must be reported up front, one line each, instead
of failing somewhere in a backup. ``preflight`` returns those lines (empty when everything is fine); lines
that only warn start with ``warning:``. The decisions come from data: the support policy
(``conformance.versions.vddk_supports``), the proxy matrix (``conformance.proxy_support``), the per-build
switches of ``conformance/data/vddk_builds.toml`` and the vSphere profiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conformance.proxy_support import check_proxy
from conformance.versions import VddkBuild, VersionError, VsphereVersion, vddk_supports
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
from conformance.vixdisklib.simulated.behaviour import behaviour_of

__all__ = ["WARNING", "ConfigLike", "compatibility_problems", "config_problems", "preflight"]

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
    special_names_broken = behaviour.hotadd_special_names_broken and vsphere.profile.http_double_decode
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
