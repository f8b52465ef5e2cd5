"""The verdicts against a lying server or library (`--sim-fault`): each lie is caught by what the harness observes
itself, and a baseline simulator that does not lie passes the same check."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.lab.resources import ResourceTracker, new_run_id
from conformance.lab.targets import simulator_target
from conformance.sequences.context import SequenceContext
from conformance.sequences.reference import ReferenceBackupApp
from conformance.sim.instance import Simulator
from conformance.verdicts.cleanup import CleanupIncompleteError, baseline, own_deltas, verify_clean
from conformance.verdicts.job import backed_up, restored
from conformance.verdicts.restored import restored_problems
from conformance.verdicts.transport import event_mark, transport_problems
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession
from conformance.workloads import expected

MiB = 2**20
CAPACITY = 16 * MiB
VM = "target-vmfs"
WRITES = [(0, os.urandom(MiB)), (CAPACITY - 64 * 1024, os.urandom(64 * 1024))]
DATA_DISK = 1
pytestmark = pytest.mark.slow


@dataclass
class World:
    sim: Simulator
    ctx: SequenceContext


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    """world(server_faults=(), library_faults=()): a simulator whose VM has a 16 MiB data disk holding WRITES,
    a simulated library in the target's proxy, and a sequence context over both."""
    stack: list[Callable[[], None]] = []

    def make(server_faults: tuple[str, ...] = (), library_faults: tuple[str, ...] = ()) -> World:
        work = tmp_path / f"world-{len(stack)}"
        work.mkdir()
        sim = Simulator(sim_faults=server_faults).start()
        stack.append(sim.stop)
        target = simulator_target(sim)
        vsphere = VsphereSession(target.endpoint, target.user, target.password, target.datacenter)
        stack.append(vsphere.close)
        vm = vsphere.vm(VM)
        vsphere.add_disk(vm, CAPACITY)
        guest = GuestWorkload(vsphere.content, vm, target.guest, target.ssl_context())
        for offset, data in WRITES:
            guest.write_disk(DATA_DISK, offset, data)
        config = work / "vddk.conf"
        config.write_text(render_config({"tmpDirectory": str(work / "vddk-tmp")}))
        lib = VixDiskLib(SimulatedVixDiskLib("7.0.3", proxy_vm=target.default_proxy, sim_faults=library_faults))
        lib.init_ex(config)
        stack.append(lib.exit)
        resources = ResourceTracker(new_run_id())
        stack.append(resources.teardown)
        ctx = SequenceContext(
            target, vsphere, lib, resources, work / "repo", work / "vddk-tmp", proxy_vm=target.default_proxy
        )
        return World(sim, ctx)

    yield make
    for undo in reversed(stack):
        undo()


@pytest.mark.parametrize("fault", [False, True])
def test_a_delta_left_by_a_snapshot_removal_is_seen_in_the_disk_chain(world: Callable[..., World], fault: bool) -> None:
    w = world(("snapshot-remove-no-consolidate",) if fault else ())
    vm = w.ctx.vsphere.vm(VM)
    if not fault:
        backed_up(w.ctx, ReferenceBackupApp(), VM, "nbdssl")
        return
    with pytest.raises(CleanupIncompleteError, match="disk chain"):
        backed_up(w.ctx, ReferenceBackupApp(), VM, "nbdssl")
    assert vm.runtime.consolidationNeeded is False and vm.snapshot is None  # the server's flags say all is well


def test_a_leak_is_reported_by_the_job_that_caused_it_not_the_next_one(world: Callable[..., World]) -> None:
    w = world(("snapshot-remove-no-consolidate",))
    with pytest.raises(CleanupIncompleteError, match="delta"):
        backed_up(w.ctx, ReferenceBackupApp(), VM, "nbdssl")
    w.sim.faults.play(())  # the server stops lying; the leaked delta is still there
    vm = w.ctx.vsphere.vm(VM)
    assert own_deltas(vm)
    # a job that starts now and leaves nothing of its own is clean, whatever an earlier job left
    assert verify_clean(w.ctx, VM, baseline(w.ctx, VM)) == []
    backed_up(w.ctx, ReferenceBackupApp(), VM, "nbdssl")  # (its snapshot removal consolidates the old delta too)


@pytest.mark.parametrize("fault", [False, True])
def test_a_restore_target_smaller_than_asked_is_caught_by_capacity_and_content(
    world: Callable[..., World], fault: bool, tmp_path: Path
) -> None:
    w = world(("restore-target-smaller",) if fault else ())
    backup = backed_up(w.ctx, ReferenceBackupApp(), VM, "nbdssl")
    name = w.ctx.resources.name("restored")
    ReferenceBackupApp().restore(w.ctx, backup, "nbdssl", vm_name=name)
    want = {DATA_DISK: expected(tmp_path / "expected.img", CAPACITY, WRITES)}
    problems = restored_problems(w.ctx, name, "nbdssl", want)
    if not fault:
        assert problems == []
        return
    assert any("does not hold what the guest wrote" in p for p in problems), problems
    assert any(f"is {CAPACITY - MiB} bytes as the server shows it" in p for p in problems), problems


@pytest.mark.parametrize("fault", [False, True])
def test_hotadd_the_server_never_saw_is_caught_from_its_events(world: Callable[..., World], fault: bool) -> None:
    w = world(library_faults=("transport-silently-replaced",) if fault else ())
    since = event_mark(w.ctx)
    backup = backed_up(w.ctx, ReferenceBackupApp(), VM, "hotadd")
    reported = {d.transport for d in backup.disks}
    assert reported == {"hotadd"}  # what the library says, either way
    problems = transport_problems(w.ctx, VM, reported, since)
    assert bool(problems) is fault, problems


@pytest.mark.parametrize("fault", [False, True])
def test_a_restore_point_delta_left_on_the_restored_vm_fails_the_restore(
    world: Callable[..., World], fault: bool
) -> None:
    w = world()
    backup = backed_up(w.ctx, ReferenceBackupApp(), VM, "hotadd")
    w.sim.faults.play(("snapshot-remove-no-consolidate",) if fault else ())
    name = w.ctx.resources.name("restored")
    if not fault:
        restored(w.ctx, ReferenceBackupApp(), backup, "hotadd", vm_name=name)
        restored(w.ctx, ReferenceBackupApp(), backup, "hotadd")
        return
    with pytest.raises(CleanupIncompleteError, match="delta"):  # a HotAdd restore writes under a restore point
        restored(w.ctx, ReferenceBackupApp(), backup, "hotadd", vm_name=name)
    with pytest.raises(CleanupIncompleteError, match="disk chain"):
        restored(w.ctx, ReferenceBackupApp(), backup, "hotadd")


@pytest.mark.parametrize("fault", [False, True])
def test_a_delta_the_read_back_snapshot_left_is_a_restore_problem(
    world: Callable[..., World], fault: bool, tmp_path: Path
) -> None:
    w = world()
    backup = backed_up(w.ctx, ReferenceBackupApp(), VM, "nbdssl")
    name = w.ctx.resources.name("restored")
    restored(w.ctx, ReferenceBackupApp(), backup, "nbdssl", vm_name=name)
    w.sim.faults.play(("snapshot-remove-no-consolidate",) if fault else ())
    want = {DATA_DISK: expected(tmp_path / "expected.img", CAPACITY, WRITES)}
    problems = restored_problems(w.ctx, name, "nbdssl", want)
    assert [p for p in problems if "read-back snapshot left delta" in p] == ([problems[0]] if fault else [])
    assert len(problems) == int(fault)  # the content itself is right
