"""The trace file a C libvixDiskLib writes (`VDDKC_TRACE`): its format and its reader, bounded against hostile input.

Why: the file is written by a partner's process, so reading it trusts nothing in it: a line is at most
MAX_LINE_BYTES, the calls held at most MAX_CALLS, a call name or handle at most MAX_NAME characters, and a
secret written is replaced before any report repeats it. TraceError names the first line that breaks the
contract; `trace.py` judges what is read.

The trace format, the contract with the C library. JSON Lines, UTF-8, one object per line, appended by
every process that loads the library ("simulated" mode forwards to the harness's simulated library,
"forward" mode to VMware's). Each line must be written with one write() on an O_APPEND descriptor, so lines
of processes sharing the file never interleave; a line is at most 1 MiB. Every line has "v": 1 and "kind".

- start, once per process at its first InitEx:
  {"v":1,"kind":"start","pid":P,"library":"/path/libvixDiskLib.so.7","mode":"simulated"|"forward",
   "time":<epoch seconds>}
- call, one per VixDiskLib call, written when it returns:
  {"v":1,"kind":"call","pid":P,"seq":N,"call":"VixDiskLib_Open","tid":T,"start":<epoch seconds>,
   "duration_ns":<int>,"args":{...},"handle":"disk-..."|"conn-..."|null,"error":<VixError>|null,
   "result":<value> (optional), "error_text":<the library's detail of a failure> (optional)}
  seq counts from 1 per process; tid is the Linux thread id; error is null on VIX_OK, on VIX_ASYNC and for
  void functions. args: InitEx {major, minor, libDir, configFile, threads_before: [tids of the process's
  other threads at InitEx]}; ConnectEx {params: {vmxSpec, serverName, thumbPrint, credType, userName, port,
  nfcHostPort, password, cookie, key}, readOnly, snapshotRef, transportModes}, handle the new "conn-...";
  Open {connection, path, flags, transport (the mode chosen, on success)}, handle the new "disk-...";
  Close, GetInfo, GetTransportMode (result "hotadd" ...), Read/Write/ReadAsync/WriteAsync {startSector,
  numSectors}, Wait, Flush: handle the disk; QueryAllocatedBlocks {startSector, numSectors, chunkSize,
  numBlocks}; Attach {parent}, handle the child; PrepareForAccess/EndAccess {params, identity}; Cleanup
  {params, numCleanedUp, numRemaining}; Disconnect: handle the connection; ListTransportModes: result;
  Exit {}. Secrets (password, cookie, key, any key named like one) are "<redacted>" or null, never the value.
- panic: {"v":1,"kind":"panic","pid":P,"tid":T,"time":<epoch seconds>,"message":"..."}

Unknown keys, calls and kinds are tolerated (a later library may add them); blank lines are skipped; a cut
last line (the writer died) is counted, not an error. Linux reuses tids, so a thread that ended before
InitEx and a later one with its tid are taken for one thread (rare within one backup).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError
from conformance.vixdisklib.recorder import SECRET_KEYS

__all__ = [
    "MAX_CALLS",
    "MAX_LINE_BYTES",
    "MAX_NAME",
    "MODES",
    "REDACTED",
    "VIX_ASYNC",
    "Panic",
    "Process",
    "ServerEvent",
    "Trace",
    "TraceCall",
    "TraceError",
    "read_trace",
]

MAX_LINE_BYTES = 1 << 20
#: a bound on what is held in memory; raise it for a longer trace
MAX_CALLS = 2_000_000
MAX_NAME = 200
REDACTED = "<redacted>"
VIX_ASYNC = 25000
MODES = ("simulated", "forward")


class TraceError(InputError):
    """The trace file cannot be read as the contract says (one line: file, line number, what is wrong)."""


class _LineError(Exception):
    """What is wrong with one line; `read_trace` adds the file and line number."""


@dataclass(frozen=True)
class ServerEvent:
    """A control-plane step from the vSphere server's task log, e.g. name="vsphere.RemoveSnapshot"."""

    name: str
    time: float  # epoch seconds
    target: str | None = None  # "vm-12" or "snapshot-34"; an event naming another VM than the trace's is left out


@dataclass(slots=True)
class TraceCall:
    line: int
    process: int  # index into Trace.processes
    seq: int
    call: str
    tid: int
    start: float
    duration_ns: int
    args: dict[str, Any]
    handle: str | None
    error: int | None  # the VixError as written
    result: Any = None
    has_result: bool = False
    error_text: str | None = None  # the library's own words for a failure


@dataclass
class Process:
    """One process that wrote to the trace; a pid reused by a later process (new start line) is a new one."""

    pid: int
    instance: int
    start_line: int | None = None  # None: the process never wrote a start line
    library: str = ""
    mode: str = ""
    time: float | None = None
    threads_before: tuple[int, ...] | None = None  # tids listed by the first InitEx

    @property
    def label(self) -> str:
        return f"pid {self.pid}" + (f" #{self.instance}" if self.instance > 1 else "")


@dataclass(frozen=True)
class Panic:
    line: int
    process: int
    tid: int
    time: float
    message: str


@dataclass
class Trace:
    path: Path
    processes: list[Process] = field(default_factory=list)
    calls: list[TraceCall] = field(default_factory=list)  # in file order
    panics: list[Panic] = field(default_factory=list)
    problems: list[tuple[str, int, str]] = field(default_factory=list)  # (rule, line, message) found reading
    lines: int = 0
    truncated_lines: int = 0
    ignored_lines: int = 0  # lines of a kind this harness does not know


# --- reading ---


def read_trace(path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES, max_calls: int = MAX_CALLS) -> Trace:
    """The trace in `path`, read a line at a time; TraceError names the first line that breaks the contract."""
    trace = Trace(Path(path))
    reader = _Reader(trace, max_calls)
    number = 0
    try:
        with trace.path.open("rb") as file:
            while raw := file.readline(max_line_bytes + 1):
                number += 1
                ended = raw.endswith(b"\n")
                if not ended and len(raw) > max_line_bytes:
                    raise _LineError(f"the line is longer than {max_line_bytes} bytes")
                try:
                    entry = _parse(raw)
                except _LineError:
                    if ended:
                        raise
                    trace.truncated_lines += 1  # the last line, cut: its writer died mid-write
                    break
                if entry is not None:
                    reader.add(number, entry)
    except _LineError as exc:
        raise TraceError(f"trace {trace.path} line {number}: {exc}") from None
    except OSError as exc:
        raise TraceError(f"cannot read trace {trace.path}: {exc.strerror or exc}") from None
    trace.lines = number
    return trace


def _parse(raw: bytes) -> dict[str, Any] | None:
    raw = raw.rstrip(b"\n").rstrip(b"\r")
    if not raw.strip():
        return None
    try:
        entry = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise _LineError("not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise _LineError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise _LineError(f"not JSON: {str(exc) or 'nested too deeply'}") from None
    if not isinstance(entry, dict):
        raise _LineError("not a JSON object")
    return entry


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(entry: dict[str, Any], key: str, kinds: tuple[type, ...], what: str, optional: bool = False) -> Any:
    """entry[key], checked to be one of `kinds` (never a bool, never NaN); None if optional and null or absent."""
    if entry.get(key) is None:
        if optional:
            return None
        raise _LineError(f'{entry.get("kind")} line without "{key}"')
    value = entry[key]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise _LineError(f'"{key}" is {_show(value)}, not {what}')
    if isinstance(value, float) and not math.isfinite(value):
        raise _LineError(f'"{key}" is not a finite number')
    return value


def _uint(entry: dict[str, Any], key: str, minimum: int = 0) -> int:
    value: int = _get(entry, key, (int,), "an integer")
    if value < minimum:
        raise _LineError(f'"{key}" is {value}, less than {minimum}')
    return value


def _time(entry: dict[str, Any], key: str) -> float:
    return float(_get(entry, key, (int, float), "a number"))


def _name(entry: dict[str, Any], key: str, optional: bool = False) -> Any:
    """A call name or handle: short, as the messages quote it."""
    value = _get(entry, key, (str,), "a string", optional)
    if value is not None and len(value) > MAX_NAME:
        raise _LineError(f'"{key}" is longer than {MAX_NAME} characters')
    return value


class _Reader:
    def __init__(self, trace: Trace, max_calls: int) -> None:
        self.trace = trace
        self.max_calls = max_calls
        self.current: dict[int, int] = {}  # pid -> index of its latest process
        self.seqs: dict[int, set[int]] = {}

    def add(self, line: int, entry: dict[str, Any]) -> None:
        version = entry.get("v")
        if version != 1 or isinstance(version, bool):
            raise _LineError(f"trace format version {_show(version)} (this harness reads version 1)")
        kind = entry.get("kind")
        if not isinstance(kind, str):
            raise _LineError(f'"kind" is {_show(kind)}, not a string')
        if kind == "start":
            self._start(line, entry)
        elif kind == "call":
            self._call(line, entry)
        elif kind == "panic":
            process = self._process(_uint(entry, "pid", 1))
            message = str(_get(entry, "message", (str,), "a string"))
            self.trace.panics.append(Panic(line, process, _uint(entry, "tid"), _time(entry, "time"), message))
        else:
            self.trace.ignored_lines += 1

    def _start(self, line: int, entry: dict[str, Any]) -> None:
        pid, library = _uint(entry, "pid", 1), _get(entry, "library", (str,), "a string")
        mode, time = _get(entry, "mode", (str,), "a string"), _time(entry, "time")
        if mode not in MODES:
            raise _LineError(f'"mode" is {_show(mode)}, not one of {", ".join(MODES)}')
        index = self.current.get(pid)
        if index is None or self.trace.processes[index].start_line is not None:
            index = self._new_process(pid)  # a first start line, or the pid reused by a new process
        process = self.trace.processes[index]
        process.start_line, process.library, process.mode, process.time = line, library, mode, time

    def _call(self, line: int, entry: dict[str, Any]) -> None:
        if len(self.trace.calls) + len(self.trace.panics) >= self.max_calls:
            raise _LineError(f"more than {self.max_calls} calls in the trace (read_trace(max_calls=...) reads more)")
        process = self._process(_uint(entry, "pid", 1))
        args: dict[str, Any] = _get(entry, "args", (dict,), "an object")
        error = _get(entry, "error", (int,), "an integer or null", optional=True)
        seq, name, tid = _uint(entry, "seq", 1), _name(entry, "call"), _uint(entry, "tid")
        start, duration, handle = _time(entry, "start"), _uint(entry, "duration_ns"), _name(entry, "handle", True)
        call = TraceCall(line, process, seq, name, tid, start, duration, args, handle, error)
        call.result, call.has_result = entry.get("result"), "result" in entry
        call.error_text = _get(entry, "error_text", (str,), "a string or null", optional=True)
        if call.call == "VixDiskLib_InitEx" and self.trace.processes[process].threads_before is None:
            before = args.get("threads_before", [])
            if not isinstance(before, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in before):
                raise _LineError(f'InitEx "threads_before" is {_show(before)}, not a list of thread ids')
            self.trace.processes[process].threads_before = tuple(before)
        for where in _scrub(args, call.result):
            self.trace.problems.append(
                ("trace-secret", line, f"{where} is not {REDACTED!r} or null: never write secrets")
            )
        seqs = self.seqs.setdefault(process, set())
        if call.seq in seqs:
            self.trace.problems.append(("trace-duplicate-seq", line, f"seq {call.seq} repeated in its process"))
        seqs.add(call.seq)
        self.trace.calls.append(call)

    def _process(self, pid: int) -> int:
        index = self.current.get(pid)
        return self._new_process(pid) if index is None else index

    def _new_process(self, pid: int) -> int:
        instance = 1 + sum(1 for p in self.trace.processes if p.pid == pid)
        self.trace.processes.append(Process(pid, instance))
        self.current[pid] = len(self.trace.processes) - 1
        return self.current[pid]


def _scrub(args: dict[str, Any], result: Any) -> list[str]:
    """Where a secret is written in a call's args or result: replaced in place so no report repeats it."""
    found: list[str] = []
    stack: list[tuple[Any, str]] = [(args, "args"), (result, "result")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if any(word in str(key).lower() for word in SECRET_KEYS) and value is not None and value != REDACTED:
                    node[key] = REDACTED
                    found.append(f"{where}.{_show(key)[1:-1]}")
                else:
                    stack.append((value, f"{where}.{_show(key)[1:-1]}"))
        elif isinstance(node, list):
            stack.extend((value, f"{where}[{i}]") for i, value in enumerate(node))
    return found
