"""The comparison of a product's trace with the library's own record (shim/witness.py), on made-up records."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.vixdisklib.shim.wire import response
from conformance.vixdisklib.shim.witness import Served, WitnessWriter, contradictions, read_witness
from conformance.vixdisklib.trace_format import Process, Trace, TraceCall

PID, MAIN, WORKER = 700, 701, 702


def trace_of(*calls: tuple[int, str, dict[str, object], int | None]) -> Trace:
    """A trace of one process: (tid, call, args, error) per call, in order."""
    made = [
        TraceCall(line, 0, line, call, tid, 0.0, 1, args, None, error)
        for line, (tid, call, args, error) in enumerate(calls, 1)
    ]
    return Trace(Path("made-up.jsonl"), [Process(PID, 1)], made)


def read(tid: int, start: int, count: int, ok: bool = True) -> Served:
    return Served(PID, tid, "VixDiskLib_Read", (start, count), ok)


def test_the_same_calls_on_the_same_threads_agree_and_failures_on_either_side_are_not_compared() -> None:
    served = [read(MAIN, 0, 8), read(WORKER, 8, 8), read(MAIN, 99, 1, ok=False)]
    trace = trace_of(
        (MAIN, "VixDiskLib_Read", {"startSector": 0, "numSectors": 8}, None),
        (MAIN, "VixDiskLib_Read", {"startSector": 5, "numSectors": 1}, 3),  # refused in the product's process
        (WORKER, "VixDiskLib_Read", {"startSector": 8, "numSectors": 8}, None),
        (MAIN, "VixDiskLib_Read", {"startSector": 99, "numSectors": 1}, 13),
        (MAIN, "VixDiskLib_GetTransportMode", {}, None),  # answered without the agent: not compared
    )
    assert contradictions(served, trace) == []


def test_a_call_moved_to_another_thread_dropped_or_invented_is_named() -> None:
    served = [read(MAIN, 0, 8), Served(PID, WORKER, "VixDiskLib_QueryAllocatedBlocks", (0, 64, 8), True)]
    moved = trace_of(
        (MAIN, "VixDiskLib_Read", {"startSector": 0, "numSectors": 8}, None),
        (MAIN, "VixDiskLib_QueryAllocatedBlocks", {"startSector": 0, "numSectors": 64, "chunkSize": 8}, None),
    )
    problems = contradictions(served, moved)
    assert len(problems) == 2 and all("VixDiskLib_QueryAllocatedBlocks" in p for p in problems), problems
    dropped = trace_of(
        (WORKER, "VixDiskLib_QueryAllocatedBlocks", {"startSector": 0, "numSectors": 64, "chunkSize": 8}, None)
    )
    assert contradictions(served, dropped) == [
        f"pid {PID} thread {MAIN}: the library served 1 calls, the trace shows 0 "
        "(first missing: VixDiskLib_Read [0, 8])"
    ]
    other_sectors = trace_of(
        (MAIN, "VixDiskLib_Read", {"startSector": 8, "numSectors": 8}, None),
        (WORKER, "VixDiskLib_QueryAllocatedBlocks", {"startSector": 0, "numSectors": 64, "chunkSize": 8}, None),
    )
    assert (
        "the library served VixDiskLib_Read [0, 8], the trace says VixDiskLib_Read [8, 8]"
        in contradictions(served, other_sectors)[0]
    )


def test_the_agents_record_reads_back_and_a_write_counts_its_sectors(tmp_path: Path) -> None:
    writer = WitnessWriter(tmp_path / "served.jsonl")
    writer.served(PID, MAIN, "VixDiskLib_Write", [1, 16, b"\0" * 1024], response(0, None, [], []))
    writer.served(PID, MAIN, "VixDiskLib_GetInfo", [1], response(0, None, [], [1]))  # not compared: not recorded
    writer.served(PID, MAIN, "VixDiskLib_ReadAsync", [1, 0, 2], response(25000, None, [], [0]))  # VIX_ASYNC: a success
    writer.served(PID, MAIN, "VixDiskLib_Open", [3, "[ds] a.vmdk", 4], response(0, None, ["I log"], [9, "nbdssl"]))
    writer.served(PID, MAIN, "VixDiskLib_Open", [3, "[ds] b.vmdk", 4], response(13, "not found", [], []))
    writer.close()
    with (tmp_path / "served.jsonl").open("a") as cut:
        cut.write('{"pid": 700, "tid"')  # a line cut by a killed agent
    assert read_witness(tmp_path / "served.jsonl") == [
        Served(PID, MAIN, "VixDiskLib_Write", (16, 2), True),
        Served(PID, MAIN, "VixDiskLib_ReadAsync", (0, 2), True),
        Served(PID, MAIN, "VixDiskLib_Open", ("[ds] a.vmdk", "nbdssl"), True),
        Served(PID, MAIN, "VixDiskLib_Open", ("[ds] b.vmdk", ""), False),
    ]


@pytest.mark.parametrize("harness", ["alive", "killed"])
def test_the_record_stays_for_a_live_harness_and_goes_with_a_dead_one(tmp_path: Path, harness: str) -> None:
    """A harness killed mid-command never reads the record: its agent removes it and the private folder."""
    parent = subprocess.Popen(["sleep", "60"])
    folder = tmp_path / f"vddkc-agent-{parent.pid}-test"
    folder.mkdir()
    witness, sock = folder / "served.jsonl", folder / "agent.sock"
    argv = [sys.executable, "-m", "conformance.vixdisklib.shim.agent", "--socket", str(sock),
            "--witness", str(witness), "--parent-pid", str(parent.pid)]  # fmt: skip
    agent = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not sock.exists() and agent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists() and witness.exists(), "the agent did not start"
        if harness == "killed":
            parent.kill()
        else:
            agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    finally:
        for process in (agent, parent):
            process.kill()
            process.wait()
    assert not sock.exists()
    assert witness.exists() == (harness == "alive") and folder.exists() == (harness == "alive")
