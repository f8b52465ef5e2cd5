"""The detection matrix: proof that each release-note item's suite catches the bug it guards.

Every row of the plan is a probe: a `vddk-conformance run` of one item's tests whose expectations are those of a
build (and server) without the bug while the simulator behaves like one with it, or while a deliberately wrong
backup application runs. Each probe is paired with a baseline: the same selection with behaviour and
expectations agreeing (the reference application). A test detects only when it passed in the baseline and failed
in the probe: a test that always fails or errors proves nothing, and an error (set-up or tear-down) is never
detection. A row whose baseline is not green is "baseline broken", never detected. Baselines with identical
arguments run once. The plan (``conformance/data/detection_plan.toml``) is loaded and checked against the
catalog by ``conformance.knowledge.detection_plan``: the expectations must say "pass" for the item (or "known
issue" for an item every build has, which the probe then assumes fixed, its baseline playing it fixed with
``--sim-fixed``),
and the probe must change something.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance.knowledge.detection_plan import DetectionError, Probe, load_plan, select_probes

__all__ = [
    "Baseline",
    "DetectionError",
    "Probe",
    "ProbeResult",
    "judge",
    "load_plan",
    "markdown_table",
    "run_matrix",
    "run_probe",
    "select_probes",
]

#: outcomes that break a baseline: anything the item's tests may not do when behaviour matches expectations
_NOT_GREEN = ("failed", "error", "xpassed")


@dataclass
class Baseline:
    """The item's tests with behaviour and expectations agreeing: green when every one passed or was skipped."""

    arguments: list[str]
    outcomes: dict[str, str]  # nodeid -> outcome, the item's tests only
    seconds: float
    run_dir: str
    problem: str | None = None

    @property
    def passed(self) -> int:
        return sum(o == "passed" for o in self.outcomes.values())

    @property
    def broken_by(self) -> list[str]:
        return sorted(n for n, o in self.outcomes.items() if o in _NOT_GREEN)

    @property
    def green(self) -> bool:
        return self.problem is None and self.passed > 0 and not self.broken_by


@dataclass
class ProbeResult:
    probe: Probe
    baseline: Baseline
    outcomes: dict[str, str]  # nodeid -> outcome in the probe, the item's tests only
    seconds: float
    run_dir: str
    exit_status: int
    problem: str | None = None  # the probe could not run (one line)
    other_failures: list[str] = field(default_factory=list)

    @property
    def caught_by(self) -> list[str]:
        """Tests that passed in a green baseline and failed in the probe (an error is never detection)."""
        if not self.baseline.green:
            return []
        return sorted(
            n for n, o in self.outcomes.items() if o == "failed" and self.baseline.outcomes.get(n) == "passed"
        )

    @property
    def errors(self) -> list[str]:
        return sorted(n for n, o in self.outcomes.items() if o == "error")

    @property
    def detected(self) -> bool:
        return self.problem is None and bool(self.caught_by)

    @property
    def verdict(self) -> str:
        if self.problem or self.baseline.problem:
            return "not run"
        if not self.baseline.green:
            return "baseline broken"
        return "detected" if self.caught_by else "not detected"

    def progress(self) -> str:
        """One line for the console while the matrix runs."""
        base, note = self.baseline, self.problem or self.baseline.problem or f"{len(self.caught_by)} test(s) caught it"
        return (
            f"{self.probe.id}: {self.verdict} (baseline {base.passed}/{len(base.outcomes)} passed, "
            f"{base.seconds:.0f} s; {note}; {len(self.errors)} error(s), {self.seconds:.0f} s)"
        )


def app_problem(spec: str | None) -> str | None:
    """Why the backup application cannot be loaded (one line), checked before its probe runs."""
    if not spec:
        return None
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"backup_app {spec}: cannot import {module_name} ({exc})"
    if not isinstance(getattr(module, class_name, None), type):
        return f"backup_app {spec}: {module_name} has no class {class_name}"
    return None


def _child_run(
    arguments: list[str], name: str, reports: Path, workers: str, suites: Path | None
) -> tuple[list[dict[str, Any]], float, str, int, str | None]:
    """One `vddk-conformance run` child: (tests of its summary, seconds, run dir, exit status, problem)."""
    run_id = f"detect-{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    command = [sys.executable, "-m", "conformance.cli", "run", f"--reports={reports}", f"--run-id={run_id}"]
    command += ["-n", workers, *arguments]
    if suites is not None:
        command.append(f"--suites={suites}")
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    summary_path = reports / run_id / "summary.json"
    if not summary_path.is_file():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        problem = f"the run wrote no summary (exit {completed.returncode}): {tail[0]}"
        return [], seconds, str(reports / run_id), completed.returncode, problem
    tests = json.loads(summary_path.read_text()).get("tests", [])
    return tests, seconds, str(reports / run_id), completed.returncode, None


def _outcomes(tests: list[dict[str, Any]], item: str) -> dict[str, str]:
    """nodeid -> outcome of the item's tests; of every test for a whole-run row (item "")."""
    return {t["nodeid"]: str(t.get("outcome")) for t in tests if not item or t.get("release_note") == item}


def run_baseline(probe: Probe, reports: Path, workers: str, suites: Path | None = None) -> Baseline:
    arguments = probe.baseline().run_arguments()
    name = f"{probe.item or 'default'}-baseline"
    tests, seconds, run_dir, _, problem = _child_run(arguments, name, reports, workers, suites)
    return Baseline(arguments, _outcomes(tests, probe.item), seconds, run_dir, problem)


def run_probe(
    probe: Probe,
    reports: Path,
    workers: str,
    suites: Path | None = None,
    baselines: dict[tuple[str, ...], Baseline] | None = None,
) -> ProbeResult:
    """The probe's run and its baseline's (taken from `baselines` when one with the same arguments ran)."""
    problem = app_problem(probe.backup_app)
    if problem:  # nothing runs: the row fails in one line and the matrix goes on
        skipped = Baseline(probe.baseline().run_arguments(), {}, 0.0, "", "not run: the probe cannot start")
        return ProbeResult(probe, skipped, {}, 0.0, "", 2, problem)
    baselines = {} if baselines is None else baselines
    key = tuple(probe.baseline().run_arguments())
    if key not in baselines:
        baselines[key] = run_baseline(probe, reports, workers, suites)
    baseline = baselines[key]
    tests, seconds, run_dir, status, problem = _child_run(probe.run_arguments(), probe.id, reports, workers, suites)
    others = sorted(
        t["nodeid"]
        for t in tests
        if probe.item and t.get("release_note") != probe.item and t.get("outcome") in ("failed", "error")
    )
    return ProbeResult(probe, baseline, _outcomes(tests, probe.item), seconds, run_dir, status, problem, others)


def judge(probe: Probe, baseline: dict[str, str], outcomes: dict[str, str]) -> ProbeResult:
    """A result from outcomes alone (nodeid -> outcome of the item's tests in the baseline and the probe)."""
    return ProbeResult(probe, Baseline(probe.baseline().run_arguments(), baseline, 0.0, ""), outcomes, 0.0, "", 0)


def run_matrix(probes: list[Probe], reports: Path, workers: str, suites: Path | None = None) -> list[ProbeResult]:
    baselines: dict[tuple[str, ...], Baseline] = {}
    return [run_probe(p, reports, workers, suites, baselines) for p in probes]


def short_test_name(nodeid: str) -> str:
    """'suites/test_r5_disk_full.py::test_x[nbd]' -> 'test_r5_disk_full::test_x[nbd]'."""
    path, _, name = nodeid.partition("::")
    return f"{Path(path).stem}::{name}" if name else nodeid


def _names(nodeids: list[str]) -> str:
    return "<br>".join(short_test_name(n) for n in nodeids) or "—"


def markdown_table(results: list[ProbeResult]) -> str:
    lines = [
        "| item | expectations (no bug) | behaviour (with the bug) | baseline | detected | tests that caught it "
        "| errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        expected, behaved = r.probe.describe()
        row = r.probe.id if r.probe.id == r.probe.item or r.probe.whole_run else f"{r.probe.id} ({r.probe.item})"
        base = f"{r.baseline.passed}/{len(r.baseline.outcomes)}"
        if r.baseline.broken_by:
            base += f" (broken: {_names(r.baseline.broken_by)})"
        verdict = "yes" if r.detected else f"**{'no' if r.verdict == 'not detected' else r.verdict}**"
        caught = _names(r.caught_by)
        if r.problem or r.baseline.problem:
            caught = str(r.problem or f"baseline: {r.baseline.problem}")
        lines.append(f"| {row} | {expected} | {behaved} | {base} | {verdict} | {caught} | {_names(r.errors)} |")
    detected = sum(r.detected for r in results)
    lines += ["", f"{detected} of {len(results)} probes detected (a test detects only if it passed in the baseline)."]
    return "\n".join(lines) + "\n"


def as_json(result: ProbeResult) -> dict[str, Any]:
    data = asdict(result)
    data["baseline"].update(passed=result.baseline.passed, green=result.baseline.green)
    data.update(id=result.probe.id, verdict=result.verdict, detected=result.detected)
    data.update(caught_by=result.caught_by, errors=result.errors)
    return data


def write_results(results: list[ProbeResult], out: Path, seconds: float) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "detected": sum(r.detected for r in results),
        "probes": len(results),
        "seconds": round(seconds, 1),
        "results": [as_json(r) for r in results],
    }
    json_path, md_path = out / "detection.json", out / "detection.md"
    json_path.write_text(json.dumps(data, indent=2))
    md_path.write_text(markdown_table(results) + f"\nWall time: {seconds:.0f} s.\n")
    return json_path, md_path
