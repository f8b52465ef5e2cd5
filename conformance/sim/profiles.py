"""vSphere version profiles of the simulated server, loaded from data."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pyVmomi import VmomiSupport


class UnknownProfileError(ValueError):
    """A vSphere version name that no profile matches; the message lists the known ones."""


@dataclass(frozen=True)
class VsphereProfile:
    """What one vSphere release (or VMC milestone) looks like to a client."""

    name: str
    full_name: str
    version: str
    build: str
    api_version: str
    major: str
    http_double_decode: bool
    default_profile_preserves_cbt: bool
    vmc: bool = False
    #: K3: a Windows Server 2019 HotAdd proxy that opens the disk adapter flags the target VM for reboot
    windows_adapter_reboot_flag: bool = False
    #: K5: the server decides phone home by CEIP and ignores a client's EnablePhoneHome (vSphere 7.0.x)
    phone_home_by_ceip: bool = False

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


def normalize(name: str) -> str:
    """'7.0 U3', '7.0u3', '7.0.3' and 'vSphere 7.0U3' all name the profile '7.0U3'; 'm16' names 'M16'."""
    text = name.strip().lower().replace("vsphere", "").replace("update", "u").replace(" ", "")
    if re.fullmatch(r"m\d+", text):
        return text.upper()
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+)|u(\d+))?", text)
    if not match:
        return name.strip()
    major, minor, patch, update = match.groups()
    level = update or patch
    if level and level != "0":
        return f"{major}.{minor}U{level}"
    return f"{major}.{minor}"


@cache
def all_profiles() -> dict[str, VsphereProfile]:
    raw = tomllib.loads(resources.files("conformance.data").joinpath("vsphere_profiles.toml").read_text())
    return {name: VsphereProfile(name=name, **fields) for name, fields in raw["profiles"].items()}


def get_profile(name: str) -> VsphereProfile:
    profiles = all_profiles()
    key = normalize(name)
    if key not in profiles:
        known = ", ".join(profiles)
        raise UnknownProfileError(f"unknown vSphere version {name!r}: use one of {known}")
    return profiles[key]
