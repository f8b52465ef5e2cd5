"""Soak of the run -> sweep -> merge chain: runs interrupted at random points, swept after each batch.

Each run is one shard (1/2 or 2/2) of a small round-trip selection against its own embedded simulator, in a new
process group; at a random point (from start-up to past a whole run) the group gets SIGINT, SIGTERM or SIGKILL,
or the run is left to finish. After each batch `vddk-conformance sweep --reports DIR` runs, and the soak checks,
on its own (not through the sweeper's report):

* no process of any run's group is alive (SIGINT/SIGTERM runs must stop by themselves within a grace period),
* no simulator state folder (`vsphere-sim-*`), run temporary or agent folder (`vddkc-*`) and no folder of the
  library's (`vmware-<user>/vixDiskLib-*`) is left in the soak's TMPDIR, which every run and the sweep use,
* no half-written report folder: every folder under the reports is complete (summary.json and junit.xml, no
  `owner.pid`),
* no VM lock file under the soak's VDDKC_LOCK_DIR is held,
* both shards of a pair that completed merge (`vddk-conformance merge`), with as many tests as the two shards.

Run: python bench/soak.py [--runs 100] [--batch 4] [--seed N] [--json OUT]. It exits 1 when anything leaked, and
prints the figures (runs, signals, finished, leaks, merges). It is not part of `pytest tests` (about 4 minutes on
2 cores for 100 runs).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "conformance.cli"]
SELECTION = "roundtrip and (full_backup or restore_to_the_original) and (nbdssl-VMFS-random or hotadd-VMFS-random)"
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
#: how long a run that got SIGINT or SIGTERM may take to run its teardowns and stop
STOP_GRACE = 90.0


@dataclass
class Run:
    index: int
    shard: str
    process: subprocess.Popen[bytes]
    started: float
    signal_name: str | None = None
    signalled_at: float | None = None


@dataclass
class Figures:
    runs: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    finished: int = 0
    exit_statuses: Counter[str] = field(default_factory=Counter)
    stuck: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    swept: int = 0
    merged: int = 0
    merge_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "signals": dict(self.signals),
            "finished": self.finished,
            "exit_statuses": dict(self.exit_statuses),
            "stuck": self.stuck,
            "leaks": self.leaks,
            "swept": self.swept,
            "merged_pairs": self.merged,
            "merge_failures": self.merge_failures,
            "seconds": round(self.seconds),
        }


def start(index: int, shard: str, root: Path, env: dict[str, str]) -> Run:
    workers = "2" if index % 4 == 3 else "0"  # every fourth run under xdist: a controller and two workers
    command = [
        *CLI, "run", "--reports", str(root / "reports"), "--run-id", f"soak{index:03d}", "--shard", shard,
        "-n", workers, "-k", SELECTION,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    return Run(index, shard, process, time.monotonic())


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def interrupt(run: Run, name: str, figures: Figures) -> None:
    """Send the signal to the run's whole group and go on (the next run's kill point does not wait for this one)."""
    if run.process.poll() is not None:
        return
    try:
        os.killpg(run.process.pid, SIGNALS[name])
    except ProcessLookupError:
        return
    run.signal_name = name
    run.signalled_at = time.monotonic()
    figures.signals[name] += 1


def wait_stopped(run: Run, figures: Figures) -> None:
    """A signalled run must stop within STOP_GRACE of its signal; one never signalled within 600 s of its start."""
    since, limit = (run.signalled_at, STOP_GRACE) if run.signalled_at is not None else (run.started, 600.0)
    try:
        run.process.wait(timeout=max(0.1, since + limit - time.monotonic()))
    except subprocess.TimeoutExpired:
        figures.stuck.append(f"run {run.index}: still running {limit:.0f} s after {run.signal_name or 'its start'}")
        os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()


def settle_group(run: Run, figures: Figures) -> None:
    """Every process of the run's group must be gone shortly after its leader (xdist workers, simulators)."""
    deadline = time.monotonic() + 30
    while group_alive(run.process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(run.process.pid):
        figures.leaks.append(f"run {run.index}: processes of its group outlived it")
        os.killpg(run.process.pid, signal.SIGKILL)


def held_locks(lock_dir: Path) -> list[str]:
    held = []
    for path in sorted(lock_dir.glob("**/*")) if lock_dir.is_dir() else []:
        if not path.is_file():
            continue
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(str(path))
    return held


def complete(folder: Path) -> bool:
    return (
        (folder / "summary.json").is_file() and (folder / "junit.xml").is_file() and not (folder / "owner.pid").exists()
    )


def check(root: Path, tmp: Path, lock_dir: Path, figures: Figures) -> None:
    left = sorted(p.name for p in tmp.glob("vsphere-sim-*")) + sorted(p.name for p in tmp.glob("vddkc-*"))
    left += sorted(f"{p.parent.name}/{p.name}" for p in tmp.glob("vmware-*/*"))  # the library's default folders
    figures.leaks += [f"temporary folder left: {name}" for name in left]
    reports = root / "reports"
    half = [p.name for p in sorted(reports.iterdir()) if p.is_dir() and not complete(p)] if reports.is_dir() else []
    figures.leaks += [f"half-written report folder left: {name}" for name in half]
    figures.leaks += [f"VM lock still held: {path}" for path in held_locks(lock_dir)]


def merge_pairs(root: Path, pairs: list[tuple[Run, Run]], env: dict[str, str], figures: Figures) -> None:
    reports = root / "reports"
    for first, second in pairs:
        folders = [reports / f"soak{r.index:03d}" for r in (first, second)]
        if not all(complete(f) for f in folders):
            continue
        out = root / "merged" / f"pair{first.index:03d}"
        done = subprocess.run(
            [*CLI, "merge", "--out", str(out), *map(str, folders)], capture_output=True, text=True, env=env
        )
        if done.returncode != 0:
            figures.merge_failures.append(f"pair {first.index}: {done.stdout.strip()} {done.stderr.strip()}"[:300])
            continue
        tests = [len(json.loads((f / "summary.json").read_text())["tests"]) for f in folders]
        merged = len(json.loads((out / "summary.json").read_text())["tests"])
        if merged != sum(tests):
            figures.merge_failures.append(f"pair {first.index}: merged {merged} tests, shards hold {tests}")
            continue
        figures.merged += 1


def calibrate(root: Path, env: dict[str, str]) -> float:
    """Seconds one uncontended shard takes from start to end (the kill points range over it)."""
    run = start(999, "1/2", root, env)
    if run.process.wait(timeout=600) != 0:
        raise SystemExit(f"soak: a calibration run failed (exit {run.process.returncode}); fix the run first")
    shutil.rmtree(root / "reports" / "soak999")
    return time.monotonic() - run.started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=4, help="runs at once (pairs of shards; even)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.runs < 2 or args.batch < 2 or args.batch % 2:
        parser.error("--runs must be at least 2 and --batch an even number of at least 2")
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="vddkc-soak-"))
    tmp, lock_dir = root / "tmp", root / "locks"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "VDDKC_LOCK_DIR": str(lock_dir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    figures = Figures()
    live: list[Run] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    t0 = time.monotonic()
    try:
        full = calibrate(root, env)
        print(f"soak: seed {seed}, one shard takes {full:.1f} s; {args.runs} runs, {args.batch} at a time", flush=True)
        index = 0
        while index < args.runs:
            batch: list[Run] = []
            pairs: list[tuple[Run, Run]] = []
            for _ in range(min(args.batch, args.runs - index) // 2 or 1):
                first, second = start(index, "1/2", root, env), start(index + 1, "2/2", root, env)
                batch += [first, second]
                live[:] = batch
                pairs.append((first, second))
                index += 2
            plan = sorted(
                ((rng.uniform(0.3, full * 1.6), rng.choice([*SIGNALS, None]), run) for run in batch),
                key=lambda p: p[0],
            )
            begun = time.monotonic()
            for at, name, run in plan:
                time.sleep(max(0.0, at - (time.monotonic() - begun)))
                if name is not None:
                    interrupt(run, name, figures)
            for run in batch:
                wait_stopped(run, figures)
                settle_group(run, figures)
                figures.runs += 1
                figures.exit_statuses[str(run.process.returncode)] += 1
                if run.signal_name is None:
                    figures.finished += 1
            swept = subprocess.run(
                [*CLI, "sweep", "--reports", str(root / "reports")], capture_output=True, text=True, env=env
            )
            if swept.returncode != 0:
                figures.leaks.append(f"sweep failed ({swept.returncode}): {swept.stderr.strip()[:300]}")
            figures.swept += sum(line.startswith("removed ") for line in swept.stdout.splitlines())
            check(root, tmp, lock_dir, figures)
            merge_pairs(root, pairs, env, figures)
            print(
                f"soak: {figures.runs} runs, signals {dict(figures.signals)}, {figures.finished} finished, "
                f"{figures.swept} swept, {len(figures.leaks)} leaks, {figures.merged} pairs merged",
                flush=True,
            )
    finally:
        for run in live:  # the soak itself interrupted: its runs go too, before their folders
            if run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait()
        figures.seconds = time.monotonic() - t0
        shutil.rmtree(root, ignore_errors=True)
    result = {"seed": seed, **figures.as_dict()}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    bad = figures.leaks or figures.stuck or figures.merge_failures
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
