"""The nightly matrix: which (build, vSphere) pairs it runs, and how shards share them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.knowledge.versions import supported_pairs, vddk_supports
from conformance.runs.nightly import NightlyError, pairs, run_pairs
from tests.cli import run_cli


def names(selected: list) -> list[tuple[str, str]]:
    return [(b.name, v.name) for b, v in selected]


def test_all_pairs_are_the_supported_pairs_of_the_version_model() -> None:
    assert sorted(names(pairs())) == sorted((b.name, v.name) for b, v in supported_pairs())


def test_shards_split_the_pairs_without_overlap_or_gap() -> None:
    everything = names(pairs())
    shards = [names(pairs(shard=(k, 3))) for k in (1, 2, 3)]
    assert sorted(p for s in shards for p in s) == sorted(everything)
    assert len({p for s in shards for p in s}) == len(everything)
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1


def test_selectors_narrow_the_pairs_and_unsupported_ones_need_asking() -> None:
    assert names(pairs("7.0.3", "7.0U3,8.0")) == [("7.0.3", "7.0U3"), ("7.0.3", "8.0")]
    assert not vddk_supports("6.5.4", "7.0U3")
    assert names(pairs("6.5.4", "7.0U3", unsupported=True)) == [("6.5.4", "7.0U3")]
    with pytest.raises(NightlyError, match="no supported pair"):
        pairs("6.5.4", "7.0U3")
    with pytest.raises(NightlyError):
        pairs("9.9.9")


def test_the_command_refuses_a_bad_shard_in_one_line() -> None:
    result = run_cli("nightly", "--shard", "3/2", timeout=60)
    assert result.returncode == 2 and "--shard" in result.stderr and result.stderr.strip().count("\n") == 0


def test_a_shard_without_pairs_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    total = len(pairs())
    result = run_cli("nightly", "--shard", f"{total + 9}/{total + 10}", f"--reports={tmp_path}", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"there are only {total} pair(s)" in result.stderr and result.stderr.strip().count("\n") == 0


#: a stand-in for one pair's run: prints progress, writes a summary, and on SIGTERM stops after its "teardown"
FAKE_RUN = """
import json, os, pathlib, signal, sys, time
reports, run_id = pathlib.Path(sys.argv[1]), sys.argv[2]
stopped = []
signal.signal(signal.SIGTERM, lambda *a: stopped.append(1))
print("collected 3 items", flush=True)
for _ in range(int(os.environ.get("FAKE_STEPS", "2"))):
    if stopped:
        break
    time.sleep(0.2)
    print(".", flush=True)
(reports / run_id).mkdir(parents=True)
(reports / run_id / "summary.json").write_text(json.dumps({"totals": {"passed": 3}}))
(reports / run_id / "teardown-done").write_text("ok")
sys.exit(130 if stopped else 0)
"""


def _fake(tmp_path: Path) -> Callable[..., list[str]]:
    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN)
    return lambda build, server, run_id, reports, matrix, workers: [sys.executable, str(script), str(reports), run_id]


def test_the_night_prints_each_pair_s_progress_and_saves_its_summary_after_every_pair(tmp_path: Path) -> None:
    lines: list[str] = []
    selected = pairs("7.0.3", "7.0U3,8.0")
    night = run_pairs(selected, tmp_path / "r", "default", "0", command_for=_fake(tmp_path), echo=lines.append)
    assert night.complete and [r.exit_status for r in night.results] == [0, 0]
    assert "[1/2 VDDK 7.0.3 / vSphere 7.0U3] collected 3 items" in lines
    assert "[2/2 VDDK 7.0.3 / vSphere 8.0] ." in lines
    saved = json.loads(night.path.read_text())
    assert saved["complete"] and saved["pairs"] == 2 and len(saved["results"]) == 2


NIGHT = """
import pathlib, sys
from conformance.runs.nightly import pairs, run_pairs

def command(build, server, run_id, reports, matrix, workers):
    return [sys.executable, {fake!r}, str(reports), run_id]

night = run_pairs(pairs("7.0.3", "7.0U3,8.0"), pathlib.Path(sys.argv[1]), "default", "0", command_for=command)
sys.exit(130 if night.stopped_by else 0)
"""


def test_sigterm_stops_the_night_after_the_running_pair_s_teardown_and_orphans_nothing(tmp_path: Path) -> None:
    """The nightly command as a lab runs it: SIGTERM to the nightly process alone."""
    (tmp_path / "fake_run.py").write_text(FAKE_RUN)
    runner = tmp_path / "night.py"
    runner.write_text(
        NIGHT.format(fake=str(tmp_path / "fake_run.py")),
    )
    reports = tmp_path / "r"
    process = subprocess.Popen(
        [sys.executable, str(runner), str(reports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "FAKE_STEPS": "200"},
    )
    assert process.stdout is not None
    for line in process.stdout:  # wait until the first pair runs
        if "collected 3 items" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = line + process.communicate(timeout=60)[0]
    assert process.returncode == 130, output
    night = json.loads(next(reports.glob("nightly-*.json")).read_text())
    assert night["stopped_by"] == "SIGTERM" and not night["complete"] and len(night["results"]) == 1
    run_dir = Path(night["results"][0]["run_dir"])
    assert (run_dir / "teardown-done").is_file()  # the child finished its teardown before the night ended
    assert "stopped by SIGTERM after 1 of 2 pair(s)" in output
