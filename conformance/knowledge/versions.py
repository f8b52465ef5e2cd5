"""The version model: VDDK builds, vSphere versions and which pairs VMware supports — pure functions over data.

Why a separate module: every suite parametrizes over (VDDK build, vSphere version), and the preflight must refuse an
unsupported pair before a run starts (release-note item C4). Keeping the policy here, free of I/O and of the
simulator's state, lets the catalog (``conformance.knowledge.catalog``) and the preflight ask the same question and get
the same answer.

Sources (VDDK 7.0.3 release notes, "About" and "Compatibility Notices"):

* On-prem policy: VDDK supports vSphere N-2 .. N+1, where N is the vSphere release of the VDDK family; "VDDK 7.0 and
  all its update releases will support vSphere 6.5, 6.7 (except for new features), and the next major release".
  We apply the same rule to every family over the release sequence 5.5, 6.0, 6.5, 6.7, 7.0, 8.0, which gives
  VDDK 7.0.x -> 6.5, 6.7, 7.0, 8.0; VDDK 6.7.x -> 6.0, 6.5, 6.7, 7.0; VDDK 6.5.x -> 5.5, 6.0, 6.5, 6.7.  Only vSphere
  6.5 and later exist in the simulator, so the 5.5 and 6.0 ends are stated, never exercised.  Every update level of a
  release (6.7 U1 .. U3) counts as that release.
* VMC: only the milestone table of the release notes decides (N-2 .. N+1 is not applied to milestones).
* New features are excepted on older servers: a feature introduced in a VDDK build of family X.Y is only promised
  on vSphere X.Y and later unless the catalog says otherwise (``feature_available``).

vSphere versions are knowledge of their own (``conformance/data/vsphere_versions.toml``, read here as
``VsphereRelease``): names and spellings, GA builds, API versions and what each release changed. The simulator plays
them (``conformance.sim.profiles`` builds on this module, never the reverse). A version's release level (family and
update) is read from its API version, so a VMC milestone compares like the on-prem release it tracks (M16 -> 7.0 U3).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Protocol

from conformance.input_errors import InputError

__all__ = [
    "KNOWN_BUILDS",
    "SERVER_RELEASES",
    "VMC_COMPATIBILITY",
    "FeatureLike",
    "Support",
    "VddkBuild",
    "VersionError",
    "VsphereRelease",
    "VsphereVersion",
    "all_builds",
    "all_vsphere",
    "feature_available",
    "match_builds",
    "match_vsphere",
    "normalize_vsphere",
    "supported_pairs",
    "vddk_supports",
    "vsphere_release",
    "vsphere_releases",
]

#: Every VDDK build the harness models, oldest first.
KNOWN_BUILDS: tuple[str, ...] = (
    "6.5.0", "6.5.2", "6.5.2 EP1", "6.5.3", "6.5.4",
    "6.7.0", "6.7.1", "6.7.2", "6.7.3",
    "7.0.0", "7.0.1", "7.0.2", "7.0.3",
)  # fmt: skip

#: vSphere major releases in order; the N-2 .. N+1 window is counted over this sequence.
SERVER_RELEASES: tuple[str, ...] = ("5.5", "6.0", "6.5", "6.7", "7.0", "8.0")

#: VMC milestone -> compatible VDDK builds (selectors as in ``match_builds``), from the release notes' table.
VMC_COMPATIBILITY: dict[str, tuple[str, ...]] = {
    "M8": ("6.5.2", "6.5.2 EP1", "6.5.3", "6.5.4", "6.7.x", "7.0.x"),
    "M9": ("6.5.2", "6.5.2 EP1", "6.5.3", "6.5.4", "6.7.x", "7.0.x"),
    **{f"M{n}": ("6.7.x", "7.0.x") for n in range(10, 17)},
}

_BUILD_RE = re.compile(r"(?:vddk)?\s*(\d+)\.(\d+)\.(\d+)\s*(?:[-_ ]?\s*ep\s*(\d+))?", re.IGNORECASE)


class VersionError(InputError):
    """An unknown VDDK build, vSphere version or selector; the one-line message lists what is known."""


@dataclass(frozen=True, order=True)
class VddkBuild:
    """One VDDK release; ordered by (major, minor, patch, express patch) so 6.5.2 < 6.5.2 EP1 < 6.5.3."""

    major: int
    minor: int
    patch: int
    ep: int = 0

    @classmethod
    def parse(cls, text: str | VddkBuild) -> VddkBuild:
        """Accept '7.0.3', 'VDDK 7.0.3', '6.5.2EP1', '6.5.2 EP1', '6.5.2-ep1'; anything not modelled is an error."""
        if isinstance(text, VddkBuild):
            return text
        match = _BUILD_RE.fullmatch(str(text).strip())
        if match:
            major, minor, patch, ep = match.groups()
            build = cls(int(major), int(minor), int(patch), int(ep or 0))
            if build.name in KNOWN_BUILDS:
                return build
        raise VersionError(f"unknown VDDK build {text!r}: use one of {', '.join(KNOWN_BUILDS)}")

    @property
    def name(self) -> str:
        """The release-notes spelling, e.g. '6.5.2 EP1'."""
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base} EP{self.ep}" if self.ep else base

    @property
    def family(self) -> str:
        """The vSphere release this VDDK belongs to ('6.5', '6.7', '7.0'): N in the N-2 .. N+1 policy."""
        return f"{self.major}.{self.minor}"

    @property
    def library_major(self) -> int:
        """N in lib64/libvixDiskLib.so.N (6 for 6.x, 7 for 7.x, 8 for 8.x)."""
        return self.major

    @property
    def library_file(self) -> str:
        """The Linux shared library a loader opens for this build."""
        return f"libvixDiskLib.so.{self.library_major}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class VsphereRelease:
    """What is known of one vSphere release (or VMC milestone), from conformance/data/vsphere_versions.toml."""

    name: str
    full_name: str
    version: str
    build: str
    api_version: str
    major: str
    http_double_decode: bool  # K6: the HTTP file service decodes names twice (6.7 GA and U1)
    default_profile_preserves_cbt: bool  # R6: the VM default profile keeps each disk's CBT state (7.0 U3+)
    vmc: bool = False
    #: K3: a Windows Server 2019 HotAdd proxy that opens the disk adapter flags the target VM for reboot
    windows_adapter_reboot_flag: bool = False
    #: K5: the server decides phone home by CEIP and ignores a client's EnablePhoneHome (vSphere 7.0.x)
    phone_home_by_ceip: bool = False


def normalize_vsphere(name: str) -> str:
    """'7.0 U3', '7.0u3', '7.0.3' and 'vSphere 7.0U3' all name '7.0U3'; 'm16' names 'M16'."""
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
def vsphere_releases() -> dict[str, VsphereRelease]:
    """Every known vSphere version by name, in the data file's order (on-prem releases, then VMC milestones)."""
    raw = tomllib.loads(resources.files("conformance.data").joinpath("vsphere_versions.toml").read_text())
    return {name: VsphereRelease(name=name, **values) for name, values in raw["versions"].items()}


def vsphere_release(name: str) -> VsphereRelease:
    """The release a spelling names; VersionError (one line, listing the known names) otherwise."""
    releases = vsphere_releases()
    key = normalize_vsphere(name)
    if key not in releases:
        raise VersionError(f"unknown vSphere version {name!r}: use one of {', '.join(releases)}")
    return releases[key]


@dataclass(frozen=True, order=True)
class VsphereVersion:
    """A known vSphere release seen as a version: ordered by the release it tracks, then on-prem before VMC."""

    sort_key: tuple[int, int, int, int, int] = field(repr=False)
    name: str = field(compare=False)
    family: str = field(compare=False)
    update: int = field(compare=False)
    is_vmc: bool = field(compare=False)
    milestone: int | None = field(compare=False)

    @classmethod
    def parse(cls, text: str | VsphereVersion) -> VsphereVersion:
        """Accept every spelling ``normalize_vsphere`` knows ('7.0 U3', 'vSphere 7.0u3', 'm16')."""
        if isinstance(text, VsphereVersion):
            return text
        return _from_release(vsphere_release(str(text)))

    @property
    def release(self) -> tuple[int, int, int]:
        """(major, minor, update) of the vSphere release; a VMC milestone gives the release it tracks."""
        return self.sort_key[0], self.sort_key[1], self.sort_key[2]

    @property
    def release_name(self) -> str:
        """The on-prem name of ``release`` ('7.0U3' for M16)."""
        return f"{self.family}U{self.update}" if self.update else self.family

    @property
    def label(self) -> str:
        """How reports name the server: 'vSphere 7.0U3' or 'VMC M16'."""
        return f"VMC {self.name}" if self.is_vmc else f"vSphere {self.name}"

    @property
    def facts(self) -> VsphereRelease:
        """What is known of this release (build, API version, what it changed)."""
        return vsphere_releases()[self.name]

    def at_least(self, other: str | VsphereVersion) -> bool:
        """True when this server's release is ``other``'s or newer (VMC compared by the release it tracks)."""
        return self.release >= VsphereVersion.parse(other).release

    def __str__(self) -> str:
        return self.name


def _from_release(release: VsphereRelease) -> VsphereVersion:
    """Family and update come from the API version: 6.7U1 speaks 6.7.1, M16 speaks 7.0.3.0."""
    parts = [int(p) for p in re.findall(r"\d+", release.api_version)] + [0, 0, 0]
    major, minor, update = parts[0], parts[1], parts[2]
    milestone = int(release.name[1:]) if release.vmc and re.fullmatch(r"M\d+", release.name) else None
    key = (major, minor, update, int(release.vmc), milestone or 0)
    return VsphereVersion(key, release.name, f"{major}.{minor}", update, release.vmc, milestone)


@dataclass(frozen=True)
class Support:
    """A yes/no answer with the sentence a report or preflight prints; truthy when supported."""

    supported: bool
    reason: str

    def __bool__(self) -> bool:
        return self.supported


class FeatureLike(Protocol):
    """What ``feature_available`` needs of a catalog item (``conformance.knowledge.catalog.ReleaseNoteItem`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def introduced_in(self) -> VddkBuild | None: ...

    @property
    def min_vsphere(self) -> VsphereVersion | None: ...


@cache
def all_builds() -> tuple[VddkBuild, ...]:
    """Every modelled VDDK build, oldest first."""
    return tuple(sorted(VddkBuild.parse(name) for name in KNOWN_BUILDS))


@cache
def all_vsphere() -> tuple[VsphereVersion, ...]:
    """Every known vSphere version, in the data file's order (on-prem releases, then VMC milestones)."""
    return tuple(_from_release(release) for release in vsphere_releases().values())


def match_builds(selector: str) -> tuple[VddkBuild, ...]:
    """Builds named by a selector: 'all', a family '6.7.x', or one build ('6.5.2 EP1')."""
    text = selector.strip()
    if text.lower() == "all":
        return all_builds()
    family = re.fullmatch(r"(\d+\.\d+)\.x", text, re.IGNORECASE)
    if family:
        found = tuple(b for b in all_builds() if b.family == family.group(1))
        if found:
            return found
        raise VersionError(f"no VDDK build in family {text!r}: families are 6.5.x, 6.7.x, 7.0.x")
    return (VddkBuild.parse(text),)


def match_vsphere(selector: str) -> tuple[VsphereVersion, ...]:
    """Versions named by a selector: 'all', 'on-prem', 'vmc', a major '6.x', a family '7.0.x' (VMC milestones
    included, by the release they track), or one version name ('6.7U1', 'M16')."""
    text = selector.strip().lower()
    every = all_vsphere()
    groups = {"all": every, "on-prem": tuple(v for v in every if not v.is_vmc)}
    groups["vmc"] = tuple(v for v in every if v.is_vmc)
    if text in groups:
        return groups[text]
    wildcard = re.fullmatch(r"(\d+)(?:\.(\d+))?\.x", text)
    if wildcard:
        major, minor = int(wildcard.group(1)), wildcard.group(2)
        found = tuple(v for v in every if v.release[0] == major and (minor is None or v.release[1] == int(minor)))
        if found:
            return found
        raise VersionError(f"no vSphere version matches {selector!r}: use e.g. 6.x, 7.0.x, on-prem, vmc or a name")
    return (VsphereVersion.parse(selector),)


def vddk_supports(build: str | VddkBuild, vsphere: str | VsphereVersion) -> Support:
    """VMware's compatibility policy for one pair: the VMC table for milestones, N-2 .. N+1 on-prem."""
    b, v = VddkBuild.parse(build), VsphereVersion.parse(vsphere)
    if v.is_vmc:
        selectors = VMC_COMPATIBILITY.get(v.name)
        if selectors is None:
            return Support(False, f"VMC {v.name} is not in the release notes' milestone table; no VDDK is listed")
        listed = ", ".join(selectors)
        if any(b in match_builds(s) for s in selectors):
            return Support(True, f"VMC {v.name} lists VDDK {listed}; {b} is among them")
        return Support(False, f"VMC {v.name} lists VDDK {listed} only; {b} is not among them")
    n = SERVER_RELEASES.index(b.family)
    window = SERVER_RELEASES[max(n - 2, 0) : n + 2]
    span = f"VDDK {b} supports vSphere {window[0]} to {window[-1]} (N-2 to N+1 of {b.family})"
    if v.family in window:
        offset = SERVER_RELEASES.index(v.family) - n
        relation = "N" if offset == 0 else f"N{offset:+d}"
        return Support(True, f"{span}; vSphere {v.name} is {relation}")
    return Support(False, f"{span}; vSphere {v.name} is outside that range")


def supported_pairs() -> tuple[tuple[VddkBuild, VsphereVersion], ...]:
    """Every (build, vSphere) pair the policy supports: the pairs a full conformance run covers."""
    return tuple((b, v) for b in all_builds() for v in all_vsphere() if vddk_supports(b, v))


def feature_available(item: FeatureLike, build: str | VddkBuild, vsphere: str | VsphereVersion) -> Support:
    """Whether a new feature is promised for this pair: the build has it, and the server is not older than the
    item's ``min_vsphere`` (default: the release of the VDDK family that introduced it — new features are excepted
    on older servers)."""
    b, v = VddkBuild.parse(build), VsphereVersion.parse(vsphere)
    if item.introduced_in is None:
        return Support(True, f"{item.id} is not a versioned feature")
    if b < item.introduced_in:
        return Support(False, f"{item.id} was introduced in VDDK {item.introduced_in}; {b} predates it")
    minimum = item.min_vsphere or VsphereVersion.parse(item.introduced_in.family)
    if not v.at_least(minimum):
        return Support(
            False,
            f"{item.id} is a VDDK {item.introduced_in} feature, promised on vSphere {minimum.release_name} and later; "
            f"{v.label} is an older server (new features are excepted there)",
        )
    return Support(True, f"{item.id} is available in VDDK {b} with {v.label}")
