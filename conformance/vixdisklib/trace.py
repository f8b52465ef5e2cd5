"""Judging a C product's VixDiskLib usage from the trace file its C libvixDiskLib writes (`VDDKC_TRACE`).

Why: a partner's C product cannot run under the Python recorder, so the C library with the exports of
libvixDiskLib appends what the product called to a file, and the usage rules of `rules.py` judge that file
unchanged: thread rules per process, Cleanup and access pairing across processes plus the vSphere server's
own events (Cleanup after a crash may run in another process than the backup, as VMware recommends).

The trace format (the contract with the C library, every field described) and its reader, bounded against
hostile input, are in `trace_format.py`; this module converts what is read into CallRecords and checks it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from conformance.input_errors import one_line
from conformance.vixdisklib.recorder import CallRecord
from conformance.vixdisklib.rules import Violation, check
from conformance.vixdisklib.trace_format import VIX_ASYNC, Panic, ServerEvent, Trace, TraceCall

__all__ = ["TraceViolation", "check_trace", "foreign_records", "summary", "to_records"]

THREAD_RULES = ("qab-thread", "open-close-thread", "threads-after-init")
TIMELINE_RULES = ("cleanup-before-snapshot-removal", "access-pairing")
SERVER_THREAD = "vSphere server"


@dataclass(frozen=True)
class TraceViolation(Violation):
    """A Violation located in the trace file; rules starting with "trace-" are faults of the trace itself."""

    pid: int | None = None  # None for a server event
    tid: int | None = None
    line: int | None = None
    time: float = 0.0

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "server"
        return f"[{self.rule}{' ' + self.item if self.item else ''}] {where}: {self.message}"


# --- converting and checking ---


class _Timeline:
    """The calls of every process and the server's events as CallRecords, in start-time order."""

    def __init__(self, trace: Trace, events: Iterable[ServerEvent]) -> None:
        self.trace = trace
        self.thread_ids: dict[tuple[int, int], int] = {}
        targets = _targets(trace)
        merged: list[tuple[float, int, int, int, TraceCall | ServerEvent]] = [
            (c.start, 0, c.process, c.seq, c) for c in trace.calls
        ]
        merged += [(e.time, 1, 0, i, e) for i, e in enumerate(events) if not targets or e.target in (None, *targets)]
        merged.sort(key=lambda m: m[:4])
        self.entries = [(self._record(seq, m[4]), m[4]) for seq, m in enumerate(merged, 1)]
        self.seq_of_line = {o.line: r.seq for r, o in self.entries if isinstance(o, TraceCall)}

    def thread_id(self, process: int, tid: int) -> int:
        return self.thread_ids.setdefault((process, tid), len(self.thread_ids) + 1)

    def thread_name(self, process: int, tid: int) -> str:
        return f"{self.trace.processes[process].label} tid {tid}"

    def _record(self, seq: int, origin: TraceCall | ServerEvent) -> CallRecord:
        if isinstance(origin, ServerEvent):
            return CallRecord(seq, origin.name, 0, SERVER_THREAD, origin.time, args={"target": origin.target})
        c = origin
        args = c.args
        if c.has_result and c.call in ("VixDiskLib_GetTransportMode", "VixDiskLib_ListTransportModes"):
            args = {**args, "result": c.result}
        if c.call == "VixDiskLib_Open" and "transport" not in args and isinstance(c.result, str):
            args = {**args, "transport": c.result}  # a library that wrote the chosen mode as the result
        error = None if c.error is None or c.error & 0xFFFF in (0, VIX_ASYNC) else c.error & 0xFFFF
        if error is not None and c.error_text:
            args = {**args, "error_text": c.error_text}
        thread = self.thread_id(c.process, c.tid)
        name = self.thread_name(c.process, c.tid)
        return CallRecord(seq, c.call, thread, name, c.start, c.duration_ns / 1e9, args, c.handle, error)

    def locate(self, v: Violation) -> TraceViolation:
        origin = self.entries[v.seq - 1][1]
        if isinstance(origin, ServerEvent):
            message = one_line(f"{v.call} ({SERVER_THREAD}, target {origin.target or '?'}): {v.message}")
            return TraceViolation(v.rule, v.item, message, v.seq, v.call, v.thread, time=origin.time)
        pid, tid, line = self.trace.processes[origin.process].pid, origin.tid, origin.line
        where = f"{self.thread_name(origin.process, tid)}, seq {origin.seq}, line {line}"
        message = one_line(f"{v.call} ({where}): {v.message}")
        return TraceViolation(v.rule, v.item, message, v.seq, v.call, v.thread, pid, tid, line, origin.start)


def _targets(trace: Trace) -> set[str]:
    """The VM and snapshot morefs the trace names (vmxSpec "moref=vm-12", snapshotRef)."""
    found: set[str] = set()
    for c in trace.calls:
        params = c.args.get("params")
        spec = params.get("vmxSpec") if isinstance(params, dict) else None
        if isinstance(spec, str) and spec.startswith("moref="):
            found.add(spec[len("moref=") :])
        if isinstance(c.args.get("snapshotRef"), str):
            found.add(c.args["snapshotRef"])
    return found


def to_records(trace: Trace, server_events: Iterable[ServerEvent] = ()) -> list[CallRecord]:
    """The trace (and the server's events) as CallRecords in start-time order, for `rules.check`."""
    return [record for record, _ in _Timeline(trace, server_events).entries]


def foreign_records(trace: Trace) -> tuple[list[CallRecord], set[int]]:
    """The trace's calls as CallRecords for another recorder (`CallRecorder.import_records`), with handles made
    unique per process ("pid 12/disk-10000": every process's library numbers its own), and the thread ids of the
    threads each process had before its InitEx (R1)."""
    timeline = _Timeline(trace, ())
    out: list[CallRecord] = []
    for record, origin in timeline.entries:
        assert isinstance(origin, TraceCall)
        label = trace.processes[origin.process].label
        args = dict(record.args)
        for key in ("connection", "parent"):
            if isinstance(args.get(key), str):
                args[key] = f"{label}/{args[key]}"
        handle = f"{label}/{record.handle}" if record.handle else None
        out.append(replace(record, args=args, handle=handle))
    before = {
        timeline.thread_id(index, tid)
        for index, process in enumerate(trace.processes)
        for tid in process.threads_before or ()
    }
    return out, before


def _effect_time(entry: tuple[CallRecord, TraceCall | ServerEvent]) -> float:
    """When a step takes effect: Cleanup has released the hot-added disks only once it returns."""
    record = entry[0]
    return record.start + (record.duration if record.call == "VixDiskLib_Cleanup" else 0.0)


def check_trace(trace: Trace, server_events: Iterable[ServerEvent] = ()) -> list[TraceViolation]:
    """Every usage violation and every fault of the trace itself (rules "trace-..."), in time order.

    Thread rules run per process (tids and handles are a process's own); Cleanup before snapshot removal and
    access pairing run over all processes and the server's events together.
    """
    timeline = _Timeline(trace, server_events)
    per_process: dict[int, list[CallRecord]] = {}
    for record, origin in timeline.entries:
        if isinstance(origin, TraceCall):
            per_process.setdefault(origin.process, []).append(record)
    found: list[TraceViolation] = []
    for index, records in per_process.items():
        before = {timeline.thread_id(index, tid) for tid in trace.processes[index].threads_before or ()}
        found += [timeline.locate(v) for v in check(records, before) if v.rule in THREAD_RULES]
    across = [record for record, _ in sorted(timeline.entries, key=_effect_time)]
    found += [timeline.locate(v) for v in check(across) if v.rule in TIMELINE_RULES]
    found += _trace_faults(trace, timeline)
    found.sort(key=lambda v: (v.time, v.line or 0))
    return found


def _trace_faults(trace: Trace, timeline: _Timeline) -> list[TraceViolation]:
    """What the C library (or the product) must fix for its trace to be judged with confidence."""
    out: list[TraceViolation] = []

    def fault(rule: str, process: int, tid: int, line: int, time: float, call: str, text: str) -> None:
        name, seq = timeline.thread_name(process, tid), timeline.seq_of_line.get(line, 0)
        message = one_line(f"{call} ({name}, line {line}): {text}")
        out.append(TraceViolation(rule, "", message, seq, call, name, trace.processes[process].pid, tid, line, time))

    steps: dict[int, list[TraceCall | Panic]] = {}  # per process, in time order
    for _, origin in timeline.entries:
        if isinstance(origin, TraceCall):
            steps.setdefault(origin.process, []).append(origin)
    for panic in trace.panics:
        steps.setdefault(panic.process, []).append(panic)
        fault("trace-panic", panic.process, panic.tid, panic.line, panic.time, "panic", panic.message)
    for index, process in enumerate(trace.processes):
        mine = steps.get(index, [])
        first = min(mine, key=lambda s: s.line, default=None)
        if process.start_line is None and first is not None:
            what = first.call if isinstance(first, TraceCall) else "panic"
            time = first.start if isinstance(first, TraceCall) else first.time
            text = f"{process.label} wrote no start line (the library writes one at the first InitEx)"
            fault("trace-no-start", index, first.tid, first.line, time, what, text)
        calls = [s for s in mine if isinstance(s, TraceCall)]
        if calls and calls[0].call not in ("VixDiskLib_InitEx", "VixDiskLib_Init"):
            c = calls[0]
            text = f"called in {process.label} before any VixDiskLib_InitEx"
            fault("trace-no-init", index, c.tid, c.line, c.start, c.call, text)
    by_line = {c.line: c for c in trace.calls}
    for rule, line, text in trace.problems:
        c = by_line[line]
        fault(rule, c.process, c.tid, c.line, c.start, c.call, text)
    return out


# --- reporting ---


def summary(trace: Trace, violations: Iterable[Violation]) -> dict[str, Any]:
    """A JSON-serialisable account of the trace and its violations, for reports."""
    threads: dict[int, set[int]] = {}
    for c in trace.calls:
        threads.setdefault(c.process, set()).add(c.tid)
    calls_of, panics_of = Counter(c.process for c in trace.calls), Counter(p.process for p in trace.panics)
    processes = [
        {"pid": p.pid, "instance": p.instance, "library": p.library, "mode": p.mode, "time": p.time}
        | {"start_line": p.start_line, "calls": calls_of[i], "threads": len(threads.get(i, ())), "panics": panics_of[i]}
        for i, p in enumerate(trace.processes)
    ]
    found = []
    for v in violations:
        located = v if isinstance(v, TraceViolation) else TraceViolation(v.rule, v.item, v.message, v.seq, v.call)
        kind = "trace" if v.rule.startswith("trace-") else "usage"
        found.append({"rule": v.rule, "item": v.item, "kind": kind, "call": v.call, "pid": located.pid})
        found[-1] |= {"tid": located.tid, "line": located.line, "message": v.message}
    return {
        "file": str(trace.path),
        "lines": trace.lines,
        "truncated_lines": trace.truncated_lines,
        "ignored_lines": trace.ignored_lines,
        "processes": processes,
        "calls": dict(sorted(Counter(c.call for c in trace.calls).items())),
        "threads": sum(len(t) for t in threads.values()),
        "violations": found,
    }
