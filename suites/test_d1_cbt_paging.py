"""D1: QueryChangedDiskAreas answers in pages; an incremental with more changed extents than one reply carries must
back up and restore byte-equal.

A VM's data disk gets a fragmented change set: small guest writes, each in its own 64 KiB CBT block with an
unwritten block between them, so that every write is one changed area. The default run crosses one page
boundary (ESXi answers about 2000 areas per reply); `--matrix full` changes many thousands of extents.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up
from conformance.verdicts.restored import restored_problems
from conformance.verdicts.trace import CBT_BLOCK, changed_bytes, snapshot_reads, trace_mark
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import MiB, Write, apply, expected

pytestmark = [pytest.mark.release_note("D1")]
DATA_DISK = 1
TRANSPORT = "nbd"
#: areas per QueryChangedDiskAreas reply that partners report for ESXi (not documented)
ESXI_PAGE = 2000
#: changed extents of the incremental: just over one page by default, many thousands in the full matrix
EXTENTS = {"default": ESXI_PAGE + 100, "full": 12000}
WRITE = 4096  # each change: one 4 KiB guest write inside its CBT block


def fragmented_changes(extents: int, seed: int = 1) -> list[Write]:
    """One small write in every other CBT block, at a varying place inside the block."""
    rng = random.Random(f"d1-{seed}")
    return [
        (2 * n * CBT_BLOCK + rng.randrange(0, CBT_BLOCK - WRITE, 512), rng.randbytes(WRITE)) for n in range(extents)
    ]


def data_disk(backup: Backup) -> int:
    return sorted(backup.disks, key=lambda d: d.key)[DATA_DISK].key


@pytest.mark.test_id(
    "D1-001",
    uuid="4f4a6a44-0897-4ea0-bfa7-ee53485b1e1c",
    since="vddk-7.0.3-v2",
    description="Incremental past one changed areas page backs up and restores byte equal",
)
@pytest.mark.sequence("backup")
def test_incremental_past_one_changed_areas_page_backs_up_and_restores_byte_equal(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    pytestconfig: pytest.Config,
    tmp_path: Path,
) -> None:
    extents = EXTENTS.get(pytestconfig.option.matrix, EXTENTS["default"])
    size = -(-2 * extents * CBT_BLOCK // MiB) * MiB
    vm = fresh_vm("VMFS", size)
    initial = [(0, random.Random("d1-initial").randbytes(MiB))]  # the full backup stays small
    apply(guest(vm), DATA_DISK, initial)
    full = backed_up(sequence, backup_app, vm, TRANSPORT)
    changes = fragmented_changes(extents)
    apply(guest(vm), DATA_DISK, changes)
    mark = trace_mark(sequence.lib)
    incremental = backed_up(sequence, backup_app, vm, TRANSPORT, previous=full)
    disk = incremental.disk(data_disk(incremental))
    want = expected(tmp_path / "expected.img", size, initial, changes)
    assert image_problems(sequence, vm, disk, want) == [], f"{extents} changed extents, over one page of {ESXI_PAGE}"
    # the data disk's reads, from the call trace, bounded by the CBT blocks the changes touched
    read = snapshot_reads(sequence.lib, mark, incremental.snapshot_moref, {d.path for d in incremental.disks})
    assert read.by_path.get(disk.path, 0) <= changed_bytes([(o, len(d)) for o, d in changes]), read.by_path
    restored = sequence.resources.name("restored")
    backup_app.restore(sequence, incremental, TRANSPORT, vm_name=restored)
    assert restored_problems(sequence, restored, TRANSPORT, {DATA_DISK: want}) == []
