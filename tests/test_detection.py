"""The detection matrix: its plan is checked against the catalog, and a probe tells a caught bug from none."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.catalog import load_catalog
from conformance.detection import (
    DetectionError,
    Probe,
    ProbeResult,
    load_plan,
    markdown_table,
    run_probe,
    short_test_name,
)
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = (ROOT / "conformance" / "data" / "detection_plan.toml").read_text()


def test_the_packaged_plan_has_one_valid_probe_per_catalog_item() -> None:
    probes = load_plan()
    assert [p.item for p in probes] == list(load_catalog().ids())
    assert all(p.why for p in probes)


def test_every_probe_changes_behaviour_or_assumes_the_item_fixed() -> None:
    for probe in load_plan():
        changed = (probe.behave, probe.sim_vsphere, probe.backup_app) != (probe.expect, probe.vsphere, None)
        assert changed or probe.assume_fixed, probe.item


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("[items.K6]", "[items.K9]", ["no probe for K6"]),
        ('[items.F1]\nbehave = "7.0.2"', '[items.F1]\nbehave = "7.0.2"\nbehaviour = "x"', ["items.F1", "'behaviour'"]),
        ('[items.F1]\nbehave = "7.0.2"', '[items.F1]\nbehave = "7.0.3"', ["items.F1", "changes nothing"]),
        (
            '[items.K1]\nexpect = "7.0.2"\nbehave = "7.0.3"',
            '[items.K1]\nexpect = "7.0.3"\nbehave = "7.0.2"',
            ["items.K1", "say known_issue, not pass"],
        ),
        ("[items.K4]\nassume_fixed = true\n", '[items.K4]\nbehave = "6.5.0"\n', ["items.K4", "not pass"]),
        ('[items.R5]\nbehave = "7.0.2"', '[items.R5]\nbehave = "7.0.9"', ["items.R5"]),
        ('why = "7.0.2 ignores', 'whyy = "7.0.2 ignores', ["items.F1"]),
        ("[items.F1]", "[items.F1", ["not valid TOML"]),
    ],
)
def test_a_broken_plan_is_one_line_naming_the_item(tmp_path: Path, old: str, new: str, fragments: list[str]) -> None:
    assert old in PACKAGED
    path = tmp_path / "plan.toml"
    path.write_text(PACKAGED.replace(old, new, 1))
    with pytest.raises(DetectionError) as caught:
        load_plan(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("plan.toml")
    for fragment in fragments:
        assert fragment in message


def test_the_table_names_the_catching_tests_and_counts_detected_items() -> None:
    probe = Probe("R5", "full datastore", behave="7.0.2")
    caught = ProbeResult(probe, True, ["suites/test_r5_disk_full.py::test_x[nbd]"], {"failed": 1}, 3.0, "d", 1)
    missed = ProbeResult(Probe("K1", "vvol", expect="7.0.2"), False, [], {"passed": 2}, 2.0, "d", 0)
    table = markdown_table([caught, missed])
    assert (
        "| R5 | VDDK 7.0.3, vSphere 7.0U3 | VDDK 7.0.2, vSphere 7.0U3 | yes | test_r5_disk_full::test_x[nbd] |" in table
    )
    assert "| K1 |" in table and "**no**" in table
    assert "1 of 2 items detected." in table
    assert short_test_name("suites/a.py::b") == "a::b"


def test_probe_arguments_select_the_item_and_carry_every_override() -> None:
    probe = Probe("C1", "mutant", backup_app="m:App", sim_vsphere="7.0U2", assume_fixed=True)
    args = probe.run_arguments()
    assert "--release-note=C1" in args and "--backup-app=m:App" in args
    assert "--sim-vsphere=7.0U2" in args and "--assume-fixed=C1" in args


def test_a_real_probe_detects_the_bug_and_a_harmless_change_is_not_detected(tmp_path: Path) -> None:
    """K5 (fast: configuration checks and one read): VDDK 7.0.3 behaviour under 6.7.3 expectations is caught;
    6.7.2 behaviour, which shares 6.7.3's phone-home path, is not."""
    buggy = run_probe(Probe("K5", "7.0 ignores EnablePhoneHome", expect="6.7.3", behave="7.0.3"), tmp_path, "0")
    assert buggy.detected
    assert [short_test_name(n) for n in buggy.caught_by] == [
        "test_k5_phone_home::test_enable_phone_home_reaches_the_server"
    ]
    harmless = run_probe(Probe("K5", "same phone-home path", expect="6.7.3", behave="6.7.2"), tmp_path, "0")
    assert not harmless.detected and harmless.outcomes.get("passed", 0) > 0


def test_the_command_refuses_an_unknown_item_in_one_line() -> None:
    result = run_cli("detection-matrix", "--items", "Z9", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Z9" in result.stderr
