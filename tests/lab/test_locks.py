"""Cross-process VM locks: two processes never hold one VM's lock at once; different VMs do not wait."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conformance.vsphere.locks import VmLocks, VmLockTimeoutError

HOLDER = """
import json, sys, time
from pathlib import Path
from conformance.vsphere.locks import VmLocks
locks = VmLocks("vc.lab:443", Path(sys.argv[1]), holder="child " + sys.argv[2])
with locks.lock(sys.argv[3]):
    start = time.monotonic()
    print("locked", flush=True)
    time.sleep(float(sys.argv[4]))
    end = time.monotonic()
print(json.dumps([start, end]), flush=True)
"""


def spawn(lock_dir: Path, name: str, vm: str, hold: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), name, vm, str(hold)], stdout=subprocess.PIPE, text=True
    )


def intervals(processes: list[subprocess.Popen[str]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for process in processes:
        stdout, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        start, end = json.loads(stdout.strip().splitlines()[-1])
        out.append((float(start), float(end)))
    return sorted(out)


def test_two_processes_take_turns_on_one_vm(tmp_path: Path) -> None:
    processes = [spawn(tmp_path, f"p{i}", "target-vmfs", 0.4) for i in range(3)]
    spans = intervals(processes)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # CLOCK_MONOTONIC is system-wide on Linux


def test_processes_on_different_vms_do_not_wait_for_each_other(tmp_path: Path) -> None:
    processes = [spawn(tmp_path, f"p{i}", f"vm-{i}", 1.5) for i in range(2)]
    spans = intervals(processes)
    assert spans[1][0] < spans[0][1], spans  # they overlapped


def test_a_killed_holder_releases_the_lock_and_a_waiter_times_out_naming_the_holder(tmp_path: Path) -> None:
    holder = spawn(tmp_path, "killed-one", "target-vmfs", 60)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    locks = VmLocks("vc.lab:443", tmp_path, timeout=0.3)
    with pytest.raises(VmLockTimeoutError, match="'target-vmfs' stayed locked for 0 s by child killed-one"):
        locks.lock("target-vmfs").acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    with VmLocks("vc.lab:443", tmp_path, timeout=5).lock("target-vmfs"):
        pass


def test_the_lock_is_reentrant_for_its_thread_and_exclusive_for_others(tmp_path: Path) -> None:
    locks = VmLocks("vc.lab:443", tmp_path, timeout=10)
    order: list[str] = []
    with locks.lock("vm"), locks.lock("vm"):  # a restore reading back through a snapshot: same thread

        def contend() -> None:
            with locks.lock("vm"):
                order.append("other")

        other = threading.Thread(target=contend)
        other.start()
        time.sleep(0.3)
        order.append("owner")
    other.join(timeout=10)
    assert order == ["owner", "other"]


def test_locks_are_keyed_by_target(tmp_path: Path) -> None:
    a = VmLocks("vc-a:443", tmp_path, timeout=0.2)
    b = VmLocks("vc-b:443", tmp_path, timeout=0.2)
    with a.lock("vm"), b.lock("vm"):
        pass


def test_two_runs_backing_up_one_shared_vm_take_turns(tmp_path: Path) -> None:
    """Through the sequences: the reference backup holds a shared VM's lock from snapshot to cleanup, so the
    server never sees two runs' snapshots of it at once (without the lock it does: both hold theirs 1 s)."""
    from tests.lab.conftest import start_server, stop_server, write_target
    from tests.lab.test_sweep import session_for

    server = start_server("lock-test-password")
    try:
        target = write_target(tmp_path / "lab.toml", server.info)
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.lab._backup_child",
                    str(target),
                    str(tmp_path / "locks"),
                    "target-vmfs",
                    "1.0",
                    f"run{i}",
                ],
                env={**server.env, "TMPDIR": str(tmp_path)},  # a child killed hard leaves its folder here
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        session = session_for(server)
        most, seen = 0, set()
        try:
            while any(c.poll() is None for c in children):
                names = [s.name for s in session.snapshots(session.vm("target-vmfs")) if s.name.startswith("vddkc-")]
                most = max(most, len(names))
                seen.update(names)
                time.sleep(0.02)
        finally:
            session.close()
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0 and out.strip() == "done", err[-2000:]
        assert len(seen) == 2 and most == 1, (seen, most)
    finally:
        stop_server(server)
