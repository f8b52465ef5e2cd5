"""vSphere versions as the simulated server plays them: the knowledge (names, builds, API versions, what each
release changed) is ``conformance.knowledge.versions``; this module adds only what playing a version needs (the vim25
version list the server advertises)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache

from pyVmomi import VmomiSupport

from conformance.knowledge.versions import (
    VersionError,
    VsphereRelease,
    normalize_vsphere,
    vsphere_release,
    vsphere_releases,
)

__all__ = ["UnknownProfileError", "VsphereProfile", "all_profiles", "get_profile", "normalize"]

normalize = normalize_vsphere


class UnknownProfileError(VersionError):
    """A vSphere version name that no profile matches; the message lists the known ones."""


@dataclass(frozen=True)
class VsphereProfile(VsphereRelease):
    """One known vSphere release, as the simulated server presents it to a client."""

    @property
    def vim_version(self) -> str:
        """pyVmomi's name for the API version (e.g. vim.version.v7_0_3_0)."""
        return str(VmomiSupport.GetVersionFromVersionUri(f"urn:vim25/{self.api_version}"))

    def supported_api_versions(self) -> list[str]:
        """This release's API version and every older vim25 version, newest first (vimServiceVersions.xml)."""
        mine = self.vim_version
        older = [
            uri
            for ver, uri in VmomiSupport.versionIdMap.items()
            if ver.startswith("vim.version.") and VmomiSupport.IsChildVersion(mine, ver) and ver != mine
        ]
        ordered = sorted(set(older), key=_version_key, reverse=True)
        return [self.api_version, *[v for v in ordered if v != self.api_version and _numeric(v)]]


def _numeric(version: str) -> bool:
    return bool(re.fullmatch(r"\d+(\.\d+)*", version))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)) if _numeric(version) else (0,)


@cache
def all_profiles() -> dict[str, VsphereProfile]:
    """Every known vSphere version, playable."""
    return {name: VsphereProfile(**asdict(release)) for name, release in vsphere_releases().items()}


def get_profile(name: str) -> VsphereProfile:
    """The playable release a spelling names (the knowledge layer resolves it); UnknownProfileError otherwise."""
    try:
        release = vsphere_release(name)
    except VersionError as exc:
        raise UnknownProfileError(str(exc)) from None
    return all_profiles()[release.name]
