"""Certification profiles: the published one is consistent with the suites and the catalog; broken files are one
line naming the key."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest

from conformance.certify import CertifyError
from conformance.certify.profile import available_profiles, load_profile, parse_profile
from conformance.knowledge.catalog import load_catalog
from conformance.knowledge.versions import VsphereVersion
from conformance.plugin.expectations import verdict_kind
from conformance.sim.profiles import get_profile
from tests.certify.conftest import SMALL_PROFILE

SUITES = Path(__file__).resolve().parents[2] / "suites"


class _MarkerCollector:
    """Collects, for every suite test, its test id and release-note marker as pytest resolves them (parameter
    marks included), without running anything."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any]] = {}
        self.kinds: dict[str, set[str]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            test_id = item.get_closest_marker("test_id")
            if test_id is None or not test_id.args:
                continue
            note = item.get_closest_marker("release_note")
            mark = {"item": note.args[0], **note.kwargs} if note is not None and note.args else {}
            self.found.setdefault(str(test_id.args[0]), mark)
            self.kinds.setdefault(str(test_id.args[0]), set()).add(verdict_kind(item))


@functools.cache
def _collected() -> _MarkerCollector:
    collector = _MarkerCollector()
    options = ["--collect-only", "-q", "-p", "conformance.plugin", "-p", "no:cacheprovider", "-p", "no:xdist"]
    options += ["-p", "no:benchmark"]
    code = pytest.main([str(SUITES), *options], plugins=[collector])
    assert code == 0, f"collecting the suites failed ({code})"
    return collector


def _suite_markers() -> dict[str, dict[str, Any]]:
    return _collected().found


def suite_test_ids() -> set[str]:
    return set(_suite_markers())


def suite_kinds() -> dict[str, set[str]]:
    """test id -> {"product"} or {"platform"} (how conformance.plugin.expectations derives it, per case)."""
    return _collected().kinds


def current_profiles() -> list[str]:
    """The packaged profiles not superseded (a superseded one may name test ids since retired from the suites)."""
    return [k for k in available_profiles() if load_profile(k).status != "superseded"]


def suite_release_notes() -> dict[str, dict[str, Any]]:
    """test id -> its release_note marker ({"item": ..., "workaround": ...}), or {} without one."""
    return {k: v for k, v in _suite_markers().items() if v}


def test_the_published_profile_loads_under_its_file_name() -> None:
    assert {"vddk-7.0.3-v1", "vddk-7.0.3-v2"} <= set(available_profiles())
    profile = load_profile("vddk-7.0.3-v2")
    assert profile.key == "vddk-7.0.3-v2" and profile.status == "approved" and profile.vddk_build == "7.0.3"
    assert sum(t.required for t in profile.tests) >= 15
    assert load_profile(None).key == "vddk-7.0.3-v2"  # the newest approved one is the default


def test_v2_supersedes_v1_without_changing_its_published_text() -> None:
    old = load_profile("vddk-7.0.3-v1")
    assert old.status == "superseded"
    assert 'status = "approved"' in old.text  # the text its bundles carry is the file as published


@pytest.mark.parametrize("key", current_profiles())
def test_required_and_advisory_tests_are_product_tests_and_platform_tests_are_not(key: str) -> None:
    kinds = suite_kinds()
    for test in load_profile(key).tests:
        wanted = {"platform"} if test.platform else {"product"}
        assert kinds.get(test.id) == wanted, f"{key}: {test.id} is {test.status} but its cases are {kinds.get(test.id)}"


def test_supersedes_names_profile_keys() -> None:
    head = 'vsphere_max = "8.0"\n'
    text = SMALL_PROFILE.replace(head, head + 'supersedes = "test-small-v0"\n', 1)
    assert parse_profile(text, "test-small-v1.toml").supersedes == ("test-small-v0",)
    with pytest.raises(CertifyError, match="'supersedes' must be a profile key"):
        parse_profile(SMALL_PROFILE.replace(head, head + "supersedes = 1\n", 1), "test-small-v1.toml")


@pytest.mark.parametrize("key", current_profiles())
def test_every_profile_test_id_exists_in_the_suites(key: str) -> None:
    missing = sorted(set(load_profile(key).test_ids()) - suite_test_ids())
    assert not missing, f"{key} names test ids no suite carries: {missing}"


@pytest.mark.parametrize("key", available_profiles())
def test_known_issues_are_allowed_exactly_where_the_catalog_can_expect_one(key: str) -> None:
    """An allowed known issue must be possible for the build on some server in range, and the converse."""
    profile = load_profile(key)
    catalog = load_catalog()
    low, high = VsphereVersion.parse(profile.vsphere_min).release, VsphereVersion.parse(profile.vsphere_max).release
    servers = [
        v
        for v in ("6.5", "6.7", "6.7U3", "7.0", "7.0U1", "7.0U2", "7.0U3", "8.0")
        if low <= VsphereVersion.parse(get_profile(v).name).release <= high
    ]
    marks = suite_release_notes()
    for test in profile.tests:
        mark = marks.get(test.id)
        if mark is None:
            assert not test.known_issue_allowed, f"{test.id}: no release-note marker, so no known issue to allow"
            continue
        possible = any(
            catalog.expectation(
                mark["item"],
                profile.vddk_build,
                v,
                workaround=mark.get("workaround"),
                platform=mark.get("platform", "linux"),
                control=mark.get("control"),
            ).outcome
            == "known_issue"
            for v in servers
        )
        assert test.known_issue_allowed == possible, f"{test.id}: known_issue allowed={test.known_issue_allowed}"


def test_a_profile_file_is_loaded_by_path(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_PROFILE)
    profile = load_profile(str(path))
    assert profile.key == "test-small-v1" and profile.test_ids() == ("RT-001", "K2-001", "K4-001", "R5-001", "C3-001")
    assert profile.covers_vsphere("7.0U3") and profile.covers_vsphere("M16") and not profile.covers_vsphere("6.7")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("version = 1", 'version = "1"', "[profile]: 'version' must be a whole number"),
        ('status = "approved"', 'status = "final"', "'status' 'final' must be one of draft, approved"),
        ('vsphere_min = "7.0"', 'vsphere_min = "9.9"', "[profile]:"),
        ('vsphere_max = "8.0"', 'vsphere_max = "6.7"', "vsphere_min 7.0 is newer than vsphere_max 6.7"),
        ('id = "K4-001"', 'id = "RT-001"', "test RT-001: listed twice"),
        ('id = "K4-001"', 'id = "k4_1"', "test k4_1: 'id' is not a test id"),
        ('known_issue = "allowed"', 'known_issue = "yes"', "test K2-001: 'known_issue' 'yes' must be one of"),
        ('status = "advisory"', 'statuss = "advisory"', "unknown key 'statuss'"),
        ('title = "small test profile"\n', "", "[profile]: missing 'title'"),
    ],
)
def test_broken_profiles_are_one_line_naming_the_key(old: str, new: str, message: str) -> None:
    assert old in SMALL_PROFILE
    with pytest.raises(CertifyError) as caught:
        parse_profile(SMALL_PROFILE.replace(old, new, 1), "small.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("small.toml:")


def test_an_unknown_profile_lists_the_published_ones() -> None:
    with pytest.raises(
        CertifyError, match=re.escape("unknown certification profile 'vddk-9-v1': use one of vddk-7.0.3-v1")
    ):
        load_profile("vddk-9-v1")
