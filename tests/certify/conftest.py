"""Fabricated run directories and profiles, so most certification tests need no conformance run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.runs.merge import recount

SMALL_PROFILE = """\
[profile]
id = "test-small"
version = 1
status = "approved"
title = "small test profile"
vddk_build = "7.0.3"
vsphere_min = "7.0"
vsphere_max = "8.0"

[[test]]
id = "RT-001"

[[test]]
id = "K2-001"
known_issue = "allowed"

[[test]]
id = "K4-001"
known_issue = "not_allowed"

[[test]]
id = "R5-001"
status = "advisory"

[[test]]
id = "C3-001"
status = "platform"
"""

#: (nodeid, test id, outcome, release note) of a run that satisfies SMALL_PROFILE (a failing advisory test and a
#: failing platform check do not decide it)
GOOD_CASES: list[tuple[str, str, str, str]] = [
    ("suites/test_roundtrip.py::test_full[nbd]", "RT-001", "passed", "C4"),
    ("suites/test_roundtrip.py::test_full[nbdssl]", "RT-001", "passed", "C4"),
    ("suites/test_k2.py::test_default_tmp", "K2-001", "xfailed", "K2"),
    ("suites/test_k4.py::test_vsan[hotadd]", "K4-001", "passed", "K4"),
    ("suites/test_r5.py::test_full", "R5-001", "failed", "R5"),
    ("suites/test_c3.py::test_attach", "C3-001", "failed", "C3"),
]
#: the fabricated runs' platform checks (summary.json's verdict_kind); every other test is a product test
PLATFORM_IDS = {"C3-001"}
SKIP_REASON = "target lab does not offer physical-proxy"


#: what JUnit and Allure show for each summary outcome
JUNIT_TAG = {"failed": "<failure/>", "error": "<error/>", "skipped": "<skipped/>", "xfailed": "<skipped/>"}
ALLURE_STATUS = {"passed": "passed", "failed": "failed", "error": "broken", "skipped": "skipped", "xfailed": "skipped",
                 "xpassed": "passed"}  # fmt: skip


def write_reports(run_dir: Path, tests: list[dict[str, Any]]) -> None:
    """junit.xml and allure-results that agree with summary.json's tests, as a run writes them."""
    cases = []
    for position, test in enumerate(tests):
        path, _, name = str(test["nodeid"]).partition("::")
        module = path.removesuffix(".py").replace("/", ".")
        cases.append(f'<testcase classname="{module}" name="{name}">{JUNIT_TAG.get(test["outcome"], "")}</testcase>')
        result = {"name": name, "fullName": f"{module}#{name.split('[', 1)[0]}",
                  "status": ALLURE_STATUS[test["outcome"]]}  # fmt: skip
        file = "abc-result.json" if position == 0 else f"r{position}-result.json"
        (run_dir / "allure-results" / file).write_text(json.dumps(result))
    (run_dir / "junit.xml").write_text(
        f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{len(tests)}">{"".join(cases)}'
        "</testsuite></testsuites>"
    )
    (run_dir / "allure-results" / "environment.properties").write_text("vddk.build=7.0.3\nvsphere=7.0U3\n")


def write_run(
    root: Path, cases: list[tuple[str, str, str, str]], extra_files: dict[str, str] | None = None, **summary: Any
) -> Path:
    """A reports/<run-id>/ directory as a certification run writes it."""
    run_dir = root / "run"
    (run_dir / "allure-results").mkdir(parents=True)
    tests = [
        {
            "nodeid": n,
            "duration": 0.1,
            "outcome": o,
            "release_note": r,
            "expectation": "pass",
            "verdict_kind": "platform" if t in PLATFORM_IDS else "product",
            "reason": SKIP_REASON if o == "skipped" else "",
        }
        for n, t, o, r in sorted(cases)
    ]
    totals, items = recount(tests)
    data = {
        "run_id": "certify-1",
        "vddk_build": "7.0.3",
        "sim_behaviour": "7.0.3",
        "vsphere": "7.0U3",
        "backup_app": "reference",
        "matrix": "default",
        "shard": None,
        "target": {"name": "sim (vSphere 7.0U3)", "vsphere": "7.0U3", "transports": ["nbd", "hotadd"]},
        "started": 1.0,
        "finished": 2.0,
        "exit_status": 0,
        "totals": totals,
        "release_notes": items,
        "tests": tests,
    }
    data.update(summary)
    (run_dir / "summary.json").write_text(json.dumps(data))
    write_reports(run_dir, tests)
    mapping = {n: t for n, t, _, _ in cases}
    (run_dir / "certification-tests.json").write_text(json.dumps({"profile": "test-small-v1", "tests": mapping}))
    for name, text in (extra_files or {}).items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    return run_dir


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_PROFILE)
    return path


@pytest.fixture
def product_file(tmp_path: Path) -> Path:
    path = tmp_path / "product.yaml"
    path.write_text('name: Acme Backup\nversion: "2.10"\nvendor: Acme Corp\n')
    return path


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    return lambda cases=GOOD_CASES, **kw: write_run(tmp_path, cases, **kw)
