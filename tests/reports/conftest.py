"""Fake run directories (summary.json plus a few allure-results) so the report tests never run the suites."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SECRET = "s3cr3t-Passw0rd"  # planted in a fake summary's target: no report may show it

#: (nodeid, release note, outcome, expectation, reason, metrics)
TESTS_703: list[tuple[str, str | None, str, str | None, str, dict[str, Any] | None]] = [
    ("suites/test_f1.py::test_rate[nbd]", "F1", "passed", "pass", "",
     {"unit": "MB/s", "transport": "nbd", "disk_latency_s": 0.005, "1x4": 40.0, "16x4": 310.0}),
    ("suites/test_f1.py::test_rate[nbdssl]", "F1", "passed", "pass", "",
     {"unit": "MB/s", "transport": "nbdssl", "disk_latency_s": 0.005, "1x4": 38.5, "16x4": 300.25}),
    ("suites/test_k4.py::test_hotadd[hotadd]", "K4", "xfailed", "known_issue", "K4 known issue: ...", None),
    ("suites/test_k4.py::test_workaround", "K4", "passed", "pass", "", None),
    ("suites/test_r5.py::test_full[nbd]", "R5", "failed", "pass", "VixError: 13 <disk full>", None),
    ("suites/test_r5.py::test_full[nbdssl]", "R5", "passed", "pass", "", None),
    ("suites/test_c4.py::test_roundtrip", "C4", "passed", "pass", "", None),
    ("suites/test_helpers.py::test_unlinked", None, "passed", None, "", None),
]  # fmt: skip
TESTS_702: list[tuple[str, str | None, str, str | None, str, dict[str, Any] | None]] = [
    ("suites/test_f1.py::test_rate[nbd]", "F1", "skipped", "not_applicable", "F1 not applicable: ...", None),
    ("suites/test_k4.py::test_hotadd[hotadd]", "K4", "xfailed", "known_issue", "K4 known issue: ...", None),
    ("suites/test_r5.py::test_full[nbd]", "R5", "xfailed", "known_issue", "R5 known issue", None),
    ("suites/test_c4.py::test_roundtrip", "C4", "passed", "pass", "", None),
]


def _allure_result(nodeid: str, item: str | None, outcome: str, build: str, vsphere: str) -> dict[str, Any]:
    status = {"passed": "passed", "failed": "failed", "xfailed": "skipped", "skipped": "skipped"}[outcome]
    result: dict[str, Any] = {
        "name": nodeid.split("::")[-1],
        "fullName": nodeid.replace("/", ".").replace(".py::", "#"),
        "status": status,
        "uuid": str(uuid.uuid4()),
        "historyId": uuid.uuid5(uuid.NAMESPACE_URL, nodeid).hex,
        "testCaseId": uuid.uuid5(uuid.NAMESPACE_URL, nodeid).hex,
        "start": 1795700000000,
        "stop": 1795700000500,
        "labels": [{"name": "suite", "value": nodeid.split("::")[0]}],
        "links": [],
        "parameters": [],
    }
    if item:
        result["links"].append({"type": "link", "url": f"vddk-7.0.3-release-notes#{item}", "name": item})
    if outcome == "failed":
        result["statusDetails"] = {"message": "conformance.vixdisklib.errors.VixError: 13", "trace": "..."}
    if outcome == "xfailed":
        result["statusDetails"] = {"message": f"XFAIL {item} known issue: expected", "trace": ""}
    return result


def write_run(root: Path, run_id: str, build: str, vsphere: str,
              tests: list[tuple[str, str | None, str, str | None, str, dict[str, Any] | None]],
              allure: bool = True) -> Path:  # fmt: skip
    """A reports/<run-id> folder as the plugin writes it, with a planted secret in the target."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    entries = []
    for nodeid, item, outcome, expectation, reason, metrics in tests:
        entry: dict[str, Any] = {"nodeid": nodeid, "duration": 0.5, "outcome": outcome,
                                 "release_note": item, "expectation": expectation}  # fmt: skip
        if reason:
            entry["reason"] = reason
        if metrics:
            entry["metrics"] = metrics
        entries.append(entry)
    summary = {
        "run_id": run_id, "vddk_build": build, "sim_behaviour": build, "vsphere": vsphere, "backup_app": "reference",
        "matrix": "default", "shard": None, "started": 1795700000.0, "finished": 1795700080.0, "exit_status": 1,
        "target": {"name": "sim", "user": "administrator@vsphere.local", "password": SECRET},
        "totals": {}, "release_notes": {}, "tests": entries,
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if allure:
        results = run_dir / "allure-results"
        results.mkdir()
        for nodeid, item, outcome, *_ in tests:
            data = _allure_result(nodeid, item, outcome, build, vsphere)
            (results / f"{data['uuid']}-result.json").write_text(json.dumps(data))
        (results / "environment.properties").write_text(f"vddk.build={build}\nvsphere={vsphere}\n")
    return run_dir


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    """A 7.0.3 run and a 7.0.2 run, in that order."""
    return [
        write_run(tmp_path / "reports", "run-703", "7.0.3", "7.0U3", TESTS_703),
        write_run(tmp_path / "reports", "run-702", "7.0.2", "7.0U3", TESTS_702),
    ]


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    return lambda run_id, build="7.0.3", vsphere="7.0U3", tests=TESTS_703, allure=True: write_run(
        tmp_path / "reports", run_id, build, vsphere, tests, allure
    )
