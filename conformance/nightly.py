"""The nightly matrix: one conformance run per (VDDK build, vSphere version) pair, each with its own
expectations, the simulator behaving as that build and presenting that server.

Pairs are every supported pair of the version model (or the builds and versions asked for), in a fixed order;
``--shard K/N`` keeps every N-th pair so that N CI runners share a night between them, each writing its own
run directories. The report command then puts all of them on one matrix page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from conformance.versions import VddkBuild, VersionError, VsphereVersion, match_builds, match_vsphere, vddk_supports

__all__ = ["NightlyError", "PairResult", "pairs", "run_pairs"]


class NightlyError(ValueError):
    """A bad selection of builds, versions or shard; one line."""


@dataclass
class PairResult:
    build: str
    vsphere: str
    run_dir: str
    exit_status: int
    seconds: float
    totals: dict[str, int]


def pairs(
    builds: str = "all", vsphere: str = "all", shard: tuple[int, int] | None = None, unsupported: bool = False
) -> list[tuple[VddkBuild, VsphereVersion]]:
    """The (build, vSphere) pairs to run, in build then vSphere order, this shard's share only."""
    try:
        chosen_builds = sorted({b for s in builds.split(",") for b in match_builds(s.strip())})
        chosen_vsphere = sorted({v for s in vsphere.split(",") for v in match_vsphere(s.strip())})
    except VersionError as exc:
        raise NightlyError(str(exc)) from None
    selected = [(b, v) for b in chosen_builds for v in chosen_vsphere if unsupported or vddk_supports(b, v)]
    if not selected:
        raise NightlyError(f"no supported pair among builds {builds!r} and vSphere {vsphere!r}")
    if shard is not None:
        index, total = shard
        selected = [pair for n, pair in enumerate(selected) if n % total == index - 1]
    return selected


def run_pairs(
    selected: list[tuple[VddkBuild, VsphereVersion]],
    reports: Path,
    matrix: str,
    workers: str,
) -> list[PairResult]:
    """One `vddk-conformance run` child process per pair; writes nightly.json next to the run directories."""
    night = time.strftime("%Y%m%d-%H%M%S")
    results: list[PairResult] = []
    for build, server in selected:
        run_id = f"nightly-{night}-{build.name.replace(' ', '_')}-{server.name}"
        command = [sys.executable, "-m", "conformance.cli", "run", f"--reports={reports}", f"--run-id={run_id}"]
        command += [f"--vddk-build={build.name}", f"--vsphere={server.name}", f"--matrix={matrix}", "-n", workers]
        started = time.monotonic()
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        summary_path = reports / run_id / "summary.json"
        totals = json.loads(summary_path.read_text()).get("totals", {}) if summary_path.is_file() else {}
        result = PairResult(
            build.name, server.name, str(reports / run_id), completed.returncode, time.monotonic() - started, totals
        )
        results.append(result)
        outcome = ", ".join(f"{n} {k}" for k, n in sorted(totals.items())) or "no summary"
        print(f"VDDK {build.name} / vSphere {server.name}: exit {completed.returncode} ({outcome})", flush=True)
    (reports / f"nightly-{night}.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return results
