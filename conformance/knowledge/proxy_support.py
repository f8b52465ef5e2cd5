"""The HotAdd proxy support matrix (F2): which guest OS each VDDK build supports as a HotAdd proxy.

Why: VDDK 7.0.3 added RHEL 8.3, CentOS 8.3 and SLES 15.1 as HotAdd proxy operating systems; a run whose proxy
OS the selected build does not support must be told so before it starts, not fail somewhere in a backup. The
facts live in ``conformance/data/proxy_support.toml`` (its comments state the assumptions); this module
validates that file (every problem is a one-line ``ProxySupportError``), matches the guest OS text vSphere
reports to a matrix entry by prefix, answers ``proxy_supported`` and gives the preflight ``check_proxy``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError
from conformance.knowledge.versions import Support, VddkBuild, VersionError

__all__ = ["ProxyOs", "ProxySupportError", "Support", "check_proxy", "find_os", "load_matrix", "proxy_supported"]

DEFAULT_PATH = "proxy_support.toml"
_PLATFORMS = ("linux", "windows")
_KEYS = ("label", "platform", "guest_prefixes", "supported_from", "source")


class ProxySupportError(InputError):
    """A broken support-matrix file; one line naming the entry, the key and the fix."""


@dataclass(frozen=True)
class ProxyOs:
    """One proxy operating system of the matrix."""

    label: str
    platform: str
    guest_prefixes: tuple[str, ...]
    supported_from: VddkBuild
    source: str

    def matches(self, os_text: str) -> bool:
        """Whether an OS name or the guest OS text vSphere reports names this OS (case-insensitive prefix)."""
        text = " ".join(os_text.split()).casefold()
        return any(text.startswith(p.casefold()) for p in (self.label, *self.guest_prefixes))


def _parse(data: dict[str, Any], origin: str) -> tuple[ProxyOs, ...]:
    tables = data.get("os")
    extra = sorted(set(data) - {"os"})
    if extra:
        raise ProxySupportError(f"{origin}: unknown top-level key {extra[0]!r} (fix: use only [[os]] tables)")
    if not isinstance(tables, list) or not tables:
        raise ProxySupportError(f"{origin}: no [[os]] tables (fix: add one [[os]] table per proxy OS)")
    out: list[ProxyOs] = []
    for position, raw in enumerate(tables, start=1):
        at = f"{origin}: os #{position}"
        if not isinstance(raw, dict):
            raise ProxySupportError(f"{at}: not a table (fix: write it as an [[os]] table)")
        for key in raw:
            if key not in _KEYS:
                raise ProxySupportError(f"{at}: unknown key {key!r} (fix: use only {', '.join(_KEYS)})")
        for key in ("label", "platform", "supported_from", "source"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise ProxySupportError(f'{at}: {key}: expected a non-empty string (fix: write {key} = "...")')
        at = f"{origin}: os {raw['label']!r}"
        if raw["platform"] not in _PLATFORMS:
            raise ProxySupportError(f"{at}: platform {raw['platform']!r} (fix: use one of {', '.join(_PLATFORMS)})")
        prefixes = raw.get("guest_prefixes", [])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p.strip() for p in prefixes):
            raise ProxySupportError(f'{at}: guest_prefixes: expected a list of strings (fix: write ["..."])')
        try:
            since = VddkBuild.parse(raw["supported_from"])
        except VersionError as exc:
            raise ProxySupportError(f"{at}: supported_from: {exc}") from None
        entry = ProxyOs(raw["label"], raw["platform"], tuple(prefixes), since, raw["source"])
        for other in out:
            if other.matches(entry.label) or entry.matches(other.label):
                raise ProxySupportError(f"{at}: overlaps {other.label!r} (fix: make labels and prefixes distinct)")
        out.append(entry)
    return tuple(out)


def load_matrix(path: str | Path | None = None) -> tuple[ProxyOs, ...]:
    """Read and validate a matrix file (default: the packaged ``proxy_support.toml``)."""
    if path is None:
        return _default_matrix()
    text = Path(path).read_text(encoding="utf-8")
    return _loads(text, Path(path).name)


@cache
def _default_matrix() -> tuple[ProxyOs, ...]:
    return _loads(resources.files("conformance.data").joinpath(DEFAULT_PATH).read_text(encoding="utf-8"), DEFAULT_PATH)


def _loads(text: str, origin: str) -> tuple[ProxyOs, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProxySupportError(f"{origin}: not valid TOML: {exc} (fix: correct the syntax there)") from None
    return _parse(data, origin)


def find_os(os_text: str, matrix: tuple[ProxyOs, ...] | None = None) -> ProxyOs | None:
    """The matrix entry an OS name or guest OS text names (by prefix), or None."""
    for entry in matrix if matrix is not None else load_matrix():
        if entry.matches(os_text):
            return entry
    return None


def proxy_supported(os_label: str, build: str | VddkBuild, matrix: tuple[ProxyOs, ...] | None = None) -> Support:
    """Whether VDDK ``build`` supports ``os_label`` (a matrix name or guest OS text) as a HotAdd proxy."""
    vddk = VddkBuild.parse(build)
    entry = find_os(os_label, matrix)
    if entry is None:
        return Support(False, f"proxy OS {os_label!r} is not in the HotAdd proxy support matrix")
    if vddk < entry.supported_from:
        return Support(
            False, f"{entry.label} is supported as a HotAdd proxy from VDDK {entry.supported_from}, not {vddk}"
        )
    return Support(True, f"{entry.label} is supported as a HotAdd proxy by VDDK {vddk} (since {entry.supported_from})")


def check_proxy(os_label: str, build: str | VddkBuild, matrix: tuple[ProxyOs, ...] | None = None) -> list[str]:
    """The preflight's problems with a HotAdd proxy OS for a build: one line each, empty when it is supported."""
    try:
        support = proxy_supported(os_label, build, matrix)
    except (VersionError, ProxySupportError) as exc:
        return [f"HotAdd proxy check: {exc}"]
    if support:
        return []
    return [f"HotAdd proxy OS not supported: {support.reason} (fix: use a supported proxy OS or VDDK build)"]
