"""D5: what an aborted HotAdd backup leaves blocks every retry, until the sweep removes it.

A child process runs the backup application over HotAdd and is SIGKILLed at its first Read: its snapshot is
taken and the source's disks are hot-added to the proxy. Its objects are named after a run id of their own, as
a killed run's are, so the sweeper finds them. The retry of the same backup is then refused by the disk's lock
(the file-locked error), the sweep (`vddk-conformance sweep --run-id ID`) removes the leftovers, and the retry
backs up and restores the bytes the guest wrote; the harness's cleanup verdict then finds nothing left.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.lab.resources import ResourceTracker
from conformance.lab.sweep import find_leftovers, sweep_target
from conformance.lab.targets import CREATE_VMS, GUEST_OPERATIONS, Target
from conformance.plugin.fixtures import require
from conformance.plugin.settings import RunSettings
from conformance.sequences.app import BackupApplication
from conformance.sequences.backup_process import child_env, crashed_backup
from conformance.sequences.context import SequenceContext
from conformance.verdicts.cleanup import verify_clean
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up
from conformance.verdicts.restored import restored_problems
from conformance.vixdisklib.config import KEY_TMP_DIRECTORY, render_config
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.factory import LibrarySpec
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import apply, expected, pattern

pytestmark = [pytest.mark.release_note("D5"), pytest.mark.sequence("backup")]
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds
PATTERN = "sparse"  # three 64 KiB blocks: the point is the block, not the volume


def _sweep(sequence: SequenceContext, run_id: str) -> tuple[list[str], list[str]]:
    """What `vddk-conformance sweep --run-id ID` does on this target."""
    target = sequence.target
    proxies = sorted({*target.proxies.values(), *([target.default_proxy] if target.default_proxy else [])})
    return sweep_target(sequence.vsphere, proxies, set(target.allow_vms), run_id=run_id)


@pytest.mark.test_id(
    "D5-001",
    uuid="f144af5c-0b78-471a-af6c-c0060f3f0f6e",
    since="vddk-7.0.3-v2",
    description="A killed hotadd backup blocks the retry until the sweep clears it",
)
def test_a_killed_hotadd_backup_blocks_the_retry_until_the_sweep_clears_it(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    vixdisklib_spec: Callable[..., LibrarySpec],
    vddk_target: Target,
    vddk_settings: RunSettings,
    resources: ResourceTracker,
    tmp_path: Path,
) -> None:
    require(vddk_target, CREATE_VMS, GUEST_OPERATIONS)
    proxy = vddk_target.default_proxy
    if proxy is None or "hotadd" not in vddk_target.transports:
        pytest.skip(f"target {vddk_target.name} offers no HotAdd (no proxy VM, or hotadd not in its transports)")
    disk_pattern = pattern(PATTERN)
    vm = fresh_vm("VMFS", disk_pattern.disk_size)
    writes = disk_pattern.writes()
    apply(guest(vm), DATA_DISK, writes)
    want = expected(tmp_path / "expected.img", disk_pattern.disk_size, writes)

    # the aborted run: its own run id, swept at teardown too (before the VM goes), whatever happens below
    aborted = f"{vddk_settings.run_id}-aborted{uuid.uuid4().hex[:4]}"

    def sweep_at_teardown() -> None:
        failed = _sweep(sequence, aborted)[1]
        if failed:
            raise RuntimeError("; ".join(failed))

    resources.add("sweep", f"leftovers of run {aborted}", sweep_at_teardown)
    config = tmp_path / "aborted.conf"
    config.write_text(render_config({KEY_TMP_DIRECTORY: str(tmp_path / "aborted-tmp")}))
    launch = child_env(
        "app-backup",
        vddk_target.connect_params(),
        vixdisklib_spec(proxy),
        config,
        vm_name=vm,
        run_id=aborted,
        datacenter=vddk_target.datacenter,
        transports="hotadd",
        repository=str(tmp_path / "aborted-repository"),
        backup_app=vddk_settings.backup_app or "",
    )
    report = crashed_backup(launch)
    assert report["transport"] == "hotadd", report
    left = {leftover.kind for leftover in find_leftovers(sequence.vsphere, [proxy], set(), aborted)}
    assert {"hot-added disk", "snapshot"} <= left, f"the killed backup should leave a snapshot and hot-adds: {left}"

    # the retry is blocked by the disk's lock
    mark = resources.mark()
    with pytest.raises(VixError) as blocked:
        backup_app.backup(sequence, vm, "hotadd")
    resources.unwind(mark)  # the retry's own snapshot, connection and access go now
    assert "locked" in str(blocked.value), f"the retry failed, but not on the disk's lock: {blocked.value}"

    # the sweep clears the block
    removed, failed = _sweep(sequence, aborted)
    assert failed == [], failed
    assert any(line.startswith("removed hot-added disk") for line in removed), removed
    try:
        backup = backed_up(sequence, backup_app, vm, "hotadd")
    except VixError as exc:
        pytest.fail(f"the retry after `sweep --run-id {aborted}` is still blocked: {exc}")
    data = sorted(backup.disks, key=lambda d: d.key)[DATA_DISK]
    assert image_problems(sequence, vm, data, want) == []
    apply(guest(vm), DATA_DISK, disk_pattern.changes())  # diverge, then restore the retry's backup
    backup_app.restore(sequence, backup, "hotadd")
    assert restored_problems(sequence, vm, "hotadd", {DATA_DISK: want}) == []
    assert verify_clean(sequence, vm) == []
