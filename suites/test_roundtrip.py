"""Backup, restore and cleanup round trips for every transport on every datastore type that allows it.

C4: on a supported VDDK/vSphere pair a full backup and a restore work. Each test checks one behaviour of
the sequence; the data written by the guest is the reference every read is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up, restored
from conformance.verdicts.restored import restored_problems
from conformance.verdicts.trace import changed_bytes, snapshot_reads, trace_mark
from conformance.verdicts.transport import event_mark, transport_problems
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import Write, apply, expected, pattern
from fixtures.jobs import BackUp
from fixtures.workloads import DATA_DISK, PatternedVmFactory

pytestmark = [pytest.mark.release_note("C4")]


@dataclass
class Source:
    """A fresh VM whose data disk holds a pattern, and how to back it up."""

    vm: str
    writes: list[Write]
    transport: str
    pattern_name: str


@pytest.fixture
def source(patterned_vm: PatternedVmFactory, transport: str, datastore_type: str, pattern_name: str) -> Source:
    made = patterned_vm(datastore_type, pattern_name)
    return Source(made.vm, made.writes, transport, pattern_name)


def data_disk(backup: Backup) -> int:
    return sorted(backup.disks, key=lambda d: d.key)[DATA_DISK].key


@pytest.mark.test_id(
    "RT-001",
    uuid="88b26a94-8401-442b-8919-9309992632c5",
    since="vddk-7.0.3-v1",
    description="Full backup holds exactly what the guest wrote",
)
@pytest.mark.sequence("backup")
def test_full_backup_holds_exactly_what_the_guest_wrote(
    sequence: SequenceContext, back_up: BackUp, source: Source, tmp_path: Path
) -> None:
    since = event_mark(sequence)
    job = back_up(source.vm, source.transport)
    disk = job.backup.disk(data_disk(job.backup))
    assert job.transports == {source.transport}
    # the transport as the server saw it, not only as the library reports it
    assert transport_problems(sequence, source.vm, job.transports, since) == []
    want = expected(tmp_path / "expected.img", pattern(source.pattern_name).disk_size, source.writes)
    assert image_problems(sequence, source.vm, disk, want) == []


@pytest.mark.test_id(
    "RT-002",
    uuid="5c21dae9-9ff9-4b09-92d8-5c6ee4989f27",
    since="vddk-7.0.3-v1",
    description="Incremental backup reads only changes and matches the guest",
)
@pytest.mark.sequence("backup")
def test_incremental_backup_reads_only_changes_and_matches_the_guest(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    source: Source,
    guest: Callable[[str], GuestWorkload],
    tmp_path: Path,
) -> None:
    full = backed_up(sequence, backup_app, source.vm, source.transport)
    changes = pattern(source.pattern_name).changes()
    apply(guest(source.vm), DATA_DISK, changes)
    mark = trace_mark(sequence.lib)
    incremental = backed_up(sequence, backup_app, source.vm, source.transport, previous=full)
    disk = incremental.disk(data_disk(incremental))
    want = expected(tmp_path / "expected.img", pattern(source.pattern_name).disk_size, source.writes, changes)
    assert image_problems(sequence, source.vm, disk, want) == []
    # the data disk's reads, counted from the call trace, bounded by the CBT blocks the guest's changes touched
    # (the system disk of a lab VM changes on its own)
    read = snapshot_reads(sequence.lib, mark, incremental.snapshot_moref, {d.path for d in incremental.disks})
    assert read.by_path.get(disk.path, 0) <= changed_bytes([(o, len(data)) for o, data in changes]), read.by_path


@pytest.mark.test_id(
    "RT-003",
    uuid="d1c437ce-665c-4313-a32a-3b7dab2288b9",
    since="vddk-7.0.3-v1",
    description="Restore to the original vm brings back the backup",
)
@pytest.mark.sequence("restore")
def test_restore_to_the_original_vm_brings_back_the_backup(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    source: Source,
    guest: Callable[[str], GuestWorkload],
    tmp_path: Path,
) -> None:
    backup = backed_up(sequence, backup_app, source.vm, source.transport)
    apply(guest(source.vm), DATA_DISK, pattern(source.pattern_name).changes())  # diverge after the backup
    since = event_mark(sequence)
    restore = restored(sequence, backup_app, backup, source.transport)
    assert restore.transport == source.transport
    assert transport_problems(sequence, source.vm, {restore.transport}, since) == []
    want = expected(tmp_path / "expected.img", pattern(source.pattern_name).disk_size, source.writes)
    assert restored_problems(sequence, source.vm, source.transport, {DATA_DISK: want}) == []


@pytest.mark.test_id(
    "RT-004",
    uuid="79baf076-b1ed-4669-b98e-1f12fe6db4dc",
    since="vddk-7.0.3-v1",
    description="Restore to a new vm",
)
@pytest.mark.sequence("restore")
@pytest.mark.spread
def test_restore_to_a_new_vm(
    sequence: SequenceContext, backup_app: BackupApplication, source: Source, thin: bool, tmp_path: Path
) -> None:
    """Marked `spread`: every transport also round-trips the scattered pattern (a block in every MiB and the last
    block), so a range a transport reads or writes wrong anywhere on the disk is seen."""
    backup = backed_up(sequence, backup_app, source.vm, source.transport)
    name = sequence.resources.name("restored")
    restored(sequence, backup_app, backup, source.transport, vm_name=name, thin=thin)
    want = expected(tmp_path / "expected.img", pattern(source.pattern_name).disk_size, source.writes)
    assert restored_problems(sequence, name, source.transport, {DATA_DISK: want}) == []


@pytest.mark.test_id(
    "RT-005",
    uuid="633a0d91-333f-4226-b442-98b355d0e2bb",
    since="vddk-7.0.3-v1",
    description="Cleanup leaves no snapshot delta hot added disk or temp state",
)
@pytest.mark.sequence("cleanup")
def test_cleanup_leaves_no_snapshot_delta_hot_added_disk_or_temp_state(
    sequence: SequenceContext, backup_app: BackupApplication, source: Source
) -> None:
    backed_up(sequence, backup_app, source.vm, source.transport)  # CleanupIncompleteError names what is left
    assert sequence.vsphere.snapshots(sequence.vsphere.vm(source.vm)) == []
    assert sequence.lib.violations() == []
