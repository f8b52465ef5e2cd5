"""Reading finished runs: each RUN_DIR's summary.json, checked once so every later step can trust it.

Why: the report command takes directories from the user; a wrong one must give one line naming the directory and
what is missing, never a traceback from deep inside the page builder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError
from conformance.lab.resources import run_id_problem

#: outcomes a summary.json may record per test (see conformance/plugin/reporting.py)
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
_REQUIRED = ("run_id", "vddk_build", "vsphere", "tests")


class ReportError(InputError):
    """Bad input to the report command; always one line naming the directory or file and the fix."""


@dataclass(frozen=True)
class Run:
    """One run directory as the report sees it: where it is, its summary and its allure-results (if any)."""

    path: Path
    summary: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.summary["run_id"])

    @property
    def build(self) -> str:
        return str(self.summary["vddk_build"])

    @property
    def vsphere(self) -> str:
        return str(self.summary["vsphere"])

    @property
    def label(self) -> str:
        """The column heading: the two versions that decide every expectation."""
        return f"VDDK {self.build} · vSphere {self.vsphere}"

    @property
    def tests(self) -> list[dict[str, Any]]:
        return list(self.summary["tests"])

    @property
    def allure_results(self) -> Path | None:
        path = self.path / "allure-results"
        return path if path.is_dir() else None


def load_run(path: Path) -> Run:
    """Read and check ``path/summary.json``; a ReportError says which directory and what is wrong."""
    if not path.is_dir():
        raise ReportError(f"{path}: no such run directory (give reports/<run-id> folders written by a run)")
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise ReportError(f"{path}: no summary.json (is it a reports/<run-id> folder of a finished run?)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{summary_path}: not valid JSON ({exc}); rerun the run or remove the folder") from None
    if not isinstance(summary, dict):
        raise ReportError(f"{summary_path}: expected a JSON object, found {type(summary).__name__}")
    missing = [key for key in _REQUIRED if key not in summary]
    if missing:
        raise ReportError(f"{summary_path}: missing {', '.join(missing)} (written by an older harness? rerun it)")
    problem = run_id_problem(summary["run_id"])
    if problem:
        raise ReportError(f"{summary_path}: {problem}; the file was altered or is not a run's summary")
    if not isinstance(summary["tests"], list):
        raise ReportError(f"{summary_path}: 'tests' must be a list of test results")
    for position, test in enumerate(summary["tests"], start=1):
        if not isinstance(test, dict) or not isinstance(test.get("nodeid"), str):
            raise ReportError(f"{summary_path}: test #{position} has no nodeid")
        if test.get("outcome") not in OUTCOMES:
            raise ReportError(f"{summary_path}: test {test['nodeid']}: unknown outcome {test.get('outcome')!r}")
    return Run(path, summary)


def load_runs(paths: Sequence[Path]) -> list[Run]:
    """Every run, in the order given (the matrix columns follow it); the same run twice is an error."""
    if not paths:
        raise ReportError("no RUN_DIR given: name at least one reports/<run-id> folder")
    runs = [load_run(Path(p)) for p in paths]
    seen: dict[str, Path] = {}
    for run in runs:
        if run.run_id in seen:
            raise ReportError(f"{run.path}: run {run.run_id} is given twice (also {seen[run.run_id]})")
        seen[run.run_id] = run.path
    return runs
