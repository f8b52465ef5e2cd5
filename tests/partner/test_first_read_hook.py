"""The first-read hook of a product run as a command line (CommandLineApp.first_read_hook, c/first_read.c): the
harness's simulated libvixDiskLib.so holds the product's first Read (or ReadAsync) until the harness has run the
hook, so a test can act at that point (R2 starts host maintenance there, D5 kills the backup there).

What must hold: the hook gets the product's report (pid, thread, transport, path) while the product is held - its
trace has an Open and no Read yet, and stays so while the hook runs - and the product then reads and finishes; a
hook that raises kills the product (and its agent) and its error reaches the caller; a product whose parent dies
while it is held exits 137 within seconds (its agent with it) instead of waiting forever.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.lab.resources import new_run_id
from conformance.sequences.command_app import FIRST_READ_VARIABLE, CommandLineApp
from conformance.sequences.images import SparseImage
from conformance.sequences.product import PASSWORD_VARIABLE, load_product
from conformance.sequences.product_library import library_environment
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.trace_format import read_trace
from conformance.vsphere.session import disks_of
from tests.partner.lab import Lab, context, lab, product_file, source_vm

__all__ = ["lab"]  # the module's fixture

HELD = 0.3  # seconds the recording hook keeps the product waiting
GONE_WITHIN = 5.0  # seconds: a parentless product and its agent must be gone by then
READS = ("VixDiskLib_Read", "VixDiskLib_ReadAsync")
AGENT = "conformance.vixdisklib.shim.agent"


# ---- processes -------------------------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float:
    """CPU time the process (all its threads) has used: a waiting product uses next to none, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def agents_of(pid: int) -> list[int]:
    """Live agents that end with process `pid` (they name it with --parent-pid): a product's private one, or
    the one the harness starts for each product command it runs (`pid` the harness)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            argv = _cmdline(int(entry.name))
            if AGENT in argv and "--parent-pid" in argv and argv[argv.index("--parent-pid") + 1] == str(pid):
                found.append(int(entry.name))
    return found


def wait_until_gone(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after (at most) `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def calls_in(trace: Path) -> list[str]:
    return [c.call for c in read_trace(trace).calls] if trace.exists() else []


# ---- the hook holds the product --------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "vm"), [("sync", "target-vmfs"), ("async", "target-nfs")])
def test_the_hook_runs_while_the_product_is_held_at_its_first_read(lab: Lab, mode: str, vm: str) -> None:
    extra = ["--async", "4"] if mode == "async" else []
    app = CommandLineApp(load_product(product_file(lab, f"hooked-{mode}", extra)))
    ctx = context(lab, f"hooked-{mode}")
    source_vm(lab, ctx, vm)  # a data disk with data: its product reads (an empty disk's reads nothing)
    seen: list[dict[str, Any]] = []

    def hook(info: dict[str, Any]) -> None:
        traces = sorted(ctx.repository.rglob("trace-*.jsonl"))
        assert traces, "the product has made no traced call yet"
        trace = traces[-1]  # this command's (the app numbers them)
        calls = calls_in(trace)
        assert "VixDiskLib_Open" in calls and not set(READS) & set(calls), calls
        assert alive(info["pid"]) and agents_of(os.getpid()), "the product (and the harness's agent) should run"
        used = cpu_seconds(info["pid"])
        time.sleep(HELD)
        assert not set(READS) & set(calls_in(trace)), "the product read while the hook ran"
        assert cpu_seconds(info["pid"]) - used < HELD / 5, "the product should be waiting, not working"
        seen.append({**info, "trace": trace})

    app.first_read_hook = hook
    try:
        backup = app.backup(ctx, vm, "nbdssl")
        app.cleanup(ctx, backup)
    finally:
        ctx.resources.unwind()  # raises TeardownError naming what could not be undone
    read = [d for d in backup.disks if d.bytes_read]
    assert read, "no product read a disk"
    # one product process per disk, each held once (a disk with nothing allocated is never read)
    assert sorted(info["path"] for info in seen) == sorted(d.path for d in read)
    for info in seen:
        assert set(info) == {"pid", "tid", "transport", "path", "trace"}
        assert info["transport"] == "nbdssl"
        assert isinstance(info["tid"], int) and info["tid"] > 0
        first = next(c for c in read_trace(info["trace"]).calls if c.call in READS)
        assert first.call == ("VixDiskLib_ReadAsync" if mode == "async" else "VixDiskLib_Read")
        assert first.duration_ns >= HELD * 1e9, "the first read did not wait for the hook"
        assert not alive(info["pid"])
    assert not agents_of(os.getpid()), "the harness's agent of each command stops with the command"
    assert not list(ctx.repository.rglob("*.first-read")), "the rendezvous folders are removed"


def test_a_library_offering_on_product_first_read_is_used(lab: Lab) -> None:
    """A test that wraps the sequence's library (as R2's EmmOnFirstRead does) reaches the product through it."""
    seen: list[dict[str, Any]] = []

    class Wrapped:
        def __init__(self, lib: VixDiskLib) -> None:
            self._lib = lib

        def __getattr__(self, name: str) -> Any:
            return getattr(self._lib, name)

        def on_product_first_read(self, info: dict[str, Any]) -> None:
            seen.append(info)

    app = CommandLineApp(load_product(product_file(lab, "wrapped")))
    plain = context(lab, "wrapped")
    source_vm(lab, plain, "target-vvol")
    ctx = type(plain)(**{**vars(plain), "lib": Wrapped(lab.lib)})
    try:
        backup = app.backup(ctx, "target-vvol", "nbd")
        app.cleanup(ctx, backup)
    finally:
        ctx.resources.unwind()  # raises TeardownError naming what could not be undone
    read = [d for d in backup.disks if d.bytes_read]
    assert read and [info["transport"] for info in seen] == ["nbd"] * len(read)


def test_a_hook_that_raises_kills_the_product_and_its_error_propagates(lab: Lab) -> None:
    app = CommandLineApp(load_product(product_file(lab, "raising")))
    ctx = context(lab, "raising")
    source_vm(lab, ctx, "target-vmfs")
    seen: list[dict[str, Any]] = []

    def hook(info: dict[str, Any]) -> None:
        seen.append({**info, "agents": agents_of(os.getpid())})
        raise LookupError("the hook failed")

    app.first_read_hook = hook
    try:
        with pytest.raises(LookupError, match="the hook failed"):
            app.backup(ctx, "target-vmfs", "nbdssl")
    finally:
        ctx.resources.unwind()  # raises TeardownError naming what could not be undone
    [info] = seen  # the first disk's product: the backup went no further
    assert info["agents"], "the command had the harness's agent"
    assert not alive(info["pid"])
    assert wait_until_gone(info["agents"], GONE_WITHIN) == [], "the command's agent outlived it"


# ---- the harness's side dies while the product is held ---------------------------------------------------------

#: Run as `python -c REAPER ARGV...`: become a child subreaper (so the orphaned product's exit status comes here),
#: run ARGV, reap every descendant until none is left (or 30 s: then report who is left, and kill it), print one
#: JSON line.
REAPER = r"""
import ctypes, json, os, subprocess, sys, time
PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
started = time.monotonic()
subprocess.Popen(sys.argv[1:])
ended, deadline = {}, started + 30
while time.monotonic() < deadline:
    try:
        pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        time.sleep(0.01)
        continue
    ended[pid] = {"code": os.waitstatus_to_exitcode(status), "at": time.monotonic() - started}
left = [int(c) for t in os.listdir("/proc/self/task") for c in open(f"/proc/self/task/{t}/children").read().split()]
for pid in left:
    os.kill(pid, 9)
print(json.dumps({"ended": ended, "left": left}), flush=True)
"""

#: The product's parent: starts the product, waits until it is held at its first read, then exits (dies); 3 if the
#: product ended without being held.
SHORT_LIVED_PARENT = (
    '"$@" & product=$!; while ! ls "$' + FIRST_READ_VARIABLE + '"/reached-*.json >/dev/null 2>&1; do '
    "kill -0 $product 2>/dev/null || exit 3; sleep 0.02; done; exit 0"
)


def test_a_product_whose_parent_dies_while_held_exits_137_and_leaves_no_agent(lab: Lab, tmp_path: Path) -> None:
    source_vm(lab, context(lab, "orphaned"), "target-nfs")
    vm = lab.vsphere.vm("target-nfs")
    name = f"first-read-{new_run_id()}"
    snapshot = lab.vsphere.create_snapshot(vm, name, "first-read hook test")
    try:
        disk = disks_of(snapshot)[1]  # the data disk source_vm's guest wrote (/dev/sdb)
        image = tmp_path / "disk.img"
        SparseImage(image, disk.capacity)
        trace = tmp_path / "trace.jsonl"
        libdir, library_env = library_environment(lab.lib.backend, trace)
        endpoint, rendezvous = lab.target.endpoint, tmp_path / "first-read"
        rendezvous.mkdir()
        values = {
            "here": str(lab.product_dir), "workdir": str(tmp_path), "server": endpoint.host,
            "port": str(endpoint.port), "thumbprint": endpoint.thumbprint, "user": lab.target.user,
            "password_env": PASSWORD_VARIABLE, "config": str(lab.lib.config_file or ""), "libdir": str(libdir),
            "vmx_spec": f"moref={vm._moId}", "snapshot": snapshot._moId, "transports": "nbdssl",
            "disk": disk.file_name, "image": str(image),
        }  # fmt: skip
        product = load_product(product_file(lab, "orphaned"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDDKC_")}
        env.update(library_env, **product.environment(values))
        env.update({PASSWORD_VARIABLE: lab.target.password, FIRST_READ_VARIABLE: str(rendezvous)})
        argv = [sys.executable, "-c", REAPER, "sh", "-c", SHORT_LIVED_PARENT, "sh", *product.command("full", values)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.splitlines()[-1])
    finally:
        lab.vsphere.remove_snapshot(snapshot, name)
    [report] = [json.loads(p.read_text()) for p in rendezvous.glob("reached-*.json")]
    assert report["transport"] == "nbdssl" and report["path"] == disk.file_name
    assert not (rendezvous / "go").exists()
    ended = {int(pid): end for pid, end in result["ended"].items()}
    product_pid = report["pid"]
    assert ended[product_pid]["code"] == 137, ended  # the product ended itself, as if killed
    others = [end for pid, end in ended.items() if pid != product_pid]
    parent_end = min(end["at"] for end in others)  # the short-lived parent (sh) went first
    assert ended[product_pid]["at"] - parent_end < GONE_WITHIN, ended
    assert result["left"] == [], "a process (the product's agent?) outlived the product"
    assert max(end["at"] for end in ended.values()) - parent_end < GONE_WITHIN, ended  # the agent followed it
    assert not set(READS) & set(calls_in(trace)), "the product read although nobody let it go"
    assert not agents_of(product_pid)
