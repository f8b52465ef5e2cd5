"""Judging a C product from its VDDKC_TRACE file: hand-written traces, right and wrong, and hostile files.

The file is written by a partner's process, so besides the usage rules the reader itself is tested: cut,
malformed, oversized and future-version files, and secrets the library must never write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.input_errors import InputError
from conformance.vixdisklib.rules import Violation
from conformance.vixdisklib.trace import check_trace, summary, to_records
from conformance.vixdisklib.trace_format import ServerEvent, TraceError, read_trace

T0 = 1_700_000_000.0
VM = "moref=vm-12"
PARAMS = {"vmxSpec": VM, "serverName": "vc", "credType": 1, "userName": "u", "password": "<redacted>"}
DISK = "[ds] vm/vm.vmdk"
REMOVE = "vsphere.RemoveSnapshot"


class Writer:
    """Builds trace lines of one process with increasing seq and start times."""

    def __init__(self, pid: int, clock: list[float]) -> None:
        self.pid, self.seq, self.clock = pid, 0, clock

    def start(self) -> dict[str, Any]:
        return {"v": 1, "kind": "start", "pid": self.pid, "library": "/l/libvixDiskLib.so.7", "mode": "simulated"}

    def call(self, name: str, tid: int, handle: str | None = None, error: int | None = None, **extra: Any) -> dict:
        self.seq += 1
        self.clock[0] += 1.0
        line = {"v": 1, "kind": "call", "pid": self.pid, "seq": self.seq, "call": f"VixDiskLib_{name}", "tid": tid}
        line |= {"start": self.clock[0], "duration_ns": 1000, "args": extra.pop("args", {}), "handle": handle}
        return line | {"error": error} | extra

    def init(self, tid: int, before: list[int] | None = None) -> list[dict[str, Any]]:
        args = {"major": 7, "minor": 0, "libDir": None, "configFile": None, "threads_before": before or []}
        return [self.start() | {"time": self.clock[0]}, self.call("InitEx", tid, args=args)]

    def backup(self, tid: int, qab_tid: int | None = None, transport: str = "hotadd") -> list[dict[str, Any]]:
        """ConnectEx, Open, QueryAllocatedBlocks, Read, Close, Disconnect (the disk on thread `tid`)."""
        conn, disk = f"conn-{self.pid}", f"disk-{self.pid}"
        connect = {"params": PARAMS, "readOnly": True, "snapshotRef": "snapshot-34", "transportModes": transport}
        return [
            self.call("ConnectEx", tid, conn, args=connect),
            self.call("Open", tid, disk, args={"connection": conn, "path": DISK, "flags": 4, "transport": transport}),
            self.call("QueryAllocatedBlocks", qab_tid or tid, disk, args={"startSector": 0, "numSectors": 2048}),
            self.call("Read", tid + 1, disk, args={"startSector": 0, "numSectors": 128}),
            self.call("Close", tid, disk),
            self.call("Disconnect", tid, conn),
        ]

    def cleanup(self, tid: int) -> dict[str, Any]:
        return self.call("Cleanup", tid, args={"params": PARAMS, "numCleanedUp": 1, "numRemaining": 0})


def write(tmp_path: Path, lines: list[Any], tail: str = "") -> Path:
    """The trace file: dicts as JSON lines, strings as they are (for malformed lines), then `tail` unterminated."""
    path = tmp_path / "trace.jsonl"
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text + tail, encoding="utf-8")
    return path


def correct_backup() -> tuple[list[dict[str, Any]], list[float]]:
    clock = [T0]
    p = Writer(100, clock)
    lines = [*p.init(100), *p.backup(100), p.cleanup(100), p.call("Exit", 100)]
    return lines, clock


def removal(at: float) -> ServerEvent:
    return ServerEvent(REMOVE, at, "vm-12")


def rules(found: Sequence[Violation]) -> list[str]:
    return [v.rule for v in found]


def test_a_correct_hotadd_backup_has_no_violation(tmp_path: Path) -> None:
    lines, clock = correct_backup()
    trace = read_trace(write(tmp_path, lines))
    assert check_trace(trace, [removal(clock[0] + 10)]) == []
    records = to_records(trace, [removal(clock[0] + 10)])
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert records[0].thread_name == "pid 100 tid 100" and records[-1].call == REMOVE
    report = summary(trace, [])
    assert report["calls"]["VixDiskLib_Open"] == 1 and report["threads"] == 2
    assert report["processes"][0] | {"pid": 100, "mode": "simulated", "calls": 9} == report["processes"][0]
    json.dumps(report)


def test_query_allocated_blocks_on_another_thread_is_flagged_with_pid_and_tid(tmp_path: Path) -> None:
    clock = [T0]
    p = Writer(100, clock)
    trace = read_trace(write(tmp_path, [*p.init(100), *p.backup(100, qab_tid=107), p.call("Exit", 100)]))
    [violation] = check_trace(trace)
    assert isinstance(violation, Violation)  # a rules.Violation (TraceViolation), located in the trace
    assert (violation.rule, violation.item, violation.call) == ("qab-thread", "C1", "VixDiskLib_QueryAllocatedBlocks")
    assert (violation.pid, violation.tid, violation.line) == (100, 107, 5)
    assert "VixDiskLib_QueryAllocatedBlocks (pid 100 tid 107, seq 4, line 5)" in violation.message
    assert str(violation).startswith("[qab-thread C1] line 5: ")
    [entry] = summary(trace, [violation])["violations"]
    assert entry == {
        "rule": "qab-thread",
        "item": "C1",
        "kind": "usage",
        "call": "VixDiskLib_QueryAllocatedBlocks",
        "pid": 100,
        "tid": 107,
        "line": 5,
        "message": violation.message,
    }


def test_a_thread_that_existed_at_init_ex_calling_open_is_flagged(tmp_path: Path) -> None:
    clock = [T0]
    p = Writer(100, clock)
    trace = read_trace(write(tmp_path, [*p.init(100, before=[150]), *p.backup(150)]))
    [violation] = [v for v in check_trace(trace) if v.rule == "threads-after-init"]
    assert (violation.item, violation.call) == ("R1", "VixDiskLib_ConnectEx")
    assert "pid 100 tid 150" in violation.message


def test_removing_the_snapshot_before_cleanup_is_flagged(tmp_path: Path) -> None:
    lines, _ = correct_backup()
    cleanup_start = next(line["start"] for line in lines if line.get("call") == "VixDiskLib_Cleanup")
    trace = read_trace(write(tmp_path, lines))
    [violation] = check_trace(trace, [removal(cleanup_start - 0.5)])
    assert (violation.rule, violation.call, violation.pid) == ("cleanup-before-snapshot-removal", REMOVE, None)
    assert "VixDiskLib_Open" in violation.message and "pid 100 tid 100" in violation.message


def test_a_removal_during_cleanup_is_flagged_a_removal_of_another_vm_is_not(tmp_path: Path) -> None:
    lines, _ = correct_backup()
    cleanup = next(line for line in lines if line.get("call") == "VixDiskLib_Cleanup")
    cleanup["duration_ns"] = 2_000_000_000  # Cleanup has not released the disks until it returns
    trace = read_trace(write(tmp_path, lines))
    assert rules(check_trace(trace, [removal(cleanup["start"] + 1)])) == ["cleanup-before-snapshot-removal"]
    assert check_trace(trace, [ServerEvent(REMOVE, cleanup["start"] - 0.5, "vm-99")]) == []


def test_cleanup_in_a_second_process_before_the_removal_is_not_flagged(tmp_path: Path) -> None:
    clock = [T0]
    backup, recovery = Writer(100, clock), Writer(200, clock)
    crashed = [*backup.init(100), *backup.backup(100)[:3]]  # died after QueryAllocatedBlocks
    lines = [*crashed, *recovery.init(5), recovery.cleanup(5), recovery.call("Exit", 5)]
    trace = read_trace(write(tmp_path, lines))
    assert check_trace(trace, [removal(clock[0] + 1)]) == []
    assert rules(check_trace(trace, [removal(crashed[-1]["start"] + 0.5)])) == ["cleanup-before-snapshot-removal"]


def test_the_same_tid_in_two_processes_is_two_threads(tmp_path: Path) -> None:
    """Process 200 closes its own disk-1 on its tid 7; process 100 opened its disk-1 on its tid 7 too."""
    clock = [T0]
    a, b = Writer(100, clock), Writer(200, clock)
    lines = [*a.init(7), *b.init(8, before=[7]), a.call("Open", 7, "disk-1", args={"transport": "nbd"})]
    lines += [b.call("Open", 9, "disk-1"), a.call("Close", 7, "disk-1"), b.call("Close", 9, "disk-1")]
    trace = read_trace(write(tmp_path, lines))
    assert check_trace(trace) == []  # tid 7 listed before InitEx by pid 200 is not pid 100's tid 7
    names = {r.thread_id: r.thread_name for r in to_records(trace)}
    assert sorted(names.values()) == ["pid 100 tid 7", "pid 200 tid 8", "pid 200 tid 9"]
    lines.append(b.call("GetInfo", 7, "disk-1"))
    assert rules(check_trace(read_trace(write(tmp_path, lines)))) == ["threads-after-init"]


def test_a_cut_last_line_is_counted_not_an_error(tmp_path: Path) -> None:
    lines, _ = correct_backup()
    trace = read_trace(write(tmp_path, lines, tail=json.dumps(lines[-1])[:40]))
    assert (trace.truncated_lines, len(trace.calls)) == (1, len(lines) - 1)
    assert check_trace(trace) == []


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('{"v":1,"kind":"call","pid":100', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"v":1,"kind":"call","pid":100,"args":{},"seq":"x"}', '"seq" is'),
        ('{"v":1,"kind":"start","pid":1,"library":"l","mode":"other","time":1}', '"mode"'),
        ('{"v":1,"kind":"panic","pid":1,"tid":1,"time":NaN,"message":"m"}', "NaN"),
        ("[" * 100_000, "not JSON"),
        ('{"v":2,"kind":"call"}', "version 2"),
        ('{"kind":"call"}', "version None"),
    ],
    ids=["cut", "array", "seq", "mode", "nan", "deep", "v2", "no-v"],
)
def test_a_malformed_line_is_one_line_naming_file_and_line(tmp_path: Path, bad: str, says: str) -> None:
    lines, _ = correct_backup()
    path = write(tmp_path, [*lines[:3], bad + "\nsecond line", *lines[3:]])
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert isinstance(caught.value, InputError) and "\n" not in message
    assert message.startswith(f"trace {path} line 4: ") and says in message


def test_a_5_mb_line_is_an_error_without_reading_it_whole(tmp_path: Path) -> None:
    lines, _ = correct_backup()
    huge = json.dumps({"v": 1, "kind": "call", "args": {"pad": "x" * 5_000_000}})
    with pytest.raises(TraceError, match=r"line 2: the line is longer than 1048576 bytes"):
        read_trace(write(tmp_path, [lines[0], huge, *lines[1:]]))
    with pytest.raises(TraceError, match="longer than 1000 bytes"):
        read_trace(write(tmp_path, [lines[0]], tail=huge[:2000]), max_line_bytes=1000)  # a cut last line too


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read trace"):
        read_trace(tmp_path / "absent.jsonl")


def test_unknown_keys_calls_kinds_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    lines, clock = correct_backup()
    lines[2]["new_key"] = [1, 2]
    later = Writer(100, clock)
    later.seq = 50
    future = later.call("FutureCall", 100, args={"anything": {"x": 1}})
    trace = read_trace(write(tmp_path, [*lines, {"v": 1, "kind": "log", "pid": 100, "text": "hi"}, "  ", future]))
    assert trace.ignored_lines == 1 and trace.calls[-1].call == "VixDiskLib_FutureCall"
    assert check_trace(trace) == []


@pytest.mark.parametrize("secret", ["hunter2", "", 12345], ids=["password", "empty", "number"])
def test_a_secret_in_a_line_is_flagged_and_never_repeated(tmp_path: Path, secret: Any) -> None:
    lines, _ = correct_backup()
    connect = next(line for line in lines if line.get("call") == "VixDiskLib_ConnectEx")
    connect["args"] = connect["args"] | {"params": PARAMS | {"password": secret, "cookie": None}}
    trace = read_trace(write(tmp_path, lines))
    assert [(rule, line) for rule, line, _ in trace.problems] == [("trace-secret", 3)]
    [violation] = check_trace(trace)
    assert (violation.rule, violation.call) == ("trace-secret", "VixDiskLib_ConnectEx")
    assert "args.params.password" in violation.message
    report = json.dumps(summary(trace, [violation]))
    assert "hunter2" not in report and "hunter2" not in violation.message
    assert trace.calls[1].args["params"]["password"] == "<redacted>"


def test_faults_of_the_trace_itself_are_reported(tmp_path: Path) -> None:
    """A pid without a start line, a call before InitEx, a panic, a repeated seq."""
    clock = [T0]
    a, b = Writer(100, clock), Writer(300, clock)
    lines = [b.call("ListTransportModes", 3, result="file:nbd"), *a.init(1), a.call("Exit", 1)]
    lines += [{"v": 1, "kind": "panic", "pid": 100, "tid": 1, "time": clock[0] + 1, "message": "boom\nline"}]
    lines += [a.call("Exit", 1) | {"seq": 2}]
    found = check_trace(read_trace(write(tmp_path, lines)))
    assert [(v.rule, v.call, v.pid) for v in found] == [
        ("threads-after-init", "VixDiskLib_ListTransportModes", 300),
        ("trace-no-start", "VixDiskLib_ListTransportModes", 300),
        ("trace-no-init", "VixDiskLib_ListTransportModes", 300),
        ("trace-panic", "panic", 100),
        ("trace-duplicate-seq", "VixDiskLib_Exit", 100),
    ]
    assert all("\n" not in v.message for v in found)
    assert [v["kind"] for v in summary(read_trace(write(tmp_path, lines)), found)["violations"]][1:] == ["trace"] * 4


def test_calls_before_init_ex_then_the_start_line_are_one_process(tmp_path: Path) -> None:
    clock = [T0]
    p = Writer(100, clock)
    lines = [p.call("ListTransportModes", 1, result="file"), *p.init(1), p.call("Exit", 1)]
    trace = read_trace(write(tmp_path, lines))
    assert len(trace.processes) == 1 and trace.processes[0].start_line == 2
    assert rules(check_trace(trace)) == ["threads-after-init", "trace-no-init"]


def test_a_reused_pid_with_a_new_start_line_is_a_new_process(tmp_path: Path) -> None:
    clock = [T0]
    first, second = Writer(100, clock), Writer(100, clock)
    lines = [*first.init(1), first.call("Open", 1, "disk-1"), first.call("Exit", 1)]
    lines += [*second.init(2), second.call("Close", 2, "disk-1"), second.call("Exit", 2)]
    trace = read_trace(write(tmp_path, lines))
    assert [p.label for p in trace.processes] == ["pid 100", "pid 100 #2"]
    assert check_trace(trace) == []


def test_errors_are_the_low_16_bits_and_async_is_success(tmp_path: Path) -> None:
    clock = [T0]
    p = Writer(100, clock)
    lines = [*p.init(1), p.call("Open", 1, "disk-1", error=(5 << 32) | 13), p.call("ReadAsync", 1, "disk-1", 25000)]
    records = to_records(read_trace(write(tmp_path, lines)))
    assert [r.error for r in records] == [None, 13, None]
