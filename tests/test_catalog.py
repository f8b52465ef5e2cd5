"""The release-note catalog: its content, its validation errors, and the expectation decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.knowledge.catalog import KINDS, Catalog, CatalogError, expectation, load_catalog
from conformance.knowledge.versions import VersionError, all_builds, all_vsphere, vddk_supports
from conformance.sim.profiles import get_profile

BUILDS = [b.name for b in all_builds()]
VSPHERE = [v.name for v in all_vsphere()]
CATALOG = load_catalog()

ITEMS = {
    "F1": "feature", "F2": "feature",
    "C1": "compatibility", "C2": "compatibility", "C3": "compatibility", "C4": "compatibility",
    "R1": "resolved", "R2": "resolved", "R3": "resolved", "R4": "resolved", "R5": "resolved", "R6": "resolved",
    "K1": "known", "K2": "known", "K3": "known", "K4": "known", "K5": "known", "K6": "known",
}  # fmt: skip
FIELD = ("D1", "D2", "D3", "D4", "D5")
SECTIONS = {
    "feature": "Changes and New Features",
    "compatibility": "Compatibility Notices",
    "resolved": "Recently Resolved Issues",
    "known": "Known Issues and Workarounds",
}

# ------------------------------------------------------------------ content


def test_catalog_has_exactly_the_18_items_in_order_then_the_field_failures() -> None:
    assert tuple(i.id for i in CATALOG.release_notes()) == tuple(ITEMS) and len(CATALOG.release_notes()) == 18
    assert CATALOG.ids() == (*ITEMS, *FIELD)


@pytest.mark.parametrize("item_id", FIELD)
def test_field_failures_name_their_public_sources_and_hold_on_every_supported_pair(item_id: str) -> None:
    item = CATALOG.get(item_id)
    assert (item.kind, item.section, item.anchor) == ("field", "Field Failures", f"field-failures#{item_id}")
    assert item.references and all(r.strip() for r in item.references)
    for build in BUILDS:
        for server in VSPHERE:
            outcome = CATALOG.expectation(item_id, build, server).outcome
            assert outcome == ("pass" if vddk_supports(build, server) else "not_applicable"), (build, server)


def test_a_field_failure_without_references_is_refused_in_one_line() -> None:
    raw = {"id": "D9", "section": "Field Failures", "title": "t", "kind": "field", "summary": "s",
           "anchor": "field-failures#D9", "references": []}  # fmt: skip
    with pytest.raises(CatalogError, match=r"D9: references: name at least one public source"):
        Catalog.from_dict({"item": [raw]})


@pytest.mark.parametrize(("item_id", "kind"), ITEMS.items())
def test_item_kind_section_and_anchor(item_id: str, kind: str) -> None:
    item = CATALOG.get(item_id)
    assert (item.kind, item.section) == (kind, SECTIONS[kind]) and KINDS[kind] == SECTIONS[kind]
    assert item.anchor == f"vddk-7.0.3-release-notes#{item_id}"
    assert item.title.strip() and item.summary.strip() and item.link_text.startswith(f"{item_id}: ")


@pytest.mark.parametrize(
    ("item_id", "key", "value"),
    [
        ("F1", "introduced_in", "7.0.3"),
        ("F2", "introduced_in", "7.0.3"),
        ("C2", "fixed_in", "6.7.0"),
        ("C3", "fixed_in", "6.7.3"),
        ("R1", "fixed_in", "7.0.3"),
        ("R2", "fixed_in", "7.0.3"),
        ("R3", "fixed_in", "7.0.3"),
        ("R4", "fixed_in", "7.0.3"),
        ("R5", "fixed_in", "7.0.3"),
        ("R6", "fixed_in_vsphere", "7.0U3"),
    ],
)
def test_fix_and_introduction_versions(item_id: str, key: str, value: str) -> None:
    assert str(getattr(CATALOG.get(item_id), key)) == value


@pytest.mark.parametrize(
    ("item_id", "builds"),
    [("K1", ["7.0.3"]), ("K2", BUILDS), ("K3", ["6.7.0", "6.7.1", "6.7.2", "6.7.3"]), ("K4", BUILDS),
     ("K5", ["7.0.0", "7.0.1", "7.0.2", "7.0.3"]), ("K6", ["6.7.0", "6.7.1"])],
)  # fmt: skip
def test_known_issue_affected_builds(item_id: str, builds: list[str]) -> None:
    assert [b.name for b in CATALOG.get(item_id).affected_builds] == builds


@pytest.mark.parametrize(
    ("item_id", "workarounds"),
    [("K1", ["full-clone-source", "non-hotadd-transport"]), ("K2", ["tmpdirectory-set"]), ("K3", ["upgrade-to-7.0"]),
     ("K4", ["proxy-on-vsan"]), ("K5", ["phonehome-vendor-keys"]), ("K6", ["nonfcsession-0", "adaptive-decoding"])],
)  # fmt: skip
def test_known_issue_workarounds(item_id: str, workarounds: list[str]) -> None:
    assert [w.id for w in CATALOG.get(item_id).workarounds] == workarounds


def test_get_is_case_insensitive_and_unknown_ids_list_the_known_ones() -> None:
    assert CATALOG.get("k1") is CATALOG.get("K1") and "r6" in CATALOG and "X9" not in CATALOG
    with pytest.raises(CatalogError, match=r"unknown release-note item 'K7': use one of F1, F2, C1.*K6, D1, .*D5$"):
        CATALOG.get("K7")


# ------------------------------------------------------------------ validation

VALID = """\
source = "test"

[[item]]
id = "F1"
section = "Changes and New Features"
title = "A feature"
kind = "feature"
summary = "Something new."
anchor = "vddk-7.0.3-release-notes#F1"
introduced_in = "7.0.3"

[[item]]
id = "K1"
section = "Known Issues and Workarounds"
title = "An issue"
kind = "known"
summary = "Something broken."
anchor = "vddk-7.0.3-release-notes#K1"
affected_builds = ["7.0.3"]

[[item.workarounds]]
id = "full-clone-source"
title = "Clone from a full clone"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release_notes.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_catalog_loads(tmp_path: Path) -> None:
    catalog = Catalog.load(_write(tmp_path, VALID))
    assert catalog.ids() == ("F1", "K1") and catalog.source == "test"


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ('introduced_in = "7.0.3"', 'introduced = "7.0.3"', ["item F1", "unknown key 'introduced'"]),
        ('introduced_in = "7.0.3"', 'introduced_in = "7.0.3"\nfixed_in = "7.0.3"', ["item F1", "'fixed_in'"]),
        ('summary = "Something new."\n', "", ["item F1", "missing required key 'summary'"]),
        ('affected_builds = ["7.0.3"]\n', "", ["item K1", "missing required key 'affected_builds'"]),
        ('introduced_in = "7.0.3"', 'introduced_in = "7.0.4"', ["item F1", "introduced_in", "'7.0.4'", "6.5.0"]),
        ('affected_builds = ["7.0.3"]', 'affected_builds = ["9.x"]', ["item K1", "affected_builds", "'9.x'"]),
        ('affected_builds = ["7.0.3"]', "affected_builds = []", ["item K1", "affected_builds", "empty"]),
        (
            'affected_builds = ["7.0.3"]',
            'affected_builds = ["7.0.3"]\naffected_vsphere = ["7.0U4"]',
            ["item K1", "affected_vsphere", "'7.0U4'"],
        ),
        ('kind = "feature"', 'kind = "bug"', ["item F1", "kind", "'bug'", "feature, compatibility, resolved, known"]),
        ('kind = "feature"', 'kind = "resolved"', ["item F1", "kind", "'feature'"]),
        ('section = "Changes and New Features"', 'section = "News"', ["item F1", "section", "'News'"]),
        ('anchor = "vddk-7.0.3-release-notes#F1"', 'anchor = "x#F2"', ["item F1", "anchor", "#F1"]),
        ('id = "K1"', 'id = "Q1"', ["item #2", "id", "'Q1'"]),
        (
            'title = "Clone from a full clone"',
            'title = "x"\nhow = "y"',
            ["item K1", "workaround full-clone-source", "unknown key 'how'"],
        ),
        ('title = "Clone from a full clone"', 'title = "x"\nscope = "moon"', ["item K1", "scope", "'moon'"]),
        ('id = "full-clone-source"', 'id = "Full Clone"', ["item K1", "workarounds", "'Full Clone'"]),
        (
            'title = "Clone from a full clone"\n',
            'title = "x"\n[[item.workarounds]]\nid = "full-clone-source"\ntitle = "y"\n',
            ["item K1", "workaround full-clone-source", "duplicate workaround id"],
        ),
        ('introduced_in = "7.0.3"', 'introduced_in = "7.0.3"\nplatforms = ["mac"]', ["item F1", "platforms", "'mac'"]),
        ('introduced_in = "7.0.3"', 'introduced_in = "7.0.3"\nother_platforms = "pass"', ["F1", "other_platforms"]),
        ('source = "test"', 'sauce = "test"', ["unknown top-level key 'sauce'"]),
        ('introduced_in = "7.0.3"', "introduced_in = 7.0", ["item F1", "introduced_in", "non-empty string"]),
        ('title = "A feature"', 'title = "A feature', ["not valid TOML"]),
    ],
)
def test_broken_catalog_gives_one_line_error_naming_id_and_key(
    tmp_path: Path, old: str, new: str, fragments: list[str]
) -> None:
    assert old in VALID
    with pytest.raises(CatalogError) as caught:
        Catalog.load(_write(tmp_path, VALID.replace(old, new, 1)))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("release_notes.toml: ")
    for fragment in fragments:
        assert fragment in message


def test_duplicate_id_is_rejected(tmp_path: Path) -> None:
    first_item = "[[item]]" + VALID.split("[[item]]")[1]
    with pytest.raises(CatalogError, match=r"^release_notes.toml: item F1: duplicate id \(items #1 and #3; fix: "):
        Catalog.load(_write(tmp_path, VALID + "\n" + first_item))


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("documentation_only = true", "documentation_only"),
        ('fixed_in = "7.0.3"\nfixed_in_vsphere = "7.0U3"', "fixed_in_vsphere"),
        ('support_policy = "yes"', "support_policy"),
    ],
)
def test_inconsistent_fix_keys_are_rejected(tmp_path: Path, extra: str, fragment: str) -> None:
    resolved = VALID.split("[[item]]")[1].replace('"F1"', '"R9"').replace("#F1", "#R9")
    resolved = resolved.replace('"feature"', '"resolved"').replace("Changes and New", "Recently Resolved")
    resolved = resolved.replace("Recently Resolved Features", "Recently Resolved Issues")
    text = VALID + "\n[[item]]" + resolved.replace('introduced_in = "7.0.3"', extra)
    with pytest.raises(CatalogError, match=rf"^release_notes.toml: item R9: {fragment}: [^\n]*fix"):
        Catalog.load(_write(tmp_path, text))


# ------------------------------------------------------------------ expectation

CASES = [
    # item, build, vSphere, workaround, platform, outcome
    ("F1", "7.0.2", "7.0U3", None, "linux", "not_applicable"),
    ("F1", "7.0.3", "7.0U3", None, "linux", "pass"),
    ("F1", "7.0.3", "6.7U3", None, "linux", "not_applicable"),  # new features excepted on older servers
    ("F2", "7.0.3", "7.0U2", None, "linux", "pass"),
    ("F2", "7.0.3", "7.0U2", None, "windows", "not_applicable"),
    ("C1", "6.5.4", "6.7", None, "linux", "not_applicable"),  # no QueryAllocatedBlocks before 6.7
    ("C1", "6.7.0", "6.7", None, "linux", "pass"),  # documentation only: no known issue before 7.0.1
    ("C2", "6.5.4", "6.7", None, "linux", "known_issue"),
    ("C2", "6.7.0", "6.7", None, "linux", "pass"),
    ("C3", "6.7.2", "6.7U3", None, "linux", "known_issue"),
    ("C3", "6.7.3", "6.7U3", None, "linux", "pass"),
    ("C4", "6.5.0", "M8", None, "linux", "pass"),  # unsupported: the preflight must refuse it
    ("C4", "7.0.3", "8.0", None, "linux", "pass"),
    ("R1", "7.0.2", "7.0U2", None, "windows", "pass"),  # documentation only
    ("R1", "6.7.3", "6.7U3", None, "windows", "not_applicable"),  # thread-local storage arrived in 7.0
    ("R1", "6.7.3", "6.7U3", None, "linux", "pass"),
    ("R2", "7.0.2", "7.0U2", None, "linux", "known_issue"),
    ("R2", "7.0.3", "7.0U2", None, "linux", "pass"),
    ("R3", "7.0.2", "7.0U3", None, "linux", "known_issue"),
    ("R3", "7.0.3", "7.0U3", None, "linux", "pass"),
    ("R3", "7.0.2", "7.0U3", None, "windows", "not_applicable"),
    ("R4", "7.0.2", "7.0U3", None, "linux", "known_issue"),
    ("R4", "7.0.3", "7.0U3", None, "linux", "pass"),
    ("R5", "7.0.2", "7.0U3", None, "linux", "known_issue"),
    ("R5", "7.0.3", "7.0U3", None, "linux", "pass"),
    ("R6", "7.0.3", "7.0U2", None, "linux", "known_issue"),
    ("R6", "7.0.3", "7.0U3", None, "linux", "pass"),
    ("R6", "6.5.0", "8.0", None, "linux", "pass"),  # server side: even an unsupported VDDK build
    ("R6", "7.0.3", "M15", None, "linux", "known_issue"),
    ("R6", "7.0.3", "M16", None, "linux", "pass"),
    ("K1", "7.0.3", "7.0U3", None, "linux", "known_issue"),
    ("K1", "7.0.2", "7.0U3", None, "linux", "pass"),
    ("K1", "7.0.3", "7.0U3", "full-clone-source", "linux", "pass"),
    ("K1", "7.0.3", "7.0U3", "non-hotadd-transport", "linux", "pass"),
    ("K2", "6.5.0", "6.5", None, "linux", "known_issue"),
    ("K2", "7.0.3", "7.0U3", "tmpdirectory-set", "linux", "pass"),
    ("K2", "6.5.0", "M8", None, "linux", "not_applicable"),  # unsupported pair
    ("K3", "6.7.3", "6.7U3", None, "windows", "known_issue"),
    ("K3", "6.7.3", "7.0", None, "windows", "pass"),  # only with vSphere 6.x
    ("K3", "7.0.0", "6.7U3", None, "windows", "pass"),  # fixed in 7.0
    ("K3", "6.7.3", "6.7U3", None, "linux", "not_applicable"),
    ("K3", "6.7.3", "6.7U3", "upgrade-to-7.0", "windows", "pass"),
    ("K4", "7.0.3", "8.0", None, "linux", "known_issue"),
    ("K4", "7.0.3", "8.0", "proxy-on-vsan", "linux", "pass"),
    ("K5", "7.0.3", "7.0U3", None, "linux", "known_issue"),
    ("K5", "7.0.3", "6.7U3", None, "linux", "pass"),
    ("K5", "6.7.3", "7.0", None, "linux", "pass"),
    ("K5", "7.0.3", "7.0U3", "phonehome-vendor-keys", "linux", "pass"),
    ("K6", "6.7.1", "6.7U1", None, "linux", "known_issue"),
    ("K6", "6.7.1", "6.7U2", None, "linux", "pass"),
    ("K6", "6.7.0", "6.7", None, "linux", "known_issue"),
    ("K6", "6.7.2", "6.7U1", None, "linux", "pass"),
    ("K6", "7.0.3", "6.7", None, "linux", "pass"),
    ("K6", "6.7.1", "M8", None, "linux", "pass"),
    ("K6", "6.7.1", "6.7U1", "nonfcsession-0", "linux", "pass"),
    ("K6", "6.7.1", "M10", "nonfcsession-0", "linux", "not_applicable"),  # VMC needs NoNfcSession=1
    ("K6", "6.7.1", "6.7U1", "adaptive-decoding", "linux", "pass"),
    ("K6", "6.5.4", "6.7", None, "linux", "not_applicable"),
]


@pytest.mark.parametrize(("item_id", "build", "server", "workaround", "platform", "outcome"), CASES)
def test_expectation_table(
    item_id: str, build: str, server: str, workaround: str | None, platform: str, outcome: str
) -> None:
    result = expectation(item_id, build, server, workaround=workaround, platform=platform)
    assert (result.item_id, result.outcome) == (item_id, outcome), result.reason


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("K1", "7.0.3", "7.0U3"), "K1 is a known issue of VDDK 7.0.3 with vSphere 7.0U3: it can make the proxy VM"),
        (("F1", "7.0.2", "7.0U3"), "F1 was introduced in VDDK 7.0.3; 7.0.2 ignores the vixDiskLib.nfcAio.Session keys"),
        (("R5", "7.0.2", "7.0U3"), 'R5 was fixed in VDDK 7.0.3; VDDK 7.0.2 returns VIX_E_FAIL (1, "Unknown error")'),
        (("R6", "7.0.3", "M15"), "R6 was fixed in vSphere 7.0U3 (server side, any VDDK build); VMC M15 enables CBT"),
    ],
)
def test_reason_sentences(args: tuple[str, str, str], text: str) -> None:
    assert expectation(*args).reason.startswith(text)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize(("server", "outcome"), [("7.0U2", "known_issue"), ("7.0U3", "pass")])
def test_r6_follows_vsphere_whatever_the_build(build: str, server: str, outcome: str) -> None:
    assert expectation("R6", build, server).outcome == outcome


@pytest.mark.parametrize("server", VSPHERE)
def test_r6_agrees_with_the_simulator_profile(server: str) -> None:
    fixed = get_profile(server).default_profile_preserves_cbt
    assert expectation("R6", "7.0.3", server).outcome == ("pass" if fixed else "known_issue")


@pytest.mark.parametrize("server", [v for v in VSPHERE if vddk_supports("6.7.1", v)])
def test_k6_agrees_with_the_simulator_profile(server: str) -> None:
    double_decode = get_profile(server).http_double_decode
    assert expectation("K6", "6.7.1", server).outcome == ("known_issue" if double_decode else "pass")


@pytest.mark.parametrize("item_id", ITEMS)
def test_every_selection_has_a_definite_answer(item_id: str) -> None:
    for build in BUILDS:
        for server in VSPHERE:
            for platform in ("linux", "windows"):
                result = expectation(item_id, build, server, platform=platform)
                assert result.outcome in ("pass", "known_issue", "not_applicable")
                assert result.reason.startswith(item_id) and "\n" not in result.reason


@pytest.mark.parametrize(("item_id", "workaround"), [(i.id, w.id) for i in CATALOG.items() for w in i.workarounds])
def test_a_workaround_never_expects_failure(item_id: str, workaround: str) -> None:
    for build in BUILDS:
        for server in VSPHERE:
            for platform in ("linux", "windows"):
                result = expectation(item_id, build, server, workaround=workaround, platform=platform)
                assert result.outcome != "known_issue", result.reason


@pytest.mark.parametrize("item_id", [i for i in ITEMS if i not in ("C4", "R6")])
def test_unsupported_pairs_are_not_applicable(item_id: str) -> None:
    assert expectation(item_id, "6.5.4", "M10").outcome == "not_applicable"
    assert expectation(item_id, "6.7.3", "8.0").outcome == "not_applicable"


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"item_id": "K9"}, CatalogError, "use one of F1"),
        ({"workaround": "reboot"}, CatalogError, "K1 has no workaround 'reboot': use one of full-clone-source"),
        ({"item_id": "R5", "workaround": "x"}, CatalogError, "R5 (resolved) has no workarounds"),
        ({"platform": "macos"}, CatalogError, "unknown platform 'macos'"),
        ({"vddk_build": "7.0.4"}, VersionError, "unknown VDDK build '7.0.4'"),
        ({"vsphere": "7.0U4"}, VersionError, "unknown vSphere version '7.0U4'"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs: dict[str, str], error: type[Exception], fragment: str) -> None:
    call = {"item_id": "K1", "vddk_build": "7.0.3", "vsphere": "7.0U3", **kwargs}
    with pytest.raises(error) as caught:
        expectation(**call)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_module_function_uses_the_packaged_catalog() -> None:
    assert expectation("K1", "7.0.3", "7.0 U3") == Catalog.load().expectation("K1", "7.0.3", "7.0U3")


@pytest.mark.parametrize("build", ["7.0.2", "7.0.3"])
def test_a_control_case_must_pass_where_the_reproducer_is_a_known_issue_or_not(build: str) -> None:
    control = expectation("K1", build, "7.0U3", control="vmfs-datastore")
    assert control.outcome == "pass" and "control case vmfs-datastore" in control.reason
    assert expectation("K1", "7.0.3", "7.0U3").outcome == "known_issue"


def test_an_unknown_control_case_or_a_control_with_a_workaround_is_one_line() -> None:
    with pytest.raises(CatalogError, match=r"K1 has no control case 'nfs'.*vmfs-datastore"):
        expectation("K1", "7.0.3", "7.0U3", control="nfs")
    with pytest.raises(CatalogError, match="workaround or a control case, not both"):
        expectation("K1", "7.0.3", "7.0U3", control="vmfs-datastore", workaround="full-clone-source")
    with pytest.raises(CatalogError, match="K4 has no control case"):
        expectation("K4", "7.0.3", "7.0U3", control="x")
