"""The usage-rule checker, both ways: a correct backup trace has no violation, each wrong one is flagged.

Traces come from real facade calls on the simulated library (one simulator for the module); the
control-plane steps of a sequence are recorded with `recorder.note`, as the sequences do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pyVmomi import vim

from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.recorder import CallRecord
from conformance.vixdisklib.rules import Violation, check
from conformance.vixdisklib.types import ConnectParams
from tests.vixdisklib.conftest import MakeLib, disk_path, find, snapshot

T = TypeVar("T")
Backup = tuple[ConnectParams, str, str]  # VM params, snapshot moref, disk path in the snapshot


@pytest.fixture(scope="module")
def backup(content: Any, vm_params: Callable[[str], ConnectParams]) -> Backup:
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    snap = snapshot(vm, "rules-backup")
    return vm_params("target-vmfs"), snap._moId, disk_path(snap)


def in_thread(work: Callable[[], T], name: str) -> T:
    """Run `work` on a new thread (created now) and return its result or raise its exception."""
    result: dict[str, Any] = {}

    def body() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # handed back to the caller
            result["error"] = exc

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def rules_of(lib: VixDiskLib) -> list[tuple[str, str]]:
    return [(v.rule, v.item) for v in lib.violations()]


def backup_disk(lib: VixDiskLib, backup: Backup, modes: str, *, qab_on: str = "main", close_on: str = "main") -> None:
    """Connect, open, GetInfo, QueryAllocatedBlocks, read with a worker thread, close, disconnect."""
    params, snap, path = backup
    connection = lib.connect_ex(params, True, snap, modes)
    disk = lib.open(connection, path)
    capacity = lib.get_info(disk).capacity
    if qab_on == "main":
        blocks = lib.allocated_blocks(disk, capacity, 2048)
    else:
        blocks = in_thread(lambda: lib.allocated_blocks(disk, capacity, 2048), "qab-worker")
    in_thread(lambda: [lib.read(disk, b.offset, min(b.length, 128)) for b in blocks[:2]], "read-worker")
    close(lib, disk, close_on)
    lib.disconnect(connection)


def close(lib: VixDiskLib, disk: Disk, on: str) -> None:
    if on == "main":
        lib.close(disk)
    else:
        in_thread(lambda: lib.close(disk), "close-worker")


def test_a_correct_backup_sequence_has_no_violation(make_lib: MakeLib, backup: Backup) -> None:
    lib = make_lib()
    params = backup[0]
    lib.prepare_for_access(params, "rules-test")
    backup_disk(lib, backup, "hotadd")
    lib.cleanup(params)
    lib.recorder.note("vsphere.RemoveSnapshot", snapshot=backup[1])
    lib.end_access(params, "rules-test")
    assert lib.violations() == []
    calls = [r.call for r in lib.recorder.records()]
    assert calls[0] == "VixDiskLib_InitEx" and "VixDiskLib_QueryAllocatedBlocks" in calls


def test_c1_query_allocated_blocks_from_a_worker_thread_is_flagged(make_lib: MakeLib, backup: Backup) -> None:
    lib = make_lib()
    backup_disk(lib, backup, "nbdssl", qab_on="worker")
    [violation] = lib.violations()
    assert (violation.rule, violation.item) == ("qab-thread", "C1")
    assert "qab-worker" in violation.message and "MainThread" in violation.message
    flagged = next(r for r in lib.recorder.records() if r.seq == violation.seq)
    assert flagged.call == "VixDiskLib_QueryAllocatedBlocks"


def test_c1_closing_on_another_thread_than_the_opener_is_flagged(make_lib: MakeLib, backup: Backup) -> None:
    lib = make_lib()
    backup_disk(lib, backup, "nbdssl", close_on="worker")
    [violation] = lib.violations()
    assert (violation.rule, violation.item) == ("open-close-thread", "C1")
    assert "close-worker" in violation.message


def test_r1_a_thread_created_before_init_ex_that_then_calls_is_flagged(make_lib: MakeLib, vddk_config: Path) -> None:
    lib = make_lib(init=False)
    go = threading.Event()
    early = threading.Thread(target=lambda: (go.wait(30), lib.list_transport_modes()), name="early-worker")
    early.start()
    lib.init_ex(vddk_config)
    go.set()
    early.join()
    [violation] = lib.violations()
    assert (violation.rule, violation.item) == ("threads-after-init", "R1")
    assert "early-worker" in violation.message


@pytest.mark.parametrize("reused_ident", [False, True], ids=["fresh-thread", "ident-of-an-ended-early-thread"])
def test_r1_a_thread_created_after_init_ex_is_not_flagged(
    make_lib: MakeLib, vddk_config: Path, reused_ident: bool
) -> None:
    """Also when it reuses the OS ident of a thread that existed at InitEx and has ended since (idents of
    ended threads are handed out again)."""
    lib = make_lib(init=False)
    go = threading.Event()
    early = threading.Thread(target=lambda: go.wait(30), name="early-idle")
    early.start()
    lib.init_ex(vddk_config)
    if reused_ident:
        go.set()
        early.join()
    late = threading.Thread(target=lib.list_transport_modes, name="late-worker")
    late.start()
    late.join()
    go.set()
    early.join()
    if reused_ident and late.ident != early.ident:
        pytest.skip("the OS did not reuse the thread ident this time")
    assert lib.violations() == []


def test_r1_a_call_before_init_ex_is_flagged(make_lib: MakeLib) -> None:
    lib = make_lib(init=False)
    lib.list_transport_modes()
    [violation] = lib.violations()
    assert (violation.rule, violation.item) == ("threads-after-init", "R1")
    assert "before InitEx" in violation.message


@pytest.mark.parametrize("asks_transport", [True, False], ids=["with-GetTransportMode", "without-GetTransportMode"])
def test_removing_the_snapshot_after_hotadd_without_cleanup_is_flagged(
    make_lib: MakeLib, backup: Backup, asks_transport: bool
) -> None:
    lib = make_lib()
    params, snap, path = backup
    with lib.connected(params, True, snap, "hotadd") as connection, lib.opened(connection, path) as disk:
        if asks_transport:
            assert lib.get_transport_mode(disk) == "hotadd"
        lib.read(disk, 0, 8)
    lib.recorder.note("vsphere.RemoveSnapshot", snapshot=snap)
    [violation] = lib.violations()
    assert violation.rule == "cleanup-before-snapshot-removal"
    assert lib.recorder.records()[-1].seq == violation.seq
    lib.cleanup(params)


@pytest.mark.parametrize("modes", ["hotadd", "nbdssl"])
def test_removing_the_snapshot_after_cleanup_or_without_hotadd_is_not_flagged(
    make_lib: MakeLib, backup: Backup, modes: str
) -> None:
    lib = make_lib()
    params, snap, path = backup
    with lib.connected(params, True, snap, modes) as connection, lib.opened(connection, path) as disk:
        assert lib.get_transport_mode(disk) == modes
    if modes == "hotadd":
        lib.cleanup(params)
    lib.recorder.note("vsphere.RemoveSnapshot", snapshot=snap)
    assert lib.violations() == []


def test_prepare_for_access_without_end_access_is_flagged(make_lib: MakeLib, backup: Backup) -> None:
    lib = make_lib()
    params = backup[0]
    lib.prepare_for_access(params, "rules-test")
    try:
        [violation] = lib.violations()
        assert violation.rule == "access-pairing"
        assert params.vmx_spec is not None and params.vmx_spec in violation.message
    finally:
        lib.end_access(params, "rules-test")
    assert lib.violations() == []


def test_end_access_for_another_vm_does_not_pair(
    make_lib: MakeLib, backup: Backup, vm_params: Callable[[str], ConnectParams]
) -> None:
    lib = make_lib()
    params = backup[0]
    lib.prepare_for_access(params, "rules-test")
    lib.end_access(vm_params("target-nfs"), "rules-test")
    assert rules_of(lib) == [("access-pairing", "")]
    lib.end_access(params, "rules-test")


# --- the checker over hand-made records ---


def record(seq: int, call: str, thread: int, handle: str | None = None, error: int | None = None) -> CallRecord:
    return CallRecord(seq, call, thread, f"thread-{thread}", 0.0, handle=handle, error=error)


def test_failed_opens_do_not_bind_a_handle_to_a_thread() -> None:
    records = [
        record(1, "VixDiskLib_InitEx", 1),
        record(2, "VixDiskLib_Open", 2, "disk-1", error=13),
        record(3, "VixDiskLib_Open", 1, "disk-1"),
        record(4, "VixDiskLib_QueryAllocatedBlocks", 1, "disk-1"),
        record(5, "VixDiskLib_Close", 1, "disk-1"),
    ]
    assert check(records) == []


def test_violations_come_in_call_order_and_print_their_item() -> None:
    records = [
        record(1, "VixDiskLib_InitEx", 1),
        record(2, "VixDiskLib_Open", 1, "disk-1"),
        record(3, "VixDiskLib_QueryAllocatedBlocks", 7, "disk-1"),
        record(4, "VixDiskLib_Close", 7, "disk-1"),
    ]
    found = check(records, threads_before_init={7})
    assert [(v.rule, v.seq) for v in found] == [
        ("qab-thread", 3),
        ("threads-after-init", 3),
        ("open-close-thread", 4),
    ]
    assert str(found[0]).startswith("[qab-thread C1] call #3: ")
    assert isinstance(found[0], Violation)


def test_violations_name_the_flagged_call_and_its_thread() -> None:
    hotadd = record(2, "VixDiskLib_Open", 1, "disk-1")
    hotadd.args["transport"] = "hotadd"
    prepare = record(5, "VixDiskLib_PrepareForAccess", 1)
    prepare.args["params"] = {"vmxSpec": "moref=vm-1"}
    records = [
        record(1, "VixDiskLib_InitEx", 1),
        hotadd,
        record(3, "VixDiskLib_Close", 2, "disk-1"),
        record(4, "vsphere.RemoveSnapshot", 0),
        prepare,
    ]
    found = check(records)
    assert [(v.rule, v.call, v.thread) for v in found] == [
        ("open-close-thread", "VixDiskLib_Close", "thread-2"),
        ("cleanup-before-snapshot-removal", "vsphere.RemoveSnapshot", "thread-0"),
        ("access-pairing", "VixDiskLib_PrepareForAccess", "thread-1"),
    ]
    assert "call #2 VixDiskLib_Open on thread 'thread-1'" in found[1].message
