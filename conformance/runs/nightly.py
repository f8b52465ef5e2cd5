"""The nightly matrix: one conformance run per (VDDK build, vSphere version) pair, each with its own
expectations, the simulator behaving as that build and presenting that server.

Pairs are every supported pair of the version model (or the builds and versions asked for), in a fixed order;
``--shard K/N`` keeps every N-th pair so that N CI runners share a night between them, each writing its own
run directories. The report command then puts all of them on one matrix page.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from conformance.input_errors import InputError
from conformance.knowledge.versions import (
    VddkBuild,
    VersionError,
    VsphereVersion,
    match_builds,
    match_vsphere,
    vddk_supports,
)

__all__ = ["Night", "NightlyError", "PairResult", "pair_command", "pairs", "run_pairs"]


class NightlyError(InputError):
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
        if index > len(selected):
            raise NightlyError(
                f"--shard {index}/{total}: there are only {len(selected)} pair(s), so shard {index} gets none "
                f"(fix: split into at most {len(selected)} shards)"
            )
        selected = [pair for n, pair in enumerate(selected) if n % total == index - 1]
    return selected


def pair_command(build: VddkBuild, server: VsphereVersion, run_id: str, reports: Path, matrix: str, workers: str
                 ) -> list[str]:  # fmt: skip
    """The `vddk-conformance run` of one pair."""
    command = [sys.executable, "-m", "conformance.cli", "run", f"--reports={reports}", f"--run-id={run_id}"]
    return [*command, f"--vddk-build={build.name}", f"--vsphere={server.name}", f"--matrix={matrix}", "-n", workers]


class _Stop:
    """SIGTERM/SIGINT while a pair runs: the child run is asked to stop (it runs its teardowns), the night ends
    after it, and the summary says where it stopped. Nothing is orphaned: the child is waited for."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self.child: subprocess.Popen[str] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self.signal is None
        self.signal = signal.Signals(signum).name
        child = self.child
        # Ctrl-C reaches the child from the terminal itself; SIGTERM sent to the nightly alone is passed on once
        if first and child is not None and child.poll() is None and signum == signal.SIGTERM:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)


def run_pairs(
    selected: list[tuple[VddkBuild, VsphereVersion]],
    reports: Path,
    matrix: str,
    workers: str,
    command_for: Callable[..., list[str]] = pair_command,
    echo: Callable[[str], None] = lambda line: print(line, flush=True),
) -> Night:
    """One `vddk-conformance run` child per pair, its output relayed line by line with the pair in front;
    nightly-<night>.json next to the run directories is rewritten after every pair (`complete` false until
    the last one ends, `stopped_by` when a signal ended the night)."""
    reports.mkdir(parents=True, exist_ok=True)
    night = Night(time.strftime("%Y%m%d-%H%M%S"), len(selected), reports)
    night.save()
    with _Stop() as stop:
        for position, (build, server) in enumerate(selected, start=1):
            if stop.signal:
                break
            tag = f"[{position}/{len(selected)} VDDK {build.name} / vSphere {server.name}]"
            run_id = f"nightly-{night.id}-{build.name.replace(' ', '_')}-{server.name}"
            echo(f"{tag} starting run {run_id}")
            started = time.monotonic()
            stop.child = subprocess.Popen(
                command_for(build, server, run_id, reports, matrix, workers),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            assert stop.child.stdout is not None
            for line in stop.child.stdout:
                echo(f"{tag} {line.rstrip()}")
            code = stop.child.wait()
            stop.child = None
            summary_path = reports / run_id / "summary.json"
            try:
                totals = json.loads(summary_path.read_text()).get("totals", {}) if summary_path.is_file() else {}
            except (json.JSONDecodeError, OSError):
                totals = {}
            result = PairResult(
                build.name, server.name, str(reports / run_id), code, time.monotonic() - started, totals
            )
            night.results.append(result)
            night.save()
            outcome = ", ".join(f"{n} {k}" for k, n in sorted(totals.items())) or "no summary"
            echo(f"{tag} exit {code} ({outcome}, {result.seconds:.0f} s)")
        night.stopped_by = stop.signal
        night.complete = stop.signal is None
        night.save()
    if stop.signal:
        echo(f"vddk-conformance: nightly stopped by {stop.signal} after {len(night.results)} of {night.total} pair(s)")
    return night


@dataclass
class Night:
    """The night so far, saved as nightly-<id>.json after every pair (written to a temporary file, then renamed,
    so a reader never sees half a file)."""

    id: str
    total: int
    reports: Path
    results: list[PairResult] = field(default_factory=list)
    complete: bool = False
    stopped_by: str | None = None

    @property
    def path(self) -> Path:
        return self.reports / f"nightly-{self.id}.json"

    def save(self) -> None:
        data = {
            "night": self.id,
            "pairs": self.total,
            "complete": self.complete,
            "stopped_by": self.stopped_by,
            "results": [asdict(r) for r in self.results],
        }
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(data, indent=2))
        os.replace(partial, self.path)
