"""The version model: build parsing and order, vSphere versions over the simulator profiles, and the support policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from conformance.knowledge.versions import (
    KNOWN_BUILDS,
    VMC_COMPATIBILITY,
    VddkBuild,
    VersionError,
    VsphereVersion,
    all_builds,
    all_vsphere,
    feature_available,
    match_builds,
    match_vsphere,
    supported_pairs,
    vddk_supports,
    vsphere_release,
    vsphere_releases,
)
from conformance.sim.profiles import all_profiles

BUILDS = [b.name for b in all_builds()]
VSPHERE = [v.name for v in all_vsphere()]
MILESTONES = ["M8", "M9", "M10", "M11", "M12", "M13", "M14", "M15", "M16"]

# ------------------------------------------------------------------ VDDK builds


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("7.0.3", "7.0.3"),
        (" 7.0.3 ", "7.0.3"),
        ("VDDK 7.0.3", "7.0.3"),
        ("6.5.2EP1", "6.5.2 EP1"),
        ("6.5.2 EP1", "6.5.2 EP1"),
        ("6.5.2-ep1", "6.5.2 EP1"),
        ("6.5.2_ep1", "6.5.2 EP1"),
        ("6.5.2 ep1", "6.5.2 EP1"),
        ("6.5.0", "6.5.0"),
    ],
)
def test_build_parse_accepts_spellings(text: str, name: str) -> None:
    assert VddkBuild.parse(text).name == name


@pytest.mark.parametrize("text", ["7.0.4", "6.5.1", "6.7", "8.0.0", "6.5.2 EP2", "seven", ""])
def test_build_parse_rejects_unknown_in_one_line_listing_known(text: str) -> None:
    with pytest.raises(VersionError) as caught:
        VddkBuild.parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(text) in message
    assert all(name in message for name in KNOWN_BUILDS)


def test_known_builds_sort_in_release_order() -> None:
    assert [b.name for b in sorted(VddkBuild.parse(n) for n in reversed(KNOWN_BUILDS))] == list(KNOWN_BUILDS)


@pytest.mark.parametrize(
    ("older", "newer"),
    [("6.5.2", "6.5.2 EP1"), ("6.5.2 EP1", "6.5.3"), ("6.5.4", "6.7.0"), ("6.7.3", "7.0.0"), ("7.0.2", "7.0.3")],
)
def test_build_order(older: str, newer: str) -> None:
    assert VddkBuild.parse(older) < VddkBuild.parse(newer)


@pytest.mark.parametrize(
    ("name", "family", "library_major"),
    [("6.5.0", "6.5", 6), ("6.5.2 EP1", "6.5", 6), ("6.7.3", "6.7", 6), ("7.0.0", "7.0", 7), ("7.0.3", "7.0", 7)],
)
def test_build_family_and_library(name: str, family: str, library_major: int) -> None:
    build = VddkBuild.parse(name)
    assert (build.family, build.library_major) == (family, library_major)
    assert build.library_file == f"libvixDiskLib.so.{library_major}"


@pytest.mark.parametrize("name", KNOWN_BUILDS)
def test_build_name_round_trips(name: str) -> None:
    build = VddkBuild.parse(name)
    assert str(build) == name and VddkBuild.parse(str(build)) == build and VddkBuild.parse(build) is build


# ------------------------------------------------------------------ vSphere versions


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("7.0 U3", "7.0U3"),
        ("vSphere 7.0u3", "7.0U3"),
        ("7.0.3", "7.0U3"),
        ("6.7", "6.7"),
        ("m16", "M16"),
        ("8.0", "8.0"),
    ],
)
def test_vsphere_parse_reuses_profile_spellings(text: str, name: str) -> None:
    assert VsphereVersion.parse(text).name == name


@pytest.mark.parametrize("text", ["9.0", "7.0U4", "M5", "M17", "six"])
def test_vsphere_parse_rejects_unknown_in_one_line(text: str) -> None:
    with pytest.raises(VersionError) as caught:
        VsphereVersion.parse(text)
    assert "\n" not in str(caught.value) and "7.0U3" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "family", "update", "is_vmc", "milestone", "release_name"),
    [
        ("6.5", "6.5", 0, False, None, "6.5"),
        ("6.7U1", "6.7", 1, False, None, "6.7U1"),
        ("7.0", "7.0", 0, False, None, "7.0"),
        ("7.0U3", "7.0", 3, False, None, "7.0U3"),
        ("8.0", "8.0", 0, False, None, "8.0"),
        ("M8", "6.7", 1, True, 8, "6.7U1"),
        ("M10", "6.7", 2, True, 10, "6.7U2"),
        ("M12", "7.0", 0, True, 12, "7.0"),
        ("M15", "7.0", 2, True, 15, "7.0U2"),
        ("M16", "7.0", 3, True, 16, "7.0U3"),
    ],
)
def test_vsphere_fields(
    name: str, family: str, update: int, is_vmc: bool, milestone: int | None, release_name: str
) -> None:
    version = VsphereVersion.parse(name)
    assert (version.family, version.update, version.is_vmc, version.milestone) == (family, update, is_vmc, milestone)
    assert version.release_name == release_name


@pytest.mark.parametrize(
    ("spelling", "name"), [("vSphere 7.0 Update 3", "7.0U3"), ("6.7.0", "6.7"), ("6.7.2", "6.7U2"), ("m16", "M16")]
)
def test_the_knowledge_layer_reads_every_spelling_of_a_vsphere_version(spelling: str, name: str) -> None:
    assert vsphere_release(spelling).name == name


def test_an_unknown_vsphere_version_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(VersionError, match=r"^unknown vSphere version '9\.9': use one of 6\.5, 6\.7, .*M16$"):
        vsphere_release("9.9")


def test_the_simulator_plays_every_known_vsphere_version() -> None:
    assert [v.name for v in all_vsphere()] == list(vsphere_releases()) == list(all_profiles()) == VSPHERE


@pytest.mark.parametrize(
    ("older", "newer"), [("6.5", "6.7"), ("6.7U1", "6.7U2"), ("6.7U3", "7.0"), ("7.0U3", "8.0"), ("M8", "M9")]
)
def test_vsphere_order(older: str, newer: str) -> None:
    assert VsphereVersion.parse(older) < VsphereVersion.parse(newer)


@pytest.mark.parametrize(
    ("server", "minimum", "expected"),
    [("7.0U3", "7.0U3", True), ("8.0", "7.0U3", True), ("7.0U2", "7.0U3", False), ("M16", "7.0U3", True),
     ("M15", "7.0U3", False), ("M11", "7.0", False), ("M12", "7.0", True)],
)  # fmt: skip
def test_vsphere_at_least_compares_the_tracked_release(server: str, minimum: str, expected: bool) -> None:
    assert VsphereVersion.parse(server).at_least(minimum) is expected


# ------------------------------------------------------------------ selectors


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("6.5.x", ["6.5.0", "6.5.2", "6.5.2 EP1", "6.5.3", "6.5.4"]),
        ("6.7.x", ["6.7.0", "6.7.1", "6.7.2", "6.7.3"]),
        ("7.0.x", ["7.0.0", "7.0.1", "7.0.2", "7.0.3"]),
        ("6.5.2-ep1", ["6.5.2 EP1"]),
        ("all", list(KNOWN_BUILDS)),
    ],
)
def test_match_builds(selector: str, names: list[str]) -> None:
    assert [b.name for b in match_builds(selector)] == names


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("6.x", ["6.5", "6.7", "6.7U1", "6.7U2", "6.7U3", "M8", "M9", "M10", "M11"]),
        ("7.0.x", ["7.0", "7.0U1", "7.0U2", "7.0U3", "M12", "M13", "M14", "M15", "M16"]),
        ("vmc", MILESTONES),
        ("on-prem", ["6.5", "6.7", "6.7U1", "6.7U2", "6.7U3", "7.0", "7.0U1", "7.0U2", "7.0U3", "8.0"]),
        ("7.0 U1", ["7.0U1"]),
    ],
)
def test_match_vsphere(selector: str, names: list[str]) -> None:
    assert [v.name for v in match_vsphere(selector)] == names


@pytest.mark.parametrize(("match", "selector"), [(match_builds, "8.0.x"), (match_builds, "7.0.9"),
                                                 (match_vsphere, "9.x"), (match_vsphere, "M4")])  # fmt: skip
def test_unknown_selectors_fail(match: Callable[[str], tuple[object, ...]], selector: str) -> None:
    with pytest.raises(VersionError):
        match(selector)


# ------------------------------------------------------------------ compatibility policy

# The release notes' VMC table, written out by hand (not read from VMC_COMPATIBILITY).
_M10_UP = {"6.7.0", "6.7.1", "6.7.2", "6.7.3", "7.0.0", "7.0.1", "7.0.2", "7.0.3"}
_M8_M9 = {"6.5.2", "6.5.2 EP1", "6.5.3", "6.5.4"} | _M10_UP
VMC_TABLE = {m: (_M8_M9 if m in ("M8", "M9") else _M10_UP) for m in MILESTONES}


@pytest.mark.parametrize("milestone", MILESTONES)
@pytest.mark.parametrize("build", BUILDS)
def test_vmc_truth_table(build: str, milestone: str) -> None:
    support = vddk_supports(build, milestone)
    assert support.supported is (build in VMC_TABLE[milestone]), support.reason


def test_vmc_table_covers_every_modelled_milestone() -> None:
    assert sorted(VMC_COMPATIBILITY, key=lambda m: int(m[1:])) == MILESTONES


@pytest.mark.parametrize(
    ("build", "server", "expected"),
    [
        ("7.0.3", "6.5", True),  # N-2
        ("7.0.3", "6.7U3", True),  # N-1
        ("7.0.0", "7.0U3", True),  # N
        ("7.0.3", "8.0", True),  # N+1, the next major
        ("6.7.3", "6.5", True),  # N-1
        ("6.7.0", "7.0U3", True),  # N+1
        ("6.7.3", "8.0", False),  # N+2
        ("6.5.4", "6.5", True),  # N
        ("6.5.0", "6.7U3", True),  # N+1
        ("6.5.4", "7.0", False),  # N+2
        ("6.5.2 EP1", "8.0", False),  # N+3
    ],
)
def test_on_prem_n_minus_2_to_n_plus_1(build: str, server: str, expected: bool) -> None:
    support = vddk_supports(build, server)
    assert bool(support) is expected and support.supported is expected, support.reason


@pytest.mark.parametrize("server", VSPHERE)
@pytest.mark.parametrize("build", BUILDS)
def test_every_pair_has_a_definite_answer(build: str, server: str) -> None:
    support = vddk_supports(build, server)
    assert isinstance(support.supported, bool)
    assert support.reason and "\n" not in support.reason and build in support.reason


def test_supported_pairs_match_the_policy() -> None:
    pairs = {(b.name, v.name) for b, v in supported_pairs()}
    assert pairs == {(b, v) for b in BUILDS for v in VSPHERE if vddk_supports(b, v)}
    assert ("7.0.3", "M16") in pairs and ("6.5.0", "M8") not in pairs and ("6.5.4", "M10") not in pairs


@dataclass(frozen=True)
class _Feature:
    id: str
    introduced_in: VddkBuild | None
    min_vsphere: VsphereVersion | None = None


@pytest.mark.parametrize(
    ("build", "server", "minimum", "expected"),
    [
        ("7.0.3", "7.0U3", None, True),
        ("7.0.2", "7.0U3", None, False),  # the build predates the feature
        ("7.0.3", "6.7U3", None, False),  # default minimum: the feature's own family (new features excepted)
        ("7.0.3", "8.0", None, True),
        ("7.0.3", "M12", None, True),
        ("7.0.3", "M11", None, False),
        ("7.0.3", "7.0U2", "7.0U3", False),  # an explicit minimum wins
        ("7.0.3", "6.5", "6.5", True),
    ],
)
def test_feature_available(build: str, server: str, minimum: str | None, expected: bool) -> None:
    item = _Feature("X1", VddkBuild.parse("7.0.3"), VsphereVersion.parse(minimum) if minimum else None)
    result = feature_available(item, build, server)
    assert result.supported is expected and result.reason.startswith("X1 ")
