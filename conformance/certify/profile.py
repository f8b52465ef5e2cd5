"""Certification profiles: versioned lists of required tests, as data in ``conformance/data/certification/``.

Why data: like the Kubernetes conformance list or an OpenStack interop guideline, a profile is reviewed and
published, and a bundle names the profile (id and version) it was made against; verify-bundle judges a bundle by
the published profile, never by what the bundle claims. Every problem in a profile file is one line naming the
file, the test and the key.

Test statuses: "required" tests decide the verdict, "advisory" ones are run and shown; both must be product tests
(they use the ``backup_app`` fixture). "platform" tests check only VDDK or the server: run and reported in their own
section, never deciding the product's certification (conformance.certify.selection refuses a profile that mixes
them up). A published file never changes, so a newer profile retires an older one with ``supersedes``: the older
one then loads with status "superseded", its text (what its bundles carry) untouched.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.certify import CertifyError
from conformance.knowledge.versions import VddkBuild, VersionError, VsphereVersion

__all__ = ["Profile", "RequiredTest", "available_profiles", "load_profile", "parse_profile"]

TEST_ID = re.compile(r"^[A-Z]{1,3}\d?-\d{3}$")
STATUSES = ("required", "advisory", "platform")
KNOWN_ISSUE = ("allowed", "not_allowed")
PROFILE_STATUSES = ("draft", "approved", "superseded")
_PROFILE_KEYS = {"id", "version", "status", "published", "title", "vddk_build", "vsphere_min", "vsphere_max",
                 "description", "supersedes"}  # fmt: skip
_PROFILE_REQUIRED = ("id", "version", "status", "title", "vddk_build", "vsphere_min", "vsphere_max")
_TEST_KEYS = {"id", "status", "known_issue", "note"}


@dataclass(frozen=True)
class RequiredTest:
    """One test of a profile, by its permanent test id."""

    id: str
    status: str = "required"
    known_issue: str = "not_allowed"
    note: str = ""

    @property
    def required(self) -> bool:
        return self.status == "required"

    @property
    def platform(self) -> bool:
        """A check of VDDK or the server only: reported apart, never part of the product's verdict."""
        return self.status == "platform"

    @property
    def known_issue_allowed(self) -> bool:
        return self.known_issue == "allowed"


@dataclass(frozen=True)
class Profile:
    """A validated certification profile; ``key`` ("vddk-7.0.3-v1") is how commands and bundles name it."""

    id: str
    version: int
    status: str
    title: str
    vddk_build: str
    vsphere_min: str
    vsphere_max: str
    tests: tuple[RequiredTest, ...]
    published: str = ""
    description: str = ""
    supersedes: tuple[str, ...] = ()  # keys of the profiles this one retires
    text: str = ""  # the file as published, packed into bundles

    @property
    def key(self) -> str:
        return f"{self.id}-v{self.version}"

    def test(self, test_id: str) -> RequiredTest | None:
        return next((t for t in self.tests if t.id == test_id), None)

    def test_ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tests)

    def covers_vsphere(self, vsphere: str) -> bool:
        """True when the server's release lies in [vsphere_min, vsphere_max]."""
        version = VsphereVersion.parse(vsphere)
        return (
            VsphereVersion.parse(self.vsphere_min).release
            <= version.release
            <= (VsphereVersion.parse(self.vsphere_max).release)
        )


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CertifyError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def parse_profile(text: str, origin: str) -> Profile:
    """Validate a profile file's text; ``origin`` (its name) prefixes every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CertifyError(f"{origin}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - {"profile", "test"})
    if extra:
        raise CertifyError(f"{origin}: unknown top-level key {extra[0]!r} (use [profile] and [[test]])")
    head = data.get("profile")
    if not isinstance(head, dict):
        raise CertifyError(f"{origin}: no [profile] table")
    unknown = sorted(set(head) - _PROFILE_KEYS)
    if unknown:
        raise CertifyError(f"{origin}: [profile] has unknown key {unknown[0]!r}")
    where = f"{origin}: [profile]"
    for key in _PROFILE_REQUIRED:
        if key not in head:
            raise CertifyError(f"{where}: missing '{key}'")
    version = head["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CertifyError(f"{where}: 'version' must be a whole number from 1")
    status = _text(head, "status", where)
    if status not in PROFILE_STATUSES:
        raise CertifyError(f"{where}: 'status' {status!r} must be one of {', '.join(PROFILE_STATUSES)}")
    try:
        build = VddkBuild.parse(_text(head, "vddk_build", where)).name
        low = VsphereVersion.parse(_text(head, "vsphere_min", where))
        high = VsphereVersion.parse(_text(head, "vsphere_max", where))
    except VersionError as exc:
        raise CertifyError(f"{where}: {exc}") from None
    if low.release > high.release:
        raise CertifyError(f"{where}: vsphere_min {low} is newer than vsphere_max {high}")
    supersedes = head.get("supersedes", [])
    if isinstance(supersedes, str):
        supersedes = [supersedes]
    if not isinstance(supersedes, list) or not all(isinstance(k, str) and k for k in supersedes):
        raise CertifyError(f"{where}: 'supersedes' must be a profile key or a list of them")
    raw_tests = data.get("test")
    if not isinstance(raw_tests, list) or not raw_tests:
        raise CertifyError(f"{origin}: no [[test]] tables (list the required tests)")
    tests: list[RequiredTest] = []
    seen: set[str] = set()
    for position, raw in enumerate(raw_tests, start=1):
        where = f"{origin}: test #{position}"
        if not isinstance(raw, dict):
            raise CertifyError(f"{where}: must be a table")
        unknown = sorted(set(raw) - _TEST_KEYS)
        if unknown:
            raise CertifyError(f"{where}: unknown key {unknown[0]!r} (use {', '.join(sorted(_TEST_KEYS))})")
        test_id = _text(raw, "id", where)
        where = f"{origin}: test {test_id}"
        if not TEST_ID.match(test_id):
            raise CertifyError(f"{where}: 'id' is not a test id like 'RT-001'")
        if test_id in seen:
            raise CertifyError(f"{where}: listed twice")
        seen.add(test_id)
        test_status = raw.get("status", "required")
        if test_status not in STATUSES:
            raise CertifyError(f"{where}: 'status' {test_status!r} must be one of {', '.join(STATUSES)}")
        known = raw.get("known_issue", "not_allowed")
        if known not in KNOWN_ISSUE:
            raise CertifyError(f"{where}: 'known_issue' {known!r} must be one of {', '.join(KNOWN_ISSUE)}")
        note = raw.get("note", "")
        if not isinstance(note, str):
            raise CertifyError(f"{where}: 'note' must be a string")
        tests.append(RequiredTest(test_id, test_status, known, note))
    profile = Profile(
        id=_text(head, "id", f"{origin}: [profile]"),
        version=version,
        status=status,
        title=_text(head, "title", f"{origin}: [profile]"),
        vddk_build=build,
        vsphere_min=low.name,
        vsphere_max=high.name,
        tests=tuple(tests),
        published=str(head.get("published", "")),
        description=str(head.get("description", "")),
        supersedes=tuple(supersedes),
        text=text,
    )
    stem = Path(origin).name.removesuffix(".toml")
    if origin.endswith(".toml") and stem != profile.key and _is_packaged(origin):
        raise CertifyError(f"{origin}: file name must be {profile.key}.toml (id and version of [profile])")
    return profile


def _is_packaged(origin: str) -> bool:
    return "/" not in origin and "\\" not in origin


def _directory() -> Any:
    return resources.files("conformance.data").joinpath("certification")


def available_profiles() -> list[str]:
    """Keys of the packaged profiles, oldest first."""
    return sorted(p.name.removesuffix(".toml") for p in _directory().iterdir() if p.name.endswith(".toml"))


def load_profile(name: str | None = None) -> Profile:
    """A packaged profile by key ("vddk-7.0.3-v1"), a profile file by path, or (None) the newest approved one."""
    if name is None:
        approved = [p for p in map(load_profile, available_profiles()) if p.status == "approved"]
        if not approved:
            raise CertifyError("no approved certification profile is packaged")
        return max(approved, key=lambda p: (p.id, p.version))
    path = Path(name)
    if name.endswith(".toml") and ("/" in name or path.is_file()):
        if not path.is_file():
            raise CertifyError(f"--profile {name}: no such file")
        try:
            return parse_profile(path.read_text(encoding="utf-8"), str(path))
        except UnicodeDecodeError:
            raise CertifyError(f"--profile {name}: not a UTF-8 text file") from None
    if name not in available_profiles():
        known = ", ".join(available_profiles()) or "none"
        raise CertifyError(f"unknown certification profile {name!r}: use one of {known} or a .toml file")
    profile = _packaged(name)
    newer = [_packaged(k) for k in available_profiles() if k != name]
    if profile.status == "approved" and any(p.status == "approved" and name in p.supersedes for p in newer):
        return replace(profile, status="superseded")
    return profile


def _packaged(name: str) -> Profile:
    resource = _directory().joinpath(f"{name}.toml")
    return parse_profile(resource.read_text(encoding="utf-8"), f"{name}.toml")
