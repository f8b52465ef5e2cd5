"""D4 through a whole run: with the data plane's port closed, the failures carry the data-plane line and the
report categories class them as lab problems, not product defects."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.reports.categories import LAB_PROBLEM, classify
from tests.cli import run_cli


def test_a_run_with_the_nfc_port_closed_fails_as_a_lab_problem(tmp_path: Path) -> None:
    # D4's own test, and a round trip whose Open fails with a VIX error (a product defect, were it not for the line)
    selection = "test_d4 or (test_full_backup_holds and nbdssl-VMFS-random)"
    result = run_cli(
        "run", "--sim-fault=nfc-port-closed", "--release-note=D4,C4", f"--reports={tmp_path}", "--run-id=d4",
        "-k", selection, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "d4" / "summary.json").read_text())
    assert sorted(t["release_note"] for t in summary["tests"]) == ["C4", "D4"], summary["tests"]
    for test in summary["tests"]:
        assert test["outcome"] == "failed", test
        assert test["reason"].startswith("lab problem: data plane unreachable: cannot connect to ESXi hosts"), test
    results = [json.loads(p.read_text()) for p in (tmp_path / "d4" / "allure-results").glob("*-result.json")]
    details = [r["statusDetails"] for r in results if r.get("status") == "failed"]
    assert details and all(classify("failed", d["message"], d.get("trace", "")) == LAB_PROBLEM for d in details)
