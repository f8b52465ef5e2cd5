"""The detection matrix: proof that each release-note item's suite catches the bug it guards.

Every row of the plan is a probe: a `vddk-conformance run` of one item's tests whose expectations are those of a
build (and server) without the bug while the simulator behaves like one with it, or while a deliberately wrong
backup application runs. Each probe is paired with a baseline: the same selection with behaviour and
expectations agreeing (the reference application). A test detects only when it passed in the baseline and failed
in the probe: a test that always fails or errors proves nothing, and an error (set-up or tear-down) is never
detection. A row whose baseline is not green is "baseline broken", never detected. Baselines with identical
arguments run once. The plan (``conformance/data/detection_plan.toml``) is checked against the catalog when
loaded: the expectations must say "pass" for the item (or "known issue" for an item every build has, which the
probe then assumes fixed), and the probe must change something.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.catalog import CatalogError, load_catalog
from conformance.versions import VddkBuild, VersionError

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
]

DEFAULT_BUILD, DEFAULT_VSPHERE = "7.0.3", "7.0U3"
_KEYS = {"expect", "vsphere", "behave", "sim_vsphere", "backup_app", "assume_fixed", "select", "why"}
_PROBE_KEYS = {"release_note", "backup_app", "select", "why"}
_APP_SPEC = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*")
#: outcomes that break a baseline: anything the item's tests may not do when behaviour matches expectations
_NOT_GREEN = ("failed", "error", "xpassed")


class DetectionError(ValueError):
    """A broken detection plan; one line naming the row, the key and the fix."""


@dataclass(frozen=True)
class Probe:
    item: str
    why: str
    expect: str = DEFAULT_BUILD
    vsphere: str = DEFAULT_VSPHERE
    behave: str = DEFAULT_BUILD
    sim_vsphere: str = DEFAULT_VSPHERE
    backup_app: str | None = None
    assume_fixed: bool = False
    #: the row id when it is not the release-note id (probes of lying applications, e.g. APP-restores-nothing)
    probe_id: str | None = None
    #: a pytest -k expression narrowing the item's tests (probe and baseline alike), for items with many cases
    select: str | None = None

    @property
    def id(self) -> str:
        return self.probe_id or self.item

    def describe(self) -> tuple[str, str]:
        """(expectations, behaviour) as the table shows them."""
        expected = f"VDDK {self.expect}, vSphere {self.vsphere}" + (" (assumed fixed)" if self.assume_fixed else "")
        parts = [f"VDDK {self.behave}", f"vSphere {self.sim_vsphere}"]
        if self.backup_app:
            parts.append(f"app {self.backup_app.rsplit(':', 1)[-1]}")
        return expected, ", ".join(parts)

    def baseline(self) -> Probe:
        """The same selection with behaviour agreeing with expectations and the reference application."""
        return replace(self, behave=self.expect, sim_vsphere=self.vsphere, backup_app=None, probe_id=None)

    def run_arguments(self) -> list[str]:
        args = [f"--vddk-build={self.expect}", f"--vsphere={self.vsphere}", f"--release-note={self.item}"]
        args += [f"--sim-behaviour={self.behave}", f"--sim-vsphere={self.sim_vsphere}"]
        if self.backup_app:
            args.append(f"--backup-app={self.backup_app}")
        if self.assume_fixed:
            args.append(f"--assume-fixed={self.item}")
        if self.select:
            args += ["-k", self.select]
        return args


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


def select_probes(probes: list[Probe], items: str | None) -> list[Probe]:
    """The rows `--items` names (item or probe ids, any case), in plan order; all without it."""
    if not items:
        return probes
    wanted = [i.strip() for i in items.split(",") if i.strip()]
    known = {p.id.lower() for p in probes}
    unknown = [i for i in wanted if i.lower() not in known]
    if unknown:
        raise DetectionError(f"--items: unknown id(s) {', '.join(unknown)} (ids: {', '.join(p.id for p in probes)})")
    return [p for p in probes if p.id.lower() in {i.lower() for i in wanted}]


def load_plan(path: Path | None = None) -> list[Probe]:
    """Every catalog item's probe in catalog order, then the other probes in file order (validated)."""
    text = path.read_text() if path else resources.files("conformance.data").joinpath("detection_plan.toml").read_text()
    where = path.name if path else "detection_plan.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DetectionError(f"{where}: not valid TOML ({exc})") from None
    raw, extra = data.get("items", {}), data.get("probes", {})
    catalog = load_catalog()
    missing = [i for i in catalog.ids() if i not in raw]
    if missing:
        raise DetectionError(f"{where}: no probe for {', '.join(missing)} (fix: add [items.ID] tables)")
    unknown = sorted(set(raw) - set(catalog.ids()))
    if unknown:
        raise DetectionError(f"{where}: unknown item(s) {', '.join(unknown)} (fix: use catalog ids)")
    probes = [_probe(f"{where}: items.{item_id}", item_id, raw[item_id]) for item_id in catalog.ids()]
    for probe_id, table in extra.items():
        probes.append(_app_probe(f"{where}: probes.{probe_id}", probe_id, table))
    return probes


def _app_probe(at: str, probe_id: str, table: dict[str, Any]) -> Probe:
    """A lying backup application against one item's tests, expectations and behaviour those of 7.0.3."""
    extra = sorted(set(table) - _PROBE_KEYS)
    if extra:
        raise DetectionError(f"{at}: unknown key {extra[0]!r} (fix: use {', '.join(sorted(_PROBE_KEYS))})")
    if probe_id.upper() in load_catalog().ids():
        raise DetectionError(f"{at}: a release-note id is not a probe id (fix: name it e.g. APP-{probe_id.lower()})")
    for key in ("release_note", "backup_app"):
        if not str(table.get(key, "")).strip():
            raise DetectionError(f'{at}: missing {key} (fix: {key} = "...")')
    item_id = str(table["release_note"])
    if item_id not in load_catalog().ids():
        raise DetectionError(f"{at}: release_note {item_id!r} is not a catalog id")
    keys = {k: table[k] for k in ("backup_app", "why", "select") if k in table}
    return _probe(at, item_id, {"why": "", **keys}, probe_id)


def _probe(at: str, item_id: str, table: dict[str, Any], probe_id: str | None = None) -> Probe:
    extra = sorted(set(table) - _KEYS)
    if extra:
        raise DetectionError(f"{at}: unknown key {extra[0]!r} (fix: use {', '.join(sorted(_KEYS))})")
    if not str(table.get("why", "")).strip():
        raise DetectionError(f'{at}: missing why (fix: say what the probe provokes, why = "...")')
    app = table.get("backup_app")
    if app is not None and not (isinstance(app, str) and _APP_SPEC.fullmatch(app)):
        raise DetectionError(f"{at}: backup_app {app!r} is not module:Class (fix: e.g. mypkg.mutants:LiesAboutX)")
    select = table.get("select")
    if select is not None and not (isinstance(select, str) and select.strip()):
        raise DetectionError(f'{at}: select must be a pytest -k expression (fix: e.g. select = "nbdssl-VMFS")')
    expect, vsphere = str(table.get("expect", DEFAULT_BUILD)), str(table.get("vsphere", DEFAULT_VSPHERE))
    probe = Probe(
        item=item_id,
        why=str(table["why"]),
        expect=expect,
        vsphere=vsphere,
        behave=str(table.get("behave", expect)),
        sim_vsphere=str(table.get("sim_vsphere", vsphere)),
        backup_app=app,
        assume_fixed=bool(table.get("assume_fixed", False)),
        probe_id=probe_id,
        select=select,
    )
    unchanged = (probe.behave, probe.sim_vsphere, probe.backup_app) == (probe.expect, probe.vsphere, None)
    if unchanged and not probe.assume_fixed:
        raise DetectionError(f"{at}: the probe changes nothing (fix: set behave, sim_vsphere or backup_app)")
    item = load_catalog().get(item_id)
    platform = item.platforms[0] if item.platforms else "linux"
    try:
        VddkBuild.parse(probe.behave)
        verdict = load_catalog().expectation(item_id, probe.expect, probe.vsphere, platform=platform)
    except (CatalogError, VersionError) as exc:
        raise DetectionError(f"{at}: {exc}") from None
    wanted = "known_issue" if probe.assume_fixed else "pass"
    if verdict.outcome != wanted:
        raise DetectionError(
            f"{at}: expectations of VDDK {probe.expect} with {probe.vsphere} say {verdict.outcome}, not {wanted} "
            f"({verdict.reason}) (fix: pick a build without the bug, or assume_fixed for an issue of every build)"
        )
    return probe


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
    return {t["nodeid"]: str(t.get("outcome")) for t in tests if t.get("release_note") == item}


def run_baseline(probe: Probe, reports: Path, workers: str, suites: Path | None = None) -> Baseline:
    arguments = probe.baseline().run_arguments()
    tests, seconds, run_dir, _, problem = _child_run(arguments, f"{probe.item}-baseline", reports, workers, suites)
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
        t["nodeid"] for t in tests if t.get("release_note") != probe.item and t.get("outcome") in ("failed", "error")
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
        row = r.probe.id if r.probe.id == r.probe.item else f"{r.probe.id} ({r.probe.item})"
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
