"""Issue #5's done-when: the reference backup, restore and cleanup sequences run green through the ctypes
backend over the C double, for libvixDiskLib.so.6, .so.7 and .so.8.

Arrangement: the simulated vCenter is the vSphere control (CBT, snapshots, VMs, QueryChangedDiskAreas);
the VixDiskLib data path is the ctypes backend over the double, which reads and writes the simulator's own
disk files under its datastores folder. The double checks the thumbprint at Open like VDDK does. Restores
write to flat base disks only (the double does not write sparse deltas), which is what a restore over
NBD(SSL) with no restore-point snapshot does.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.lab.resources import ResourceTracker, new_run_id
from conformance.lab.targets import Target, simulator_target
from conformance.sequences.context import SequenceContext
from conformance.sequences.reference import ReferenceBackupApp
from conformance.sim.instance import Simulator
from conformance.verdicts.cleanup import verify_clean
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.factory import make_library
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession
from tests.native.conftest import BUILDS, MAJORS, Kits, double_state

KiB, MiB = 1024, 1024 * 1024
VM = "target-vmfs"
#: what the guest writes before the backup: byte offset -> data
PATTERNS = {1 * MiB: os.urandom(64 * KiB), 37 * MiB + 4096: os.urandom(200 * KiB)}


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Simulator, Target, VsphereSession]]:
    with Simulator() as sim:
        target = simulator_target(sim)
        vsphere = VsphereSession(target.endpoint, target.user, target.password, target.datacenter)
        guest = GuestWorkload(vsphere.content, vsphere.vm(VM), target.guest, target.ssl_context())
        for offset, data in PATTERNS.items():
            guest.write_disk(0, offset, data)
        yield sim, target, vsphere
        vsphere.close()


def _context(
    sim: Simulator,
    target: Target,
    vsphere: VsphereSession,
    kits: Kits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    major: int,
) -> SequenceContext:
    monkeypatch.setenv("VIXDOUBLE_DISK_ROOT", str(sim.state_dir / "datastores"))
    monkeypatch.setenv("VIXDOUBLE_THUMBPRINT", sim.thumbprint)
    tmp_directory = tmp_path / "vddk-tmp"
    config = tmp_path / "vddk.conf"
    config.write_text(f'tmpDirectory = "{tmp_directory}"\n')
    lib = make_library(BUILDS[major], backend="native", libdir=kits.lib64)
    lib.init_ex(config)
    return SequenceContext(
        target, vsphere, lib, ResourceTracker(new_run_id()), tmp_path / "repository", tmp_directory, proxy_vm=None
    )


def _content_hash(sim: Simulator, vsphere: VsphereSession, vm_name: str) -> str:
    """SHA-256 of the VM's first disk as the simulator itself reads it (independent of any VixDiskLib)."""
    from conformance.vsphere.session import disks_of

    disk = disks_of(vsphere.vm(vm_name))[0]
    name, rest = disk.file_name[1:].split("] ", 1)
    from conformance.sim.storage.vmdk import VirtualDiskFile

    with VirtualDiskFile.open(sim.state_dir / "datastores" / name / rest) as file:
        digest = hashlib.sha256()
        for offset in range(0, file.capacity, 8 * MiB):
            digest.update(file.read(offset, min(8 * MiB, file.capacity - offset)))
        return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("major", MAJORS)
def test_backup_restore_cleanup_through_the_ctypes_backend(
    major: int,
    world: tuple[Simulator, Target, VsphereSession],
    kits: Kits,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="conformance.vixdisklib.native.vddk")
    sim, target, vsphere = world
    ctx = _context(sim, target, vsphere, kits, tmp_path, monkeypatch, major)
    lib: VixDiskLib = ctx.lib
    app = ReferenceBackupApp()
    vm = vsphere.vm(VM)
    guest = GuestWorkload(vsphere.content, vm, target.guest, target.ssl_context())
    # a snapshot of the user's own first, so the backup reads through a hosted-sparse delta chain
    user_snapshot = vsphere.create_snapshot(vm, f"user-{major}", quiesce=False)
    try:
        assert lib.backend.name == "native" and f".so.{major}" in str(getattr(lib.backend, "path", ""))
        in_delta = {3 * MiB + major * 64 * KiB + 512: os.urandom(100 * KiB)}  # not grain aligned
        for offset, data in in_delta.items():
            guest.write_disk(0, offset, data)
        full_hash = _content_hash(sim, vsphere, VM)

        full = app.backup(ctx, VM, "nbdssl")
        app.cleanup(ctx, full)
        assert verify_clean(ctx, VM) == []  # no snapshot, delta or temp file left
        disk = full.disks[0]
        assert disk.transport == "nbdssl"
        image = disk.image.read_bytes()
        for offset, data in {**PATTERNS, **in_delta}.items():
            assert image[offset : offset + len(data)] == data, f"full backup image differs at {offset}"
        assert disk.bytes_read < disk.capacity // 4  # QueryAllocatedBlocks kept the backup sparse

        changed = {50 * MiB + major * MiB: os.urandom(64 * KiB)}
        for offset, data in changed.items():
            guest.write_disk(0, offset, data)
        source_hash = _content_hash(sim, vsphere, VM)
        assert source_hash != full_hash
        incremental = app.backup(ctx, VM, "nbdssl", previous=full)
        app.cleanup(ctx, incremental)
        assert incremental.kind == "incremental" and 0 < incremental.bytes_read < full.bytes_read
        image = incremental.disks[0].image.read_bytes()
        for offset, data in {**PATTERNS, **in_delta, **changed}.items():
            assert image[offset : offset + len(data)] == data, f"incremental image differs at {offset}"

        restored = f"native-restore-{major}"
        result = app.restore(ctx, incremental, "nbdssl", vm_name=restored)
        assert result.bytes_written >= sum(len(d) for d in (*PATTERNS.values(), *in_delta.values()))
        # and independently of VixDiskLib: the new VM's disk holds what the source disk held
        assert _content_hash(sim, vsphere, restored) == source_hash

        state = double_state(lib)
        assert state["connections"] == "0" and state["disks"] == "0", state
        assert state["access"] == "0", "PrepareForAccess was not matched by EndAccess"
        assert state["live"] == "0", "Info, block lists, error texts or params not given back to the library"
        assert int(state["reads"]) > 0 and int(state["writes"]) > 0
        assert not list((ctx.tmp_directory or tmp_path).glob("*.session"))
        assert "(2 links) over nbdssl, read-only" in caplog.text  # the backup read through the sparse delta
    finally:
        ctx.resources.teardown()
        lib.exit()
        vsphere.remove_snapshot(user_snapshot, f"user-{major}")


def test_a_wrong_thumbprint_fails_the_backup_at_open(
    world: tuple[Simulator, Target, VsphereSession], kits: Kits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The double checks the thumbprint at Open like VDDK: VIX_E_FAIL, and cleanup still leaves nothing."""
    from conformance.vixdisklib.errors import VixError

    sim, target, vsphere = world
    ctx = _context(sim, target, vsphere, kits, tmp_path, monkeypatch, 7)
    monkeypatch.setenv("VIXDOUBLE_THUMBPRINT", "00:" * 19 + "00")
    app = ReferenceBackupApp()
    try:
        with pytest.raises(VixError) as caught:
            app.backup(ctx, VM, "nbdssl")
        assert caught.value.code == 1 and caught.value.call == "VixDiskLib_Open"
        assert caught.value.text == "Unknown error"  # the library's own text
    finally:
        ctx.resources.teardown()
        ctx.lib.exit()
    assert verify_clean(ctx, VM) == []
