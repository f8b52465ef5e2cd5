"""The verdicts against a simulated vCenter, on the reference application and on lying ones: each lie is caught
by what the harness observes itself (the disk read back, the image file, the trace, the server's view)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.lab.resources import ResourceTracker, new_run_id
from conformance.lab.targets import Target, simulator_target
from conformance.sequences import mutants
from conformance.sequences.context import SequenceContext
from conformance.sequences.reference import ReferenceBackupApp
from conformance.sim.instance import Simulator
from conformance.verdicts.cleanup import CleanupIncompleteError, baseline, verify_clean
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up
from conformance.verdicts.restored import restored_problems
from conformance.verdicts.trace import changed_bytes, snapshot_reads, trace_mark
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession, disks_of
from conformance.workloads import expected

MiB = 2**20
CAPACITY = 16 * MiB
VM = "target-vmfs"
WRITES = [(0, os.urandom(MiB)), (5 * MiB + 4096, os.urandom(64 * 1024))]
CHANGES = [(64 * 1024, os.urandom(128 * 1024))]
DATA_DISK = 1
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Target, VsphereSession, VixDiskLib, Path]]:
    """A simulator whose VM has a 16 MiB data disk holding WRITES, and an initialised simulated library."""
    work = tmp_path_factory.mktemp("verdicts")
    with Simulator() as sim:
        target = simulator_target(sim)
        vsphere = VsphereSession(target.endpoint, target.user, target.password, target.datacenter)
        vm = vsphere.vm(VM)
        vsphere.add_disk(vm, CAPACITY)
        guest = GuestWorkload(vsphere.content, vm, target.guest, target.ssl_context())
        for offset, data in WRITES:
            guest.write_disk(DATA_DISK, offset, data)
        config = work / "vddk.conf"
        config.write_text(render_config({"tmpDirectory": str(work / "vddk-tmp")}))
        lib = VixDiskLib(SimulatedVixDiskLib("7.0.3", proxy_vm=target.default_proxy))
        lib.init_ex(config)
        yield target, vsphere, lib, work
        lib.exit()
        vsphere.close()


@pytest.fixture
def ctx(world: tuple[Target, VsphereSession, VixDiskLib, Path], tmp_path: Path) -> Iterator[SequenceContext]:
    target, vsphere, lib, work = world
    context = SequenceContext(
        target, vsphere, lib, ResourceTracker(new_run_id()), tmp_path / "repo", work / "vddk-tmp", proxy_vm=None
    )
    yield context
    context.resources.teardown()


def test_the_reference_restore_passes_and_a_restore_that_wrote_nothing_fails(
    ctx: SequenceContext, tmp_path: Path
) -> None:
    want = {DATA_DISK: expected(tmp_path / "expected.img", CAPACITY, WRITES)}
    for app, problems in ((ReferenceBackupApp(), 0), (mutants.RestoresNothing(), 1)):
        backup = backed_up(ctx, app, VM, "nbdssl")
        name = ctx.resources.name("restored")
        restore = app.restore(ctx, backup, "nbdssl", vm_name=name)
        assert restore.bytes_written > 0  # both say they wrote
        assert len(restored_problems(ctx, name, "nbdssl", want)) == problems
    assert [d["match"] for d in ctx.digests] == [True, False]
    assert {d["method"] for d in ctx.digests} == {"every byte read"}


def test_an_image_with_a_faked_digest_fails(ctx: SequenceContext, tmp_path: Path) -> None:
    want = expected(tmp_path / "expected.img", CAPACITY, WRITES)
    honest = backed_up(ctx, ReferenceBackupApp(), VM, "nbdssl")
    faked = backed_up(ctx, mutants.FakeDigest(), VM, "nbdssl")
    honest_disk, faked_disk = (sorted(b.disks, key=lambda d: d.key)[DATA_DISK] for b in (honest, faked))
    assert faked_disk.digest == honest_disk.digest  # the lie: the right digest
    assert image_problems(ctx, VM, honest_disk, want) == []
    assert image_problems(ctx, VM, faked_disk, want) != []


def test_an_incremental_that_reads_everything_is_caught_by_the_trace(
    ctx: SequenceContext, world: tuple[Target, VsphereSession, VixDiskLib, Path]
) -> None:
    target, vsphere, _, _ = world
    bound = changed_bytes([(offset, len(data)) for offset, data in CHANGES])
    for app, within in ((ReferenceBackupApp(), True), (mutants.FullReadIncremental(), False)):
        full = backed_up(ctx, app, VM, "nbdssl")
        guest = GuestWorkload(vsphere.content, vsphere.vm(VM), target.guest, target.ssl_context())
        for offset, data in CHANGES:
            guest.write_disk(DATA_DISK, offset, data)
        mark = trace_mark(ctx.lib)
        incremental = backed_up(ctx, app, VM, "nbdssl", previous=full)
        reads = snapshot_reads(ctx.lib, mark, incremental.snapshot_moref, {d.path for d in incremental.disks})
        assert incremental.bytes_read <= bound  # what the application says
        assert (reads.total <= bound) is within, reads.by_path


@pytest.mark.parametrize("liar", [mutants.SkipsCleanup, mutants.LeavesSnapshot])
def test_leftovers_are_seen_on_the_server_and_in_the_trace(ctx: SequenceContext, liar: Any) -> None:
    before = baseline(ctx, VM)
    backup = liar().backup(ctx, VM, "nbdssl")
    liar().cleanup(ctx, backup)
    problems = verify_clean(ctx, VM, before)
    assert any(backup.snapshot_name in p for p in problems)
    if liar is mutants.SkipsCleanup:
        assert any("connection" in p and "left open" in p for p in problems)
        assert any("server session" in p for p in problems)
    with pytest.raises(CleanupIncompleteError):
        backed_up(ctx, liar(), VM, "nbdssl")
    ctx.resources.teardown()
    assert verify_clean(ctx, VM, before) == []  # the test's tracker still removed everything


def test_a_disk_left_hot_added_on_the_proxy_is_seen(ctx: SequenceContext) -> None:
    """An application that never closes a disk it opened over HotAdd leaves it on the proxy."""
    ctx.proxy_vm = ctx.target.default_proxy
    vsphere, lib = ctx.vsphere, ctx.lib
    before = baseline(ctx, VM)
    vm = vsphere.vm(VM)
    name = ctx.resources.name("left-hot-added")
    snapshot = vsphere.create_snapshot(vm, name, quiesce=False)
    ctx.resources.add("snapshot", name, lambda: vsphere.remove_snapshot(snapshot, name))
    connection = lib.connect_ex(ctx.target.connect_params(vm._moId), True, snapshot._moId, "hotadd")

    def release() -> None:
        lib.disconnect(connection)
        lib.cleanup(connection.params)

    ctx.resources.add("connection", name, release)
    handle = lib.open(connection, disks_of(snapshot)[DATA_DISK].file_name)
    ctx.resources.add("disk-handle", name, lambda: lib.close(handle))
    assert lib.get_transport_mode(handle) == "hotadd"
    problems = verify_clean(ctx, VM, before)
    assert any("still has hot-added disk(s)" in p for p in problems), problems
    assert any(f"disk {handle.label}" in p for p in problems), problems
    ctx.resources.teardown()
    assert verify_clean(ctx, VM, before) == []
