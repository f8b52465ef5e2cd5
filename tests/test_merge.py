"""vddk-conformance merge: shard report directories become one run; anything that would lose or mix data is
refused in one line."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.runs.merge import MergeError, merge_runs, missing_shards, recount, worst_exit_status
from tests.cli import run_cli

ENV = "vddk.build=7.0.3\nvddk.behaviour=7.0.3\nvsphere=7.0U3\ntarget=sim\nbackup.app=reference\nrun.id={run_id}\n"


def shard_dir(
    root: Path,
    name: str,
    cases: list[tuple[str, str, str]],
    shard: str | None = "1/2",
    exit_status: int = 0,
    started: float = 10.0,
    finished: float = 20.0,
    **over: Any,
) -> Path:
    """A run directory as one shard writes it: summary.json, junit.xml, allure-results."""
    run_dir = root / name
    (run_dir / "allure-results").mkdir(parents=True)
    tests = [
        {"nodeid": n, "duration": 0.5, "outcome": o, "release_note": r, "expectation": "pass"} for n, o, r in cases
    ]
    totals, items = recount(tests)
    summary = {
        "run_id": name,
        "vddk_build": "7.0.3",
        "sim_behaviour": "7.0.3",
        "vsphere": "7.0U3",
        "backup_app": "reference",
        "matrix": "default",
        "shard": shard,
        "target": {"name": "sim"},
        "started": started,
        "finished": finished,
        "exit_status": exit_status,
        "totals": totals,
        "release_notes": items,
        "tests": tests,
    }
    summary.update(over)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    cases_xml = "".join(
        f'<testcase classname="s" name="{n}" time="0.5">'
        + {"failed": "<failure/>", "error": "<error/>", "skipped": "<skipped/>", "xfailed": "<skipped/>"}.get(o, "")
        + "</testcase>"
        for n, o, _ in cases
    )
    (run_dir / "junit.xml").write_text(
        f'<?xml version="1.0"?><testsuites name="pytest tests"><testsuite name="pytest" tests="999" failures="9" '
        f'hostname="{name}-host" time="1.5">{cases_xml}</testsuite></testsuites>'
    )
    (run_dir / "allure-results" / "environment.properties").write_text(ENV.format(run_id=name))
    for n, _, _ in cases:
        uuid = abs(hash((name, n)))
        (run_dir / "allure-results" / f"{uuid}-result.json").write_text(json.dumps({"name": n}))
    (run_dir / "allure-results" / f"{name}-attachment.txt").write_text("trace")
    return run_dir


A = [("s/t.py::a", "passed", "C4"), ("s/t.py::c", "failed", "R5")]
B = [("s/t.py::b", "xfailed", "K2"), ("s/t.py::d", "passed", "C4")]


def test_two_shards_merge_into_one_run(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A, "1/2", exit_status=1, started=10.0, finished=30.0)
    two = shard_dir(tmp_path, "r2", B, "2/2", exit_status=0, started=5.0, finished=20.0)
    out = tmp_path / "merged"
    merge_runs([one, two], out)
    summary = json.loads((out / "summary.json").read_text())
    assert [t["nodeid"] for t in summary["tests"]] == ["s/t.py::a", "s/t.py::b", "s/t.py::c", "s/t.py::d"]
    assert summary["totals"] == {"passed": 2, "failed": 1, "xfailed": 1}
    assert summary["release_notes"] == {"C4": {"passed": 2}, "R5": {"failed": 1}, "K2": {"xfailed": 1}}
    assert (summary["started"], summary["finished"], summary["exit_status"]) == (5.0, 30.0, 1)
    assert summary["shard"] is None and summary["run_id"] == "merged" and summary["vddk_build"] == "7.0.3"
    assert [(m["run_id"], m["shard"], m["tests"]) for m in summary["merged_from"]] == [
        ("r1", "1/2", 2),
        ("r2", "2/2", 2),
    ]

    root = ET.parse(out / "junit.xml").getroot()
    assert root.tag == "testsuites" and len(root.findall("testsuite")) == 2
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4",
        "failures": "1",
        "errors": "0",
        "skipped": "1",
    }
    assert [s.get("tests") for s in root.findall("testsuite")] == ["2", "2"]  # recounted, not copied
    assert [s.get("hostname") for s in root.findall("testsuite")] == ["r1-host", "r2-host"]

    allure = out / "allure-results"
    results = sorted(p.name for p in allure.glob("*-result.json"))
    assert len(results) == 4 and (allure / "r1-attachment.txt").exists() and (allure / "r2-attachment.txt").exists()
    env = (allure / "environment.properties").read_text()
    assert "vddk.build=7.0.3" in env and "run.id=merged" in env


def test_other_files_of_every_shard_are_kept(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A)
    two = shard_dir(tmp_path, "r2", B, "2/2")
    (one / "traces").mkdir()
    (one / "traces" / "gw0.jsonl").write_text("one")
    (two / "traces").mkdir()
    (two / "traces" / "gw1.jsonl").write_text("two")
    merge_runs([one, two], tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m" / "traces").iterdir()) == ["gw0.jsonl", "gw1.jsonl"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"vsphere": "7.0U2"}, "cannot merge: vsphere differs: '7.0U3' in {one}, '7.0U2' in {two}"),
        ({"vddk_build": "7.0.2"}, "cannot merge: vddk_build differs: '7.0.3' in {one}, '7.0.2' in {two}"),
        ({"sim_behaviour": "7.0.2"}, "cannot merge: sim_behaviour differs"),
    ],
)
def test_shards_of_different_runs_are_refused_naming_the_key(
    tmp_path: Path, over: dict[str, Any], message: str
) -> None:
    one = shard_dir(tmp_path, "r1", A)
    two = shard_dir(tmp_path, "r2", B, "2/2", **over)
    with pytest.raises(MergeError) as caught:
        merge_runs([one, two], tmp_path / "m")
    assert message.format(one=one, two=two) in str(caught.value)
    assert not (tmp_path / "m").exists()


def test_environment_properties_must_agree(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A)
    two = shard_dir(tmp_path, "r2", B, "2/2")
    env = two / "allure-results" / "environment.properties"
    env.write_text(env.read_text().replace("vddk.behaviour=7.0.3", "vddk.behaviour=7.0.2"))
    with pytest.raises(MergeError, match=r"environment.properties vddk.behaviour differs: '7.0.3' in .*r1, '7.0.2'"):
        merge_runs([one, two], tmp_path / "m")


def test_overlapping_shards_are_refused_naming_the_test(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A)
    two = shard_dir(tmp_path, "r2", [*B, A[0]], "2/2")
    with pytest.raises(MergeError, match=re.escape(f"test s/t.py::a ran in both {one} and {two}")):
        merge_runs([one, two], tmp_path / "m")


def test_a_file_that_differs_between_shards_is_refused(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A)
    two = shard_dir(tmp_path, "r2", B, "2/2")
    (one / "allure-results" / "categories.json").write_text("[1]")
    (two / "allure-results" / "categories.json").write_text("[2]")
    with pytest.raises(MergeError, match=r"allure-results/categories\.json differs between"):
        merge_runs([one, two], tmp_path / "m")
    (two / "allure-results" / "categories.json").write_text("[1]")  # the same file twice is kept once
    merge_runs([one, two], tmp_path / "m")
    assert (tmp_path / "m" / "allure-results" / "categories.json").read_text() == "[1]"


def test_inputs_and_output_are_checked(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(MergeError, match="exists and is not an empty folder"):
        merge_runs([one], tmp_path / "full")
    with pytest.raises(MergeError, match="is given twice"):
        merge_runs([one, one], tmp_path / "m")
    with pytest.raises(MergeError, match=r"no summary\.json"):
        merge_runs([one, tmp_path / "full"], tmp_path / "m")
    with pytest.raises(MergeError, match="is inside the input"):
        merge_runs([one], one / "merged")


@pytest.mark.parametrize(
    ("codes", "worst"), [([0, 0], 0), ([0, 1], 1), ([5, 0], 0), ([5, 5], 5), ([1, 3, 2], 3), ([2, 1], 2)]
)
def test_exit_status_is_the_worst(codes: list[int], worst: int) -> None:
    assert worst_exit_status(codes) == worst


def test_missing_shards_are_named() -> None:
    assert missing_shards(["1/3", "3/3"]) == ["2/3"]
    assert missing_shards(["1/2", "2/2"]) == [] and missing_shards([None]) == []


def test_merge_command_errors_are_one_line(tmp_path: Path) -> None:
    one = shard_dir(tmp_path, "r1", A)
    two = shard_dir(tmp_path, "r2", B, "2/2", vsphere="8.0")
    result = run_cli("merge", str(one), str(two), "--out", str(tmp_path / "m"), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"vddk-conformance: error: cannot merge: vsphere differs: '7.0U3' in {one}, '8.0' in {two}"
    ]


def _run(reports: Path, run_id: str, *extra: str) -> dict[str, Any]:
    result = run_cli(
        "run", "--reports", str(reports), "--run-id", run_id, "-n", "2", "-k", SELECTION, *extra, timeout=300
    )
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    return dict(json.loads((reports / run_id / "summary.json").read_text()))


#: a few fast tests across files and outcomes (passes and an expected failure)
SELECTION = (
    "checker_reports or closing_the_child_releases or cbt_state or phone_home_reaches or special_characters_downloads"
)


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    tests = [{k: v for k, v in t.items() if k != "duration"} for t in summary["tests"]]
    return {
        "tests": tests,
        "totals": summary["totals"],
        "release_notes": summary["release_notes"],
        "vddk_build": summary["vddk_build"],
        "vsphere": summary["vsphere"],
    }


@pytest.mark.slow
def test_a_run_split_in_two_and_merged_equals_the_unsplit_run(tmp_path: Path) -> None:
    whole = _run(tmp_path, "whole")
    first = _run(tmp_path, "s1", "--shard", "1/2")
    second = _run(tmp_path, "s2", "--shard", "2/2")
    assert first["tests"] and second["tests"], "the selection must put tests in both shards"
    assert "xfailed" in whole["totals"] and len(whole["tests"]) >= 10
    result = run_cli("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "merged"), timeout=60)
    assert result.returncode == 0, result.stderr
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert _comparable(merged) == _comparable(whole)
    assert merged["exit_status"] == whole["exit_status"] and merged["shard"] is None
    junit = ET.parse(tmp_path / "merged" / "junit.xml").getroot()
    assert junit.get("tests") == str(len(whole["tests"]))
    results = list((tmp_path / "merged" / "allure-results").glob("*-result.json"))
    assert len(results) == len(list((tmp_path / "whole" / "allure-results").glob("*-result.json")))
    # each worker of each shard wrote its own call trace; all of them are in the merged run
    traces = sorted(p.name for p in (tmp_path / "merged").glob("calls-*.json"))
    written = sorted(p.name for shard in ("s1", "s2") for p in (tmp_path / shard).glob("calls-*.json"))
    assert traces == written and traces, (traces, written)
    # two disjoint shards compared: every test of either is reported missing from the other
    compared = run_cli("compare", str(tmp_path / "s1"), str(tmp_path / "s2"), timeout=60)
    assert (
        f"{len(first['tests'])} only in A" in compared.stdout and f"{len(second['tests'])} only in B" in compared.stdout
    )
    assert "items changed: none" not in compared.stdout


@pytest.mark.parametrize(
    ("shards", "message"),
    [
        ([("r1", A, "1/2")], r"shard\(s\) 2/2 missing; give every shard"),
        ([("r1", A, None), ("r2", B, None)], r"r1 is not a shard of a split run"),
        ([("r1", A, "1/2"), ("r2", B, "2/3")], r"shards of different splits \(/2, /3\)"),
        ([("r1", A, "1/2"), ("r2", B, "1/2")], r"shard 1/2 is given twice"),
    ],
)
def test_only_every_shard_of_one_split_run_merges(
    tmp_path: Path, shards: list[tuple[str, list[tuple[str, str, str]], str | None]], message: str
) -> None:
    dirs = [shard_dir(tmp_path, name, cases, spec) for name, cases, spec in shards]
    with pytest.raises(MergeError, match=message):
        merge_runs(dirs, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_shards_narrowed_differently_are_refused(tmp_path: Path) -> None:
    """Shard 1/2 of the whole run plus shard 2/2 of a -k subset is not the whole run."""
    whole = {"keyword": None, "markers": None, "paths": ["."], "release_notes": []}
    one = shard_dir(tmp_path, "r1", A, "1/2", selection=whole)
    two = shard_dir(tmp_path, "r2", B, "2/2", selection={**whole, "keyword": "nbdssl"})
    with pytest.raises(MergeError, match="selection differs"):
        merge_runs([one, two], tmp_path / "merged")


def test_compare_lists_tests_that_ran_in_one_run_only(tmp_path: Path) -> None:
    one, two = shard_dir(tmp_path, "r1", A, "1/2"), shard_dir(tmp_path, "r2", B, "2/2")
    result = run_cli("compare", str(one), str(two), timeout=60)
    assert result.returncode == 0, result.stderr
    for nodeid, _, _ in A + B:
        assert nodeid in result.stdout
    assert "2 only in A" in result.stdout and "2 only in B" in result.stdout
    assert "C4 (missing in A/missing in B)" in result.stdout


def test_compare_matches_tests_by_permanent_id_across_renames(tmp_path: Path) -> None:
    """A test renamed (function, file or parameter name) between two harness versions keeps its uuid and case id:
    compare reports its outcome change, not one test gone and another new. Hostile twin: without identities the
    same two runs read as two unrelated tests."""
    uuid = "5c21dae9-9ff9-4b09-92d8-5c6ee4989f27"
    old = shard_dir(tmp_path, "old", [("suites/test_rt.py::test_full[nbd-VMFS]", "passed", "C4")], None)
    new = shard_dir(tmp_path, "new", [("suites/test_backup.py::test_full_backup[nbd-VMFS]", "failed", "C4")], None)
    for run, identity in ((old, {"test_uuid": uuid, "test_case": "nbd-VMFS"}), (new, {"test_uuid": uuid})):
        summary = json.loads((run / "summary.json").read_text())
        summary["tests"][0].update(identity, test_case="nbd-VMFS")
        (run / "summary.json").write_text(json.dumps(summary))
    result = run_cli("compare", str(old), str(new), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "regressed" in result.stdout and "only in" not in result.stdout, result.stdout
    for run in (old, new):
        summary = json.loads((run / "summary.json").read_text())
        summary["tests"][0].pop("test_uuid")
        (run / "summary.json").write_text(json.dumps(summary))
    result = run_cli("compare", str(old), str(new), timeout=60)
    assert "1 only in A" in result.stdout and "1 only in B" in result.stdout, result.stdout
