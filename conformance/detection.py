"""The detection matrix: proof that each release-note item's suite catches the bug it guards.

For every item, one probe runs that item's tests with the expectations of a build (and server) without the
bug while the simulator behaves like a build (or server) with it; the item counts as detected when at least
one of its tests fails. The probes are data (``conformance/data/detection_plan.toml``), checked against the
catalog when loaded: the expectations must say "pass" for the item's reproducer (or "known issue" for an
item every build has, which the probe then assumes fixed), and the probe must change something.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.catalog import CatalogError, load_catalog
from conformance.versions import VddkBuild, VersionError

__all__ = ["DetectionError", "Probe", "ProbeResult", "load_plan", "markdown_table", "run_matrix", "run_probe"]

DEFAULT_BUILD, DEFAULT_VSPHERE = "7.0.3", "7.0U3"
_KEYS = {"expect", "vsphere", "behave", "sim_vsphere", "backup_app", "assume_fixed", "why"}
FAILED = ("failed", "error")


class DetectionError(ValueError):
    """A broken detection plan; one line naming the item, the key and the fix."""


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

    def describe(self) -> tuple[str, str]:
        """(expectations, behaviour) as the table shows them."""
        expected = f"VDDK {self.expect}, vSphere {self.vsphere}" + (" (assumed fixed)" if self.assume_fixed else "")
        parts = [f"VDDK {self.behave}", f"vSphere {self.sim_vsphere}"]
        if self.backup_app:
            parts.append(f"app {self.backup_app.rsplit(':', 1)[-1]}")
        return expected, ", ".join(parts)

    def run_arguments(self) -> list[str]:
        args = [f"--vddk-build={self.expect}", f"--vsphere={self.vsphere}", f"--release-note={self.item}"]
        args += [f"--sim-behaviour={self.behave}", f"--sim-vsphere={self.sim_vsphere}"]
        if self.backup_app:
            args.append(f"--backup-app={self.backup_app}")
        if self.assume_fixed:
            args.append(f"--assume-fixed={self.item}")
        return args


@dataclass
class ProbeResult:
    probe: Probe
    detected: bool
    caught_by: list[str]
    outcomes: dict[str, int]
    seconds: float
    run_dir: str
    exit_status: int
    other_failures: list[str] = field(default_factory=list)


def load_plan(path: Path | None = None) -> list[Probe]:
    """Every catalog item's probe, in catalog order (validated; see the module docstring)."""
    text = path.read_text() if path else resources.files("conformance.data").joinpath("detection_plan.toml").read_text()
    where = path.name if path else "detection_plan.toml"
    try:
        raw = tomllib.loads(text).get("items", {})
    except tomllib.TOMLDecodeError as exc:
        raise DetectionError(f"{where}: not valid TOML ({exc})") from None
    catalog = load_catalog()
    missing = [i for i in catalog.ids() if i not in raw]
    if missing:
        raise DetectionError(f"{where}: no probe for {', '.join(missing)} (fix: add [items.ID] tables)")
    probes = []
    for item_id in catalog.ids():
        probes.append(_probe(where, item_id, raw[item_id]))
    unknown = sorted(set(raw) - set(catalog.ids()))
    if unknown:
        raise DetectionError(f"{where}: unknown item(s) {', '.join(unknown)} (fix: use catalog ids)")
    return probes


def _probe(where: str, item_id: str, table: dict[str, Any]) -> Probe:
    at = f"{where}: items.{item_id}"
    extra = sorted(set(table) - _KEYS)
    if extra:
        raise DetectionError(f"{at}: unknown key {extra[0]!r} (fix: use {', '.join(sorted(_KEYS))})")
    if not str(table.get("why", "")).strip():
        raise DetectionError(f'{at}: missing why (fix: say what the probe provokes, why = "...")')
    expect, vsphere = str(table.get("expect", DEFAULT_BUILD)), str(table.get("vsphere", DEFAULT_VSPHERE))
    probe = Probe(
        item=item_id,
        why=str(table["why"]),
        expect=expect,
        vsphere=vsphere,
        behave=str(table.get("behave", expect)),
        sim_vsphere=str(table.get("sim_vsphere", vsphere)),
        backup_app=table.get("backup_app"),
        assume_fixed=bool(table.get("assume_fixed", False)),
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


def run_probe(probe: Probe, reports: Path, workers: str, suites: Path | None = None) -> ProbeResult:
    """Run the item's tests under the probe (a `vddk-conformance run` child process) and read its summary."""
    run_id = f"detect-{probe.item}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [sys.executable, "-m", "conformance.cli", "run", f"--reports={reports}", f"--run-id={run_id}"]
    command += ["-n", workers, *probe.run_arguments()]
    if suites is not None:
        command.append(f"--suites={suites}")
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    summary_path = reports / run_id / "summary.json"
    if not summary_path.is_file():
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DetectionError(f"probe {probe.item}: the run wrote no summary (exit {completed.returncode}): {tail[0]}")
    summary = json.loads(summary_path.read_text())
    tests = summary.get("tests", [])
    mine = [t for t in tests if t.get("release_note") == probe.item]
    caught = sorted(t["nodeid"] for t in mine if t.get("outcome") in FAILED)
    others = sorted(t["nodeid"] for t in tests if t.get("release_note") != probe.item and t.get("outcome") in FAILED)
    outcomes: dict[str, int] = {}
    for test in mine:
        outcomes[test["outcome"]] = outcomes.get(test["outcome"], 0) + 1
    return ProbeResult(
        probe, bool(caught), caught, outcomes, seconds, str(reports / run_id), completed.returncode, others
    )


def run_matrix(probes: list[Probe], reports: Path, workers: str, suites: Path | None = None) -> list[ProbeResult]:
    return [run_probe(p, reports, workers, suites) for p in probes]


def short_test_name(nodeid: str) -> str:
    """'suites/test_r5_disk_full.py::test_x[nbd]' -> 'test_r5_disk_full::test_x[nbd]'."""
    path, _, name = nodeid.partition("::")
    return f"{Path(path).stem}::{name}" if name else nodeid


def markdown_table(results: list[ProbeResult]) -> str:
    lines = [
        "| item | expectations (no bug) | behaviour (with the bug) | detected | tests that caught it |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        expected, behaved = r.probe.describe()
        caught = "<br>".join(short_test_name(n) for n in r.caught_by) or "—"
        lines.append(f"| {r.probe.item} | {expected} | {behaved} | {'yes' if r.detected else '**no**'} | {caught} |")
    detected = sum(r.detected for r in results)
    lines.append("")
    lines.append(f"{detected} of {len(results)} items detected.")
    return "\n".join(lines) + "\n"


def write_results(results: list[ProbeResult], out: Path, seconds: float) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "detected": sum(r.detected for r in results),
        "items": len(results),
        "seconds": round(seconds, 1),
        "results": [asdict(r) for r in results],
    }
    json_path, md_path = out / "detection.json", out / "detection.md"
    json_path.write_text(json.dumps(data, indent=2))
    md_path.write_text(markdown_table(results) + f"\nWall time: {seconds:.0f} s.\n")
    return json_path, md_path
