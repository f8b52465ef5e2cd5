"""Parallel labs: the same selection against one shared server gives the same outcomes with two xdist workers
(which then share the target's VMs, serialised by the cross-process VM locks) as with none."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.runs.compare import compare
from tests.lab.conftest import SimServer, run_cli, write_target

#: round trips that snapshot and restore into the shared target VMs, plus items with their own VMs
SELECTION = "roundtrip and (VMFS or NFS) and random and not thick"


def run(path: Path, server: SimServer, reports: Path, run_id: str, workers: str) -> Path:
    result = run_cli(
        "run", "--target", str(path), "--reports", str(reports), "--run-id", run_id, "-n", workers, "-k", SELECTION,
        env=server.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return reports / run_id


def test_two_workers_on_one_server_give_the_outcomes_of_a_serial_run(tmp_path: Path, sim_server: SimServer) -> None:
    path = write_target(tmp_path / "lab.toml", sim_server.info)
    serial = run(path, sim_server, tmp_path / "reports", "serial", "0")
    parallel = run(path, sim_server, tmp_path / "reports", "parallel", "2")
    tests = json.loads((serial / "summary.json").read_text())["tests"]
    assert len(tests) >= 10 and {t["outcome"] for t in tests} == {"passed"}
    comparison = compare(serial, parallel)
    assert comparison.changes == [] and comparison.only_in_a == [] and comparison.only_in_b == []
