"""Which vSphere release a server is, from what it reports about itself (``ServiceInstance.content.about``).

Why: expectations and the simulated library's compatibility behaviour (C4) must follow the server actually
there, not a run setting. ``about`` gives version, build and API version; a VMC milestone tracks an on-prem
release and speaks its API version, so milestones cannot be told from it alone: a declared value (a target
file's ``server.vsphere``) is kept when the server's release agrees, and refused in one line when it does not.
"""

from __future__ import annotations

import re
from typing import Any

from conformance.knowledge.versions import VersionError, VsphereVersion, all_vsphere

__all__ = ["ServerVersionError", "detect_release", "reported_release", "server_version"]

_MILESTONE = re.compile(r"\bVMC\s+(M\d+)\b")


class ServerVersionError(ValueError):
    """The server's own report does not name a known release, or contradicts the declared one (one line)."""


def reported_release(about: Any) -> tuple[int, int, int] | None:
    """(major, minor, update) of the API version the server reports ('6.7.1' -> (6, 7, 1)), or None."""
    numbers = [int(p) for p in re.findall(r"\d+", str(getattr(about, "apiVersion", "") or ""))]
    if not numbers:
        return None
    major, minor, update = [*numbers, 0, 0][:3]
    return major, minor, update


def detect_release(about: Any) -> str | None:
    """The known release the server names: a VMC milestone its full name states, else the on-prem release with
    its build, else with its API version; None when nothing matches."""
    known = all_vsphere()
    named = _MILESTONE.search(str(getattr(about, "fullName", "") or ""))
    if named and any(v.name == named.group(1) for v in known):
        return named.group(1)
    build = str(getattr(about, "build", "") or "")
    api = str(getattr(about, "apiVersion", "") or "")
    onprem = [v for v in known if not v.is_vmc]
    match = next((v for v in onprem if v.facts.build == build), None) or next(
        (v for v in onprem if v.facts.api_version == api), None
    )
    return match.name if match else None


def server_version(about: Any, declared: str | None = None) -> VsphereVersion:
    """The server's release: ``declared`` when the server's own release agrees with it, else what it reports."""
    full = " ".join(str(getattr(about, "fullName", "") or "unnamed server").split())
    release = reported_release(about)
    if declared is not None:
        try:
            wanted = VsphereVersion.parse(declared)
        except VersionError as exc:
            raise ServerVersionError(str(exc)) from None
        if release is not None and wanted.release != release:
            actual = detect_release(about) or ".".join(map(str, release))
            raise ServerVersionError(
                f"server.vsphere: the file says {wanted.name}, the server is {actual} ({full}) "
                f'(fix: write vsphere = "{actual}")'
            )
        return wanted
    detected = detect_release(about)
    if detected is None:
        raise ServerVersionError(
            f"server: reports {full}, which no known vSphere release matches "
            "(fix: set server.vsphere to the closest release)"
        )
    return VsphereVersion.parse(detected)
