"""Backup, restore and cleanup round trips for every transport on every datastore type that allows it.

C4: on a supported VDDK/vSphere pair a full backup and a restore work. Each test checks one behaviour of
the sequence; the data written by the guest is the reference every read is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import apply, expected_image, pattern

pytestmark = [pytest.mark.release_note("C4")]
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds


def prepare(
    fresh_vm: Callable[..., str], guest: Callable[[str], GuestWorkload], datastore_type: str, pattern_name: str
) -> tuple[str, list[tuple[int, bytes]]]:
    disk_pattern = pattern(pattern_name)
    vm = fresh_vm(datastore_type, disk_pattern.disk_size)
    writes = disk_pattern.writes()
    apply(guest(vm), DATA_DISK, writes)
    return vm, writes


def data_disk(backup: Backup) -> int:
    return sorted(backup.disks, key=lambda d: d.key)[DATA_DISK].key


@pytest.mark.test_id("RT-001")
@pytest.mark.sequence("backup")
def test_full_backup_holds_exactly_what_the_guest_wrote(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    transport: str,
    datastore_type: str,
    pattern_name: str,
    tmp_path: Path,
) -> None:
    vm, writes = prepare(fresh_vm, guest, datastore_type, pattern_name)
    backup = backup_app.backup(sequence, vm, transport)
    backup_app.cleanup(sequence, backup)
    disk = backup.disk(data_disk(backup))
    expected = expected_image(tmp_path / "expected.img", disk.capacity, writes)
    assert {d.transport for d in backup.disks} == {transport}
    assert disk.digest == expected.digest()


@pytest.mark.test_id("RT-002")
@pytest.mark.sequence("backup")
def test_incremental_backup_reads_only_changes_and_matches_the_guest(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    transport: str,
    datastore_type: str,
    pattern_name: str,
    tmp_path: Path,
) -> None:
    vm, writes = prepare(fresh_vm, guest, datastore_type, pattern_name)
    full = backup_app.backup(sequence, vm, transport)
    backup_app.cleanup(sequence, full)
    changes = pattern(pattern_name).changes()
    apply(guest(vm), DATA_DISK, changes)
    incremental = backup_app.backup(sequence, vm, transport, previous=full)
    backup_app.cleanup(sequence, incremental)
    disk = incremental.disk(data_disk(incremental))
    expected = expected_image(tmp_path / "expected.img", disk.capacity, writes, changes)
    assert disk.digest == expected.digest()
    block = 64 * 1024  # CBT granularity: each write may touch one block more than its length
    assert disk.bytes_read <= sum((-(-len(data) // block) + 1) * block for _, data in changes)


@pytest.mark.test_id("RT-003")
@pytest.mark.sequence("restore")
def test_restore_to_the_original_vm_brings_back_the_backup(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    transport: str,
    datastore_type: str,
    pattern_name: str,
) -> None:
    vm, _ = prepare(fresh_vm, guest, datastore_type, pattern_name)
    backup = backup_app.backup(sequence, vm, transport)
    backup_app.cleanup(sequence, backup)
    apply(guest(vm), DATA_DISK, pattern(pattern_name).changes())  # diverge after the backup
    restore = backup_app.restore(sequence, backup, transport)
    assert restore.transport == transport
    assert restore.digests == restore.expected


@pytest.mark.test_id("RT-004")
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("thin", [True, False], ids=["thin", "thick"])
def test_restore_to_a_new_vm(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    transport: str,
    datastore_type: str,
    pattern_name: str,
    thin: bool,
) -> None:
    vm, _ = prepare(fresh_vm, guest, datastore_type, pattern_name)
    backup = backup_app.backup(sequence, vm, transport)
    backup_app.cleanup(sequence, backup)
    restore = backup_app.restore(sequence, backup, transport, vm_name=sequence.resources.name("restored"), thin=thin)
    assert restore.digests == restore.expected


@pytest.mark.test_id("RT-005")
@pytest.mark.sequence("cleanup")
def test_cleanup_leaves_no_snapshot_delta_hot_added_disk_or_temp_state(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    transport: str,
    datastore_type: str,
    pattern_name: str,
) -> None:
    vm, _ = prepare(fresh_vm, guest, datastore_type, pattern_name)
    backup = backup_app.backup(sequence, vm, transport)
    backup_app.cleanup(sequence, backup)  # raises CleanupIncompleteError naming what is left
    assert sequence.vsphere.snapshots(sequence.vsphere.vm(vm)) == []
    assert sequence.lib.violations() == []
