"""A product that lies in its trace is caught by the library's own record of what it served (shim/witness.py).

The product here is the example C product wrapped by a script that edits the trace after the product ran, as a
product grading itself would: it moves a QueryAllocatedBlocks made off the opening thread onto that thread (C1
hidden), drops its Reads, or claims a Cleanup it never made. Each forgery must fail the job; the untouched
wrapper must not (the wrapper alone is no failure), and the forged C1 trace must pass the rule checker on its own
(so it is the witness, not the rules, that catches it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.sequences.command_app import CommandLineApp, TraceContradictionError
from conformance.sequences.product import load_product
from conformance.vixdisklib.trace import check_trace
from conformance.vixdisklib.trace_format import read_trace
from tests.partner.lab import Lab, context, lab, product_file, source_vm

__all__ = ["lab"]

FORGER = r"""
import json, os, subprocess, sys
mode, argv = sys.argv[1], sys.argv[2:]
code = subprocess.call(argv)
path = os.environ["VDDKC_TRACE"]
lines = [json.loads(line) for line in open(path) if line.strip()]
calls = [e for e in lines if e.get("kind") == "call"]
if mode == "hide-qab-thread":  # the query goes where the rule wants it: the thread that opened the disk
    opener = next(e["tid"] for e in calls if e["call"] == "VixDiskLib_Open")
    for e in calls:
        if e["call"] == "VixDiskLib_QueryAllocatedBlocks":
            e["tid"] = opener
elif mode == "drop-reads":
    lines = [e for e in lines if e.get("call") not in ("VixDiskLib_Read", "VixDiskLib_ReadAsync")]
elif mode == "invent-cleanup":
    last = calls[-1]
    lines.append({**last, "seq": last["seq"] + 1, "call": "VixDiskLib_Cleanup", "handle": None, "error": None,
                  "args": {"params": {}, "numCleanedUp": 0, "numRemaining": 0}})
with open(path, "w") as out:
    out.writelines(json.dumps(e) + "\n" for e in lines)
sys.exit(code)
"""


def forging_product(lab: Lab, mode: str, extra: list[str]) -> Path:
    """The example product's file with its full command run by FORGER in `mode`."""
    forger = lab.product_dir / "forger.py"
    forger.write_text(FORGER)
    path = product_file(lab, f"forging-{mode}", extra)
    wrapped = f'full = [\n  "{sys.executable}", "{forger}", "{mode}", "{{here}}/vddkc_sample"'
    text = path.read_text().replace('full = [\n  "{here}/vddkc_sample"', wrapped, 1)
    assert str(forger) in text
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("mode", "misuse", "named"),
    [
        ("hide-qab-thread", "qab-off-thread", "VixDiskLib_QueryAllocatedBlocks"),
        ("drop-reads", "", "VixDiskLib_Read"),
        ("invent-cleanup", "", "VixDiskLib_Cleanup"),
    ],
)
def test_a_forged_trace_fails_the_job_naming_the_call(lab: Lab, mode: str, misuse: str, named: str) -> None:
    app = CommandLineApp(load_product(forging_product(lab, mode, ["--misuse", misuse] if misuse else [])))
    ctx = context(lab, mode)
    source_vm(lab, ctx, "target-vmfs")  # a data disk with data: the product reads (an empty disk's reads nothing)
    try:
        with pytest.raises(TraceContradictionError, match="contradicts what the library served") as failed:
            app.backup(ctx, "target-vmfs", "nbdssl")
    finally:
        ctx.resources.unwind()  # TeardownError names anything that could not be undone
    assert named in str(failed.value)
    assert ctx.trace_dir is not None
    kept = sorted(ctx.trace_dir.glob("*.jsonl"))
    contradicted = [t for t in kept if witness_of(t)["contradictions"]]
    assert len(contradicted) == 1, kept  # the bundle says why, for the one command that failed the job
    if mode == "hide-qab-thread":  # alone, the forged trace would have passed C1
        assert not [v for v in check_trace(read_trace(contradicted[0])) if v.rule == "qab-thread"]


def test_the_forger_that_changes_nothing_passes(lab: Lab) -> None:
    """The baseline of the forgeries: the wrapper, its trace untouched, is a product like any other."""
    app = CommandLineApp(load_product(forging_product(lab, "honest", [])))
    ctx = context(lab, "honest")
    source_vm(lab, ctx, "target-vmfs")
    try:
        backup = app.backup(ctx, "target-vmfs", "nbdssl")
        app.cleanup(ctx, backup)
    finally:
        ctx.resources.unwind()
    assert ctx.trace_dir is not None
    kept = sorted(ctx.trace_dir.glob("*.jsonl"))
    assert kept
    for trace in kept:
        witness = witness_of(trace)
        assert witness["calls_served"] > 0 and witness["contradictions"] == [], witness


def witness_of(trace: Path) -> dict[str, Any]:
    """The witness verdict kept beside a product's trace."""
    witness = json.loads(trace.with_suffix(".summary.json").read_text())["witness"]
    assert isinstance(witness, dict)
    return witness
