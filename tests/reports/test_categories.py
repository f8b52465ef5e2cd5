"""Failure categories: the four buckets, first match wins, and Node's RegExp agrees with Python's re."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.reports.categories import (
    CATEGORIES,
    HARNESS_DEFECT,
    KNOWN_ISSUE,
    LAB_PROBLEM,
    PRODUCT_DEFECT,
    categories_json,
    classify,
    write_categories,
)

SAMPLES = [
    ("skipped", "XFAIL K2 known issue: K2 is a known issue of VDDK 7.0.3\n\nAssertionError: assert 0 == 1", "",
     KNOWN_ISSUE),
    ("skipped", "Skipped: F1 not applicable: introduced in 7.0.3", "", None),
    ("failed", "AssertionError: assert {'cleaned': 0} == {'cleaned': 1}", "suites/test_k2.py:97", PRODUCT_DEFECT),
    ("broken", "conformance.vixdisklib.errors.VixError: VIX_E_DISK_FULL (13)", "", PRODUCT_DEFECT),
    ("broken", "pyVmomi.VmomiSupport.vim.fault.InvalidState: (vim.fault.InvalidState) {}", "", PRODUCT_DEFECT),
    ("failed", "[XPASS(strict)] K4 known issue: ...", "", PRODUCT_DEFECT),
    ("broken", "ConnectionRefusedError: [Errno 111] Connection refused", "", LAB_PROBLEM),
    ("broken", "TimeoutError: timed out waiting for task", "", LAB_PROBLEM),
    ("broken", "VixError: operation timed out", "", LAB_PROBLEM),
    ("broken", "vim.fault.NoPermission: Permission to perform this operation was denied", "", LAB_PROBLEM),
    # D4: a failure the run annotated with the data-plane check's line is the lab's, whatever raised it
    ("failed", "VixError: VixDiskLib_Open: VIX_E_FILE_ACCESS_ERROR (13): You do not have access rights to this file",
     "suites/test_roundtrip.py:70: VixError\n---- lab problem ----\nlab problem: data plane unreachable: cannot "
     "connect to ESXi host esx-01 at 10.0.0.1 TCP 902 (Connection refused)", LAB_PROBLEM),
    ("failed", "AssertionError: lab problem: data plane unreachable: cannot connect to ESXi host esx-01", "",
     LAB_PROBLEM),
    ("broken", "TypeError: unsupported operand type(s)", "conformance/sequences/reference.py:120", HARNESS_DEFECT),
    ("broken", "KeyError: 'transport'", "suites/conftest.py:12", HARNESS_DEFECT),
    ("passed", "", "", None),
]  # fmt: skip


@pytest.mark.parametrize(("status", "message", "trace", "expected"), SAMPLES)
def test_classify(status: str, message: str, trace: str, expected: str | None) -> None:
    assert classify(status, message, trace) == expected


def test_categories_json_has_the_four_buckets_in_order(tmp_path: Path) -> None:
    path = write_categories(tmp_path)
    rules = json.loads(path.read_text())
    # the lab-problem bucket has two rules: by message, and by the data-plane line the run adds to a trace (D4)
    assert [r["name"] for r in rules] == [KNOWN_ISSUE, LAB_PROBLEM, LAB_PROBLEM, PRODUCT_DEFECT, HARNESS_DEFECT]
    assert all(r["matchedStatuses"] for r in rules)
    assert json.loads(categories_json()) == rules


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed: cannot compare with RegExp")
def test_node_regexp_gives_the_same_categories_as_python() -> None:
    """Allure 3 matches with JavaScript's RegExp.test, first rule that fires: it must agree with classify()."""
    script = """
    const [rules, samples] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const out = samples.map(([status, message, trace]) => {
      const hit = rules.find(r => r.matchedStatuses.includes(status)
        && (r.messageRegex === undefined || new RegExp(r.messageRegex).test(message))
        && (r.traceRegex === undefined || new RegExp(r.traceRegex).test(trace)));
      return hit ? hit.name : null;
    });
    console.log(JSON.stringify(out));
    """
    rules = [c.as_json() for c in CATEGORIES]
    payload = json.dumps([rules, [s[:3] for s in SAMPLES]])
    done = subprocess.run(["node", "-e", script], input=payload, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [s[3] for s in SAMPLES]
