"""The detection matrix: its plan is checked against the catalog, and only a test that passed in the baseline and
failed in the probe counts as catching a bug (always-failing and erroring tests, broken baselines never do)."""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

import pytest

from conformance.knowledge.catalog import load_catalog
from conformance.knowledge.detection_plan import FAULT_PREFIX
from conformance.runs.detection import (
    Baseline,
    DetectionError,
    Probe,
    app_problem,
    judge,
    load_plan,
    markdown_table,
    run_probe,
    short_test_name,
)
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = (ROOT / "conformance" / "data" / "detection_plan.toml").read_text()
LIARS = ["RestoresNothing", "FakeDigest", "SkipsCleanup", "FullReadIncremental", "LeavesSnapshot", "FirstPageOnly"]
EXTRA_ROWS = """
[probes.APP-off-thread]
release_note = "C1"
backup_app = "conformance.sequences.mutants:QueryOffTheOpeningThread"
why = "an existing mutant as a non-item row"

[probes.APP-missing]
release_note = "C4"
backup_app = "conformance.sequences.mutants:NoSuchLiar"
why = "a class that does not exist"
"""


def test_the_packaged_plan_has_one_probe_per_catalog_item_then_the_lying_applications() -> None:
    probes = load_plan()
    pending = set(tomllib.loads(PACKAGED).get("pending", []))
    items = [i for i in load_catalog().ids() if i not in pending]
    assert [p.id for p in probes[: len(items)]] == items
    liars = [p for p in probes[len(items) :] if not p.id.startswith(FAULT_PREFIX)]
    assert [p.backup_app for p in liars] == [f"conformance.sequences.mutants:{name}" for name in LIARS]
    assert all(p.item in ("C4", "D1") and p.id.startswith("APP-") and p.why for p in liars)
    faults = probes[len(items) + len(liars) :]  # the lying servers come last
    assert all(p.id.startswith(FAULT_PREFIX) and p.sim_faults and not p.item for p in faults)
    assert all(p.why for p in probes)


def test_every_probe_changes_behaviour_or_assumes_the_item_fixed_and_its_baseline_changes_nothing() -> None:
    for probe in load_plan():
        changed = (probe.behave, probe.sim_vsphere, probe.backup_app, probe.sim_faults) != (
            probe.expect,
            probe.vsphere,
            None,
            (),
        )
        assert changed or probe.assume_fixed, probe.id
        base = probe.baseline()
        assert (base.behave, base.sim_vsphere, base.backup_app, base.sim_faults) == (
            probe.expect,
            probe.vsphere,
            None,
            (),
        )
        if probe.item:  # a [faults] row runs the default suites, no single item's tests
            assert f"--release-note={probe.item}" in base.run_arguments()
        # an issue of every build: only the baseline plays it fixed, the probe keeps the bug
        assert base.sim_fixed == ((probe.item,) if probe.assume_fixed else ()), probe.id
        assert not [a for a in probe.run_arguments() if a.startswith("--sim-fixed")], probe.id


@pytest.mark.parametrize("item", ["K2", "K4"])
def test_an_issue_of_every_build_has_a_baseline_that_plays_it_fixed_and_a_probe_that_keeps_it(item: str) -> None:
    probe = {p.id: p for p in load_plan()}[item]
    assert probe.assume_fixed and probe.baseline_fixed == (item,)
    assert probe.baseline().run_arguments() == [*probe.run_arguments(), f"--sim-fixed={item}"]
    assert f"baseline plays {item} fixed" in probe.describe()[0]


def test_an_explicit_baseline_fixed_list_is_taken_as_written() -> None:
    text = PACKAGED.replace('[items.R4]\nbehave = "7.0.2"', '[items.R4]\nbehave = "7.0.2"\nbaseline_fixed = ["K2"]')
    probe = {p.id: p for p in load_plan_text(text)}["R4"]
    assert "--sim-fixed=K2" in probe.baseline().run_arguments()
    assert not [a for a in probe.run_arguments() if a.startswith("--sim-fixed")]


def test_a_plan_row_with_an_existing_mutant_loads_and_one_with_a_missing_class_fails_in_one_line() -> None:
    path_rows = {p.id: p for p in load_plan_text(PACKAGED + EXTRA_ROWS)}
    assert path_rows["APP-off-thread"].item == "C1"
    assert app_problem(path_rows["APP-off-thread"].backup_app) is None
    problem = app_problem(path_rows["APP-missing"].backup_app)
    assert problem and "\n" not in problem and "NoSuchLiar" in problem
    assert "cannot import" in str(app_problem("conformance.no_such_module:X"))


def load_plan_text(text: str, tmp: Path | None = None) -> list[Probe]:
    if tmp is None:
        with tempfile.TemporaryDirectory(prefix="vddkc-plan-") as folder:
            return load_plan_text(text, Path(folder))
    path = tmp / "plan.toml"
    path.write_text(text)
    return load_plan(path)


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
        ("mutants:QueryOffTheOpeningThread", "mutants.QueryOffTheOpeningThread", ["items.C1", "not module:Class"]),
        (":RestoresNothing", ":Restores Nothing", ["probes.APP-restores-nothing", "not module:Class"]),
        ('release_note = "C4"\nbackup_app = "conformance.sequences.mutants:FakeDigest"', 'release_note = "C9"\n'
         'backup_app = "conformance.sequences.mutants:FakeDigest"', ["probes.APP-fake-digest", "'C9'"]),
        ('release_note = "C4"\nbackup_app = "conformance.sequences.mutants:SkipsCleanup"',
         'backup_app = "conformance.sequences.mutants:SkipsCleanup"', ["probes.APP-skips-cleanup", "release_note"]),
        ('backup_app = "conformance.sequences.mutants:LeavesSnapshot"\n', 'behave = "7.0.2"\n',
         ["probes.APP-leaves-snapshot", "'behave'"]),
        ("[probes.APP-restores-nothing]", "[probes.r5]", ["probes.r5", "not a probe id"]),
        ('select = "test_c4_compatibility', 'select = 4 or "test_c4_compatibility', ["not valid TOML"]),
        ('[items.F1]\nbehave = "7.0.2"', '[items.F1]\nbehave = "7.0.2"\nselect = "  "', ["items.F1", "-k expression"]),
        # hostile: a baseline that keeps the bug would fail like the probe
        ("[items.K2]\nassume_fixed = true\n", "[items.K2]\nassume_fixed = true\nbaseline_fixed = []\n",
         ["items.K2", "baseline keeps K2"]),
        ("[items.K4]\nassume_fixed = true\n", '[items.K4]\nassume_fixed = true\nbaseline_fixed = ["K1"]\n',
         ["items.K4", "K1 has no switch"]),
        ("[items.K4]\nassume_fixed = true\n", '[items.K4]\nassume_fixed = true\nbaseline_fixed = "K4"\n',
         ["items.K4", "must be a list"]),
    ],
)  # fmt: skip
def test_a_broken_plan_is_one_line_naming_the_row(tmp_path: Path, old: str, new: str, fragments: list[str]) -> None:
    assert old in PACKAGED
    with pytest.raises(DetectionError) as caught:
        load_plan_text(PACKAGED.replace(old, new, 1), tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("plan.toml")
    for fragment in fragments:
        assert fragment in message


PROBE = Probe("R5", "full datastore", behave="7.0.2")
T1, T2, T3 = (f"suites/test_r5_disk_full.py::test_{n}" for n in ("a", "b", "c"))


@pytest.mark.parametrize(
    ("baseline", "probe", "verdict", "caught", "errors"),
    [
        ({T1: "passed", T2: "passed"}, {T1: "failed", T2: "passed"}, "detected", [T1], []),
        # hostile: a test that always fails reads as a broken baseline, never as detection
        ({T1: "failed", T2: "passed"}, {T1: "failed", T2: "passed"}, "baseline broken", [], []),
        # hostile: a test that always errors is neither detection nor a green baseline
        ({T1: "error", T2: "passed"}, {T1: "error", T2: "passed"}, "baseline broken", [], [T1]),
        # hostile: passing in the baseline and erroring in the probe is an error, not detection
        ({T1: "passed", T2: "passed"}, {T1: "error", T2: "passed"}, "not detected", [], [T1]),
        # hostile: a baseline that ran nothing (all skipped, or no test at all) is not green
        ({T1: "skipped"}, {T1: "failed"}, "baseline broken", [], []),
        ({}, {T1: "failed"}, "baseline broken", [], []),
        # a strict expected failure that passed breaks the baseline too
        ({T1: "xpassed", T2: "passed"}, {T1: "failed", T2: "failed"}, "baseline broken", [], []),
        # a test missing from the baseline cannot detect
        ({T1: "passed"}, {T1: "passed", T3: "failed"}, "not detected", [], []),
        ({T1: "passed", T2: "skipped"}, {T1: "failed", T2: "skipped"}, "detected", [T1], []),
    ],
)
def test_only_a_test_green_in_the_baseline_and_failing_in_the_probe_detects(
    baseline: dict[str, str], probe: dict[str, str], verdict: str, caught: list[str], errors: list[str]
) -> None:
    result = judge(PROBE, baseline, probe)
    assert (result.verdict, result.caught_by, result.errors) == (verdict, caught, errors)
    assert result.detected == (verdict == "detected")


def test_the_table_shows_baseline_detection_catching_tests_and_errors_apart() -> None:
    caught = judge(PROBE, {T1: "passed", T2: "passed"}, {T1: "failed", T2: "error"})
    broken = judge(Probe("K1", "vvol", expect="7.0.2"), {T1: "failed"}, {T1: "failed"})
    app = Probe("C4", "liar", backup_app="m:RestoresNothing", probe_id="APP-restores-nothing")
    table = markdown_table([caught, broken, judge(app, {T1: "passed"}, {T1: "passed"})])
    assert (
        "| R5 | VDDK 7.0.3, vSphere 7.0U3 | VDDK 7.0.2, vSphere 7.0U3 | 2/2 | yes | test_r5_disk_full::test_a "
        "| test_r5_disk_full::test_b |" in table
    )
    assert "| K1 |" in table and "0/1 (broken: test_r5_disk_full::test_a) | **baseline broken** |" in table
    assert "| APP-restores-nothing (C4) |" in table and "app RestoresNothing | 1/1 | **no** |" in table
    assert "1 of 3 probes detected" in table
    assert short_test_name("suites/a.py::b") == "a::b"


def test_probe_arguments_select_the_item_and_carry_every_override() -> None:
    probe = Probe("C1", "mutant", backup_app="m:App", sim_vsphere="7.0U2", assume_fixed=True)
    args = probe.run_arguments()
    assert "--release-note=C1" in args and "--backup-app=m:App" in args
    assert "--sim-vsphere=7.0U2" in args and "--assume-fixed=C1" in args
    assert "--assume-fixed=C1" in probe.baseline().run_arguments()
    assert not [a for a in probe.baseline().run_arguments() if a.startswith("--backup-app")]


def test_a_selection_narrows_probe_and_baseline_alike() -> None:
    """The round-trip rows run a slice of the C4 tests; the baseline must run the very same slice."""
    rows = {p.id: p for p in load_plan()}
    for row in ("C4", "APP-restores-nothing"):
        probe = rows[row]
        assert probe.select and probe.run_arguments()[-2:] == ["-k", probe.select]
        assert probe.baseline().run_arguments()[-2:] == ["-k", probe.select]


@pytest.mark.slow
def test_a_real_probe_detects_the_bug_and_a_harmless_change_is_not_detected(tmp_path: Path) -> None:
    """K5 (fast: configuration checks and one read): VDDK 7.0.3 behaviour under 6.7.3 expectations is caught;
    6.7.2 behaviour, which shares 6.7.3's phone-home path, is not. Both share one baseline run."""
    baselines: dict[tuple[str, ...], Baseline] = {}
    buggy = run_probe(Probe("K5", "7.0 ignores it", expect="6.7.3", behave="7.0.3"), tmp_path, "0", None, baselines)
    assert buggy.detected and buggy.baseline.green, buggy
    assert [short_test_name(n) for n in buggy.caught_by] == [
        "test_k5_phone_home::test_enable_phone_home_reaches_the_server"
    ]
    harmless = run_probe(Probe("K5", "same path", expect="6.7.3", behave="6.7.2"), tmp_path, "0", None, baselines)
    assert harmless.verdict == "not detected" and "passed" in harmless.outcomes.values()
    assert len(baselines) == 1 and harmless.baseline is buggy.baseline


FAKE_SUITE = """
import pytest

pytestmark = [pytest.mark.release_note("K5")]


@pytest.fixture
def broken():
    raise RuntimeError("set-up always fails")


def test_passes():
    pass


def test_always_fails():
    assert False


def test_always_errors(broken):
    pass
"""


@pytest.mark.slow
def test_a_suite_that_always_fails_or_errors_reads_as_a_broken_baseline(tmp_path: Path) -> None:
    """The hostile case end to end: with the old rule ("failed or error" in the probe) this row read detected."""
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "test_fake_k5.py").write_text(FAKE_SUITE)
    result = run_probe(Probe("K5", "fake", expect="6.7.3", behave="7.0.3"), tmp_path / "r", "0", suites)
    assert result.verdict == "baseline broken" and not result.detected
    assert [short_test_name(n) for n in result.errors] == ["test_fake_k5::test_always_errors"]
    assert [short_test_name(n) for n in result.baseline.broken_by] == [
        "test_fake_k5::test_always_errors",
        "test_fake_k5::test_always_fails",
    ]


def test_a_missing_backup_application_fails_its_row_in_one_line_and_the_matrix_goes_on(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PACKAGED + EXTRA_ROWS)
    result = run_cli("detection-matrix", "--plan", str(plan), "--items", "app-missing", "--out", str(tmp_path / "o"))
    assert result.returncode == 1, result.stderr
    assert "APP-missing: not run" in result.stdout and "NoSuchLiar" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "0 of 1 probes detected" in (tmp_path / "o" / "detection.md").read_text()


def test_the_command_refuses_an_unknown_item_in_one_line() -> None:
    result = run_cli("detection-matrix", "--items", "Z9", timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Z9" in result.stderr


@pytest.fixture
def two_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.knowledge import sim_faults as integrity

    for name in ("lies-a", "lies-b"):
        monkeypatch.setitem(integrity.FAULTS, name, integrity.SimFault(name, "a lying server", "server"))


FAULT_ROWS = """
[faults.lies-a]
why = "the default suites see it"
select = "test_roundtrip"
"""


def test_a_fault_row_runs_the_default_suites_with_the_fault_and_its_baseline_without(two_faults: None) -> None:
    text = PACKAGED.replace('[items.R5]\nbehave = "7.0.2"', '[items.R5]\nbehave = "7.0.2"\nsim_fault = "lies-b"')
    probes = {p.id: p for p in load_plan_text(text + FAULT_ROWS)}
    row = probes["FAULT-lies-a"]
    assert row.whole_run and not [a for a in row.run_arguments() if a.startswith("--release-note")]
    assert "--sim-fault=lies-a" in row.run_arguments() and row.run_arguments()[-2:] == ["-k", "test_roundtrip"]
    assert not [a for a in row.baseline().run_arguments() if a.startswith("--sim-fault")]
    assert "fault lies-a" in row.describe()[1]
    item = probes["R5"]
    assert "--sim-fault=lies-b" in item.run_arguments() and "--release-note=R5" in item.run_arguments()
    assert not [a for a in item.baseline().run_arguments() if a.startswith("--sim-fault")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("", r"no row plays lies-a, lies-b \(fix: add \[faults.NAME\]"),
        (FAULT_ROWS + '\n[faults.lies-b]\nwhy = "x"\n[faults.lies-c]\nwhy = "y"\n', "faults.lies-c: unknown"),
        (FAULT_ROWS + "\n[faults.lies-b]\n", r"faults.lies-b: missing why"),
    ],
)
def test_a_fault_no_row_plays_or_an_unknown_fault_is_one_line(two_faults: None, extra: str, message: str) -> None:
    with pytest.raises(DetectionError, match=message):
        load_plan_text(PACKAGED + extra)


def test_a_whole_run_row_judges_every_test_of_the_run() -> None:
    from conformance.runs.detection import _outcomes

    tests = [{"nodeid": "a", "outcome": "passed", "release_note": "C4"}, {"nodeid": "b", "outcome": "failed"}]
    assert _outcomes(tests, "") == {"a": "passed", "b": "failed"}
    assert _outcomes(tests, "C4") == {"a": "passed"}
