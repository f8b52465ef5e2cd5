"""Merge the report directories of a sharded run (``run --shard K/N`` on several CI runners) into one run.

Why: a nightly matrix split over several machines must read as one report. The merged directory has the same
shape as a single run's (``junit.xml``, ``allure-results/``, ``summary.json``) so ``compare``, ``report`` and
Allure treat it like any other run. Nothing is dropped: every other file of a shard is copied too, and two shards
that carry different files under one name, ran the same test, or describe different runs (build, vSphere,
behaviour, backup application, matrix) are refused with one line naming the key or file and the directories.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError
from conformance.lab.resources import run_id_problem
from conformance.reports.runs import ReportError, load_run

__all__ = ["MergeError", "Shard", "load_shard", "merge_runs", "recount", "worst_exit_status"]

#: summary.json keys every shard must agree on (they decide what the tests expected).
SUMMARY_KEYS = (
    "vddk_build",
    "sim_behaviour",
    "sim_vsphere",
    "sim_fixed",
    "sim_faults",
    "vsphere",
    "backup_app",
    "matrix",
    "assumed_fixed",
    "selection",
)
#: environment.properties keys every shard must agree on.
ENVIRONMENT_KEYS = ("vddk.build", "vddk.behaviour", "vsphere", "vsphere.behaviour", "backup.app", "sim.faults")
#: files merged rather than copied (relative to a run directory).
MERGED_FILES = {"summary.json", "junit.xml", "allure-results/environment.properties"}
#: pytest exit codes from best to worst; 5 (no tests collected) only counts when every shard had no tests.
_EXIT_RANK = {0: 0, 1: 1, 2: 2, 4: 3, 3: 4}


class MergeError(InputError):
    """Shards that cannot be merged; the message is one line naming the directory, file or key."""


@dataclass
class Shard:
    """One shard's report directory, read and checked."""

    path: Path
    summary: dict[str, Any]
    environment: dict[str, str]
    junit: ET.Element


def _read_properties(path: Path) -> dict[str, str]:
    """``key=value`` lines of an Allure environment.properties file."""
    props: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def load_shard(path: Path) -> Shard:
    """Read summary.json, junit.xml and environment.properties of one run directory."""
    path = Path(path)
    try:  # the same checks the report command makes on a run directory
        summary = load_run(path).summary
    except ReportError as exc:
        raise MergeError(str(exc)) from None
    junit_path = path / "junit.xml"
    if not junit_path.is_file():
        raise MergeError(f"{path}: no junit.xml")
    try:
        junit = ET.parse(junit_path).getroot()
    except ET.ParseError as exc:
        raise MergeError(f"{junit_path}: not valid XML ({exc})") from None
    if junit.tag not in ("testsuites", "testsuite"):
        raise MergeError(f"{junit_path}: root element is <{junit.tag}>, expected <testsuites> or <testsuite>")
    env_path = path / "allure-results" / "environment.properties"
    environment = _read_properties(env_path) if env_path.is_file() else {}
    return Shard(path, summary, environment, junit)


def recount(tests: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Totals per outcome and outcomes per release-note item, computed as a single run computes them."""
    totals: dict[str, int] = {}
    items: dict[str, dict[str, int]] = {}
    for test in tests:
        outcome = str(test["outcome"])
        totals[outcome] = totals.get(outcome, 0) + 1
        if test.get("release_note"):
            per = items.setdefault(str(test["release_note"]), {})
            per[outcome] = per.get(outcome, 0) + 1
    return totals, items


def worst_exit_status(codes: list[int]) -> int:
    """The worst pytest exit status; "no tests collected" (5) only wins when no shard ran a test."""
    ran = [code for code in codes if code != 5]
    if not ran:
        return 5 if codes else 0
    return max(ran, key=lambda code: _EXIT_RANK.get(code, len(_EXIT_RANK)))


def _check_agreement(shards: list[Shard]) -> None:
    first = shards[0]
    for shard in shards[1:]:
        for key in SUMMARY_KEYS:
            if first.summary.get(key) != shard.summary.get(key):
                raise MergeError(
                    f"cannot merge: {key} differs: {first.summary.get(key)!r} in {first.path}, "
                    f"{shard.summary.get(key)!r} in {shard.path}"
                )
        for key in ENVIRONMENT_KEYS:
            if (
                key in first.environment
                and key in shard.environment
                and first.environment[key] != shard.environment[key]
            ):
                raise MergeError(
                    f"cannot merge: environment.properties {key} differs: {first.environment[key]!r} in "
                    f"{first.path}, {shard.environment[key]!r} in {shard.path}"
                )


def _check_overlap(shards: list[Shard]) -> None:
    seen: dict[str, Path] = {}
    for shard in shards:
        for test in shard.summary["tests"]:
            nodeid = test["nodeid"]
            if nodeid in seen:
                raise MergeError(
                    f"cannot merge: test {nodeid} ran in both {seen[nodeid]} and {shard.path} (overlapping shards)"
                )
            seen[nodeid] = shard.path


def missing_shards(specs: list[Any]) -> list[str]:
    """Shards K/N absent from the inputs' "shard" values."""
    present: set[int] = set()
    totals: set[int] = set()
    for spec in specs:
        if isinstance(spec, str) and "/" in spec:
            index, _, count = spec.partition("/")
            if index.isdigit() and count.isdigit():
                present.add(int(index))
                totals.add(int(count))
    if len(totals) != 1:
        return []
    total = totals.pop()
    return [f"{k}/{total}" for k in range(1, total + 1) if k not in present]


def _check_complete(shards: list[Shard]) -> None:
    """Only every shard K/N of one split run makes a whole run: a lone shard, a run that was not split, shards of
    different splits, a shard given twice or a missing one are refused (the merged run would pass for the whole)."""
    specs: dict[int, Path] = {}
    totals: set[int] = set()
    for shard in shards:
        spec = shard.summary.get("shard")
        index, _, count = str(spec).partition("/")
        if not (isinstance(spec, str) and index.isdigit() and count.isdigit()):
            raise MergeError(
                f"cannot merge: {shard.path} is not a shard of a split run (no --shard K/N); merge joins the shards "
                "of one run split with --shard"
            )
        if int(index) in specs:
            raise MergeError(f"cannot merge: shard {spec} is given twice ({specs[int(index)]} and {shard.path})")
        specs[int(index)] = shard.path
        totals.add(int(count))
    if len(totals) > 1:
        raise MergeError(f"cannot merge: shards of different splits (/{', /'.join(map(str, sorted(totals)))})")
    missing = missing_shards([s.summary.get("shard") for s in shards])
    if missing:
        raise MergeError(f"cannot merge: shard(s) {', '.join(missing)} missing; give every shard of the split run")


def _merge_summary(shards: list[Shard], run_id: str) -> dict[str, Any]:
    tests = sorted((t for s in shards for t in s.summary["tests"]), key=lambda t: str(t["nodeid"]))
    totals, items = recount(tests)
    first = shards[0].summary
    target = next((s.summary["target"] for s in shards if s.summary.get("target")), first.get("target", {}))
    started = [s.summary["started"] for s in shards if isinstance(s.summary.get("started"), int | float)]
    finished = [s.summary["finished"] for s in shards if isinstance(s.summary.get("finished"), int | float)]
    codes = [int(s.summary.get("exit_status", 0)) for s in shards]
    summary: dict[str, Any] = {key: value for key, value in first.items() if key not in ("tests",)}
    summary.update(
        {
            "run_id": run_id,
            "shard": None,
            "target": target,
            "started": min(started) if started else None,
            "finished": max(finished) if finished else None,
            "exit_status": worst_exit_status(codes),
            "totals": totals,
            "release_notes": items,
            "merged_from": [
                {
                    "run_id": s.summary.get("run_id"),
                    "shard": s.summary.get("shard"),
                    "directory": str(s.path),
                    "exit_status": s.summary.get("exit_status"),
                    "tests": len(s.summary["tests"]),
                }
                for s in shards
            ],
            "tests": tests,
        }
    )
    return summary


def _count(suite: ET.Element) -> dict[str, int]:
    cases = suite.findall("testcase")
    return {
        "tests": len(cases),
        "failures": sum(1 for c in cases if c.find("failure") is not None),
        "errors": sum(1 for c in cases if c.find("error") is not None),
        "skipped": sum(1 for c in cases if c.find("skipped") is not None),
    }


def _merge_junit(shards: list[Shard], run_id: str) -> ET.Element:
    """One <testsuites>: every shard's <testsuite> (hostname and timestamp kept), counts recomputed."""
    root = ET.Element("testsuites", {"name": f"vddk-conformance {run_id}"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    for shard in shards:
        suites = [shard.junit] if shard.junit.tag == "testsuite" else shard.junit.findall("testsuite")
        for suite in suites:
            counts = _count(suite)
            for key, value in counts.items():
                suite.set(key, str(value))
                totals[key] += value
            if shard.summary.get("shard"):
                suite.set("name", f"{suite.get('name', 'pytest')} (shard {shard.summary['shard']})")
            with contextlib.suppress(ValueError):
                seconds += float(suite.get("time", "0"))
            root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    return root


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_other_files(shards: list[Shard], staging: Path) -> int:
    """Copy every file not merged above; the same name with different content in two shards is refused."""
    origin: dict[str, Path] = {}
    copied = 0
    for shard in shards:
        for source in sorted(p for p in shard.path.rglob("*") if p.is_file()):
            relative = source.relative_to(shard.path).as_posix()
            if relative in MERGED_FILES:
                continue
            destination = staging / relative
            if relative in origin:
                if _digest(destination) != _digest(source):
                    raise MergeError(f"cannot merge: {relative} differs between {origin[relative]} and {shard.path}")
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
            origin[relative] = shard.path
            copied += 1
    return copied


def merge_runs(run_dirs: list[Path], out: Path, run_id: str | None = None) -> dict[str, Any]:
    """Merge shard run directories into ``out`` (new or empty); returns the merged summary."""
    if not run_dirs:
        raise MergeError("give at least one run directory to merge")
    out = Path(out)
    resolved = [Path(p).resolve() for p in run_dirs]
    for position, path in enumerate(resolved):
        if path in resolved[:position]:
            raise MergeError(f"cannot merge: {run_dirs[position]} is given twice")
        if out.resolve() == path or path in out.resolve().parents:
            raise MergeError(f"--out {out} is inside the input {run_dirs[position]}: choose another folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError(f"--out {out} exists and is not an empty folder: give a new or empty folder")
    shards = [load_shard(Path(p)) for p in run_dirs]
    _check_complete(shards)
    _check_agreement(shards)
    _check_overlap(shards)
    run_id = run_id or out.name
    problem = run_id_problem(run_id)
    if problem:
        raise MergeError(f"--run-id: {problem} (fix: pass --run-id NAME, or an --out folder with such a name)")
    summary = _merge_summary(shards, run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.merging-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a report folder is read by others
    try:
        _copy_other_files(shards, staging)
        (staging / "allure-results").mkdir(exist_ok=True)
        env = next((s.environment for s in shards if s.environment), {})
        if env:
            env = {**env, "run.id": run_id}
            (staging / "allure-results" / "environment.properties").write_text(
                "".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8"
            )
        tree = ET.ElementTree(_merge_junit(shards, run_id))
        tree.write(staging / "junit.xml", encoding="utf-8", xml_declaration=True)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary
