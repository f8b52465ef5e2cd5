"""The simulated library's own record of what it served a product, to hold the product's trace against.

Why: a product's trace is written in the product's process. The verdicts the harness draws from it (C1's
thread, Cleanup before snapshot removal, handles left open, bytes read) are only the harness's own if the trace
is true, and a product that edits its trace, writes one of its own, or reaches the data through another library
would otherwise grade itself. So when the harness runs a product against the simulator, the agent that serves
the product's calls is the harness's (started per command, its socket and this record in a folder the product
is not told of), and it writes one line per call it served: the product process and thread that asked (the
thread's connection, from its HELLO), the call and what identifies it (the sectors of an I/O, the path of an Open
and the transport it chose). `contradictions` then compares, thread by thread, the calls the library served
successfully with the successful calls the trace claims; any difference fails the product's job. A product that
speaks the agent's protocol itself instead of loading the library is out of this record's reach (it would be
writing a library).

The record is JSON Lines: {"pid": P, "tid": T, "call": "VixDiskLib_Read", "key": [...], "ok": true}.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.vixdisklib.shim.wire import split_response
from conformance.vixdisklib.trace_format import VIX_ASYNC, Trace

SECTOR = 512
#: the calls the C library always hands to the agent once its own argument checks pass (so a successful one is
#: served exactly once); the rest are answered in the product's process or may not reach the agent
COMPARED = (
    "VixDiskLib_InitEx", "VixDiskLib_ConnectEx", "VixDiskLib_Disconnect", "VixDiskLib_Open", "VixDiskLib_Close",
    "VixDiskLib_Read", "VixDiskLib_Write", "VixDiskLib_ReadAsync", "VixDiskLib_WriteAsync", "VixDiskLib_Flush",
    "VixDiskLib_QueryAllocatedBlocks", "VixDiskLib_Attach", "VixDiskLib_PrepareForAccess",
    "VixDiskLib_EndAccess", "VixDiskLib_Cleanup",
)  # fmt: skip
_IO = ("VixDiskLib_Read", "VixDiskLib_ReadAsync", "VixDiskLib_Write", "VixDiskLib_WriteAsync")


@dataclass(frozen=True)
class Served:
    """One call the library served: who asked, the call, what identifies it, and whether it succeeded."""

    pid: int
    tid: int
    call: str
    key: tuple[Any, ...]
    ok: bool

    def describe(self) -> str:
        what = f" {list(self.key)}" if self.key else ""
        return f"{self.call}{what}"


def served_key(call: str, args: list[Any], results: list[Any]) -> tuple[Any, ...]:
    """What identifies a call among its thread's calls, from the agent's arguments (see agent.SIGNATURES) and
    results (an Open's are the handle and the transport mode it chose)."""
    if call in ("VixDiskLib_Read", "VixDiskLib_ReadAsync"):
        return (int(args[1]), int(args[2]))
    if call in ("VixDiskLib_Write", "VixDiskLib_WriteAsync"):
        return (int(args[1]), len(args[2]) // SECTOR)
    if call == "VixDiskLib_QueryAllocatedBlocks":
        return (int(args[1]), int(args[2]), int(args[3]))
    if call == "VixDiskLib_Open":
        return (str(args[1]), str(results[1]) if len(results) > 1 else "")
    return ()


def traced_key(call: str, args: dict[str, Any]) -> tuple[Any, ...]:
    """The same identification, from a trace line's arguments (trace_format.py's format)."""
    try:
        if call in _IO:
            return (int(args["startSector"]), int(args["numSectors"]))
        if call == "VixDiskLib_QueryAllocatedBlocks":
            return (int(args["startSector"]), int(args["numSectors"]), int(args["chunkSize"]))
        if call == "VixDiskLib_Open":
            return (str(args["path"]), str(args.get("transport") or ""))
    except (KeyError, TypeError, ValueError):
        return ("<missing arguments>",)
    return ()


class WitnessWriter:
    """The agent's side: one line per served call, appended with one write (threads never interleave)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def served(self, pid: int, tid: int, call: str, args: list[Any], reply: list[Any]) -> None:
        """Record one answered call; `reply` is its response (wire.response)."""
        if call not in COMPARED:
            return
        error, _, _, results = split_response(reply)
        ok = error in (0, VIX_ASYNC)
        line = {"pid": pid, "tid": tid, "call": call, "key": list(served_key(call, args, results if ok else [])),
                "ok": ok}  # fmt: skip
        data = (json.dumps(line) + "\n").encode()
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_witness(path: Path) -> list[Served]:
    """The calls the agent served, in the order it answered them (a line cut by a killed agent is dropped)."""
    served: list[Served] = []
    if not path.exists():
        return served
    for raw in path.read_bytes().splitlines():
        try:
            entry = json.loads(raw)
            served.append(
                Served(int(entry["pid"]), int(entry["tid"]), str(entry["call"]), tuple(entry["key"]), bool(entry["ok"]))
            )
        except (ValueError, KeyError, TypeError):
            continue
    return served


def _claimed(trace: Trace) -> list[Served]:
    """The trace's successful calls of the compared kinds, as the same records."""
    claimed = []
    for call in trace.calls:
        if call.call in COMPARED and call.error is None:
            pid = trace.processes[call.process].pid
            claimed.append(Served(pid, call.tid, call.call, traced_key(call.call, call.args), True))
    return claimed


def _by_thread(records: list[Served]) -> dict[tuple[int, int], list[Served]]:
    threads: dict[tuple[int, int], list[Served]] = defaultdict(list)
    for record in records:
        if record.ok:
            threads[(record.pid, record.tid)].append(record)
    return threads


def contradictions(served: list[Served], trace: Trace) -> list[str]:
    """Where the trace and the library's record disagree, one line per product thread (empty: they agree).

    Thread by thread, the successful calls the library served and those the trace claims must be the same
    calls in the same order: a call the trace leaves out, moves to another thread or adds is named."""
    library, claimed = _by_thread(served), _by_thread(_claimed(trace))
    problems = []
    for pid, tid in sorted(set(library) | set(claimed)):
        ours, theirs = library.get((pid, tid), []), claimed.get((pid, tid), [])
        where = f"pid {pid} thread {tid}"
        for at, (mine, said) in enumerate(zip(ours, theirs, strict=False), 1):
            if (mine.call, mine.key) != (said.call, said.key):
                problems.append(
                    f"{where}, call {at}: the library served {mine.describe()}, the trace says {said.describe()}"
                )
                break
        else:
            if len(ours) > len(theirs):
                problems.append(
                    f"{where}: the library served {len(ours)} calls, the trace shows {len(theirs)} "
                    f"(first missing: {ours[len(theirs)].describe()})"
                )
            elif len(theirs) > len(ours):
                problems.append(
                    f"{where}: the trace claims {len(theirs)} calls, the library served {len(ours)} "
                    f"(first never served: {theirs[len(ours)].describe()})"
                )
    return problems
