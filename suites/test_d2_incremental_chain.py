"""D2: the allocated-blocks map of a full backup and the changed-blocks map of each incremental, across a chain.

A full backup, then incrementals after overwrites, after ranges written back to zero, and after the data disk
was hot-extended (the writes that follow land in the region the extend added, Broadcom KB 2090639). Every point
of the chain is restored to a new VM and compared with what the guest had written up to that point; each
incremental's image is checked too. One transport in the default run, every transport that writes VMFS disks
under `--matrix full`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.knowledge.transports import WRITE_TRANSPORTS, reach
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up
from conformance.verdicts.restored import restored_problems
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import KiB, MiB, Write, apply, expected

pytestmark = [pytest.mark.release_note("D2")]
DATA_DISK = 1
DATASTORE = "VMFS"
SIZE, GROWN = 64 * MiB, 96 * MiB
DEFAULT_TRANSPORT = "nbdssl"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One transport by default; every transport that can write a VMFS disk under --matrix full."""
    if "chain_transport" in metafunc.fixturenames:
        full = metafunc.config.option.matrix == "full"
        transports = [t for t in WRITE_TRANSPORTS if reach(t, DATASTORE).allowed] if full else [DEFAULT_TRANSPORT]
        metafunc.parametrize("chain_transport", transports)


@dataclass(frozen=True)
class Step:
    """What the guest does before one backup of the chain."""

    what: str
    writes: list[Write]
    grow_to: int | None = None  # the data disk is extended to this size first


def chain(seed: int = 1) -> list[Step]:
    rng = random.Random(f"d2-{seed}")
    return [
        Step(
            "initial content",
            [
                (0, rng.randbytes(MiB)),
                (8 * MiB + 4 * KiB, rng.randbytes(100 * KiB)),
                (40 * MiB, rng.randbytes(512 * KiB)),
                (SIZE - 64 * KiB, rng.randbytes(64 * KiB)),  # the last block of the disk
            ],
        ),
        Step(
            "overwrites",
            [
                (512 * KiB, rng.randbytes(256 * KiB)),
                (20 * MiB, rng.randbytes(64 * KiB)),
                (SIZE - 4 * KiB, rng.randbytes(4 * KiB)),
            ],
        ),
        Step(
            "ranges written back to zero",
            [(40 * MiB, bytes(512 * KiB)), (8 * MiB, bytes(64 * KiB)), (30 * MiB + 512, rng.randbytes(8 * KiB))],
        ),
        Step(
            "disk extended, then written in the new region",
            [
                (SIZE, rng.randbytes(128 * KiB)),
                (80 * MiB + 12 * KiB, rng.randbytes(4 * KiB)),
                (GROWN - 64 * KiB, rng.randbytes(64 * KiB)),
                (MiB - 4 * KiB, rng.randbytes(8 * KiB)),
            ],
            grow_to=GROWN,
        ),
    ]


def data_disk(backup: Backup) -> int:
    return sorted(backup.disks, key=lambda d: d.key)[DATA_DISK].key


@pytest.mark.test_id(
    "D2-001",
    uuid="ff265b15-767b-4971-ae00-80e5fb4f1a68",
    since="vddk-7.0.3-v2",
    description="Every point of an incremental chain restores to the source at that point",
)
@pytest.mark.sequence("restore")
def test_every_point_of_an_incremental_chain_restores_to_the_source_at_that_point(
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    chain_transport: str,
    tmp_path: Path,
) -> None:
    vm = fresh_vm(DATASTORE, SIZE)
    points: list[tuple[Step, Backup, int]] = []
    previous: Backup | None = None
    capacity = SIZE
    for step in chain():
        if step.grow_to is not None:
            sequence.vsphere.extend_disk(sequence.vsphere.vm(vm), DATA_DISK, step.grow_to)
            guest(vm).rescan_disk(DATA_DISK)
            capacity = step.grow_to
        apply(guest(vm), DATA_DISK, step.writes)
        previous = backed_up(sequence, backup_app, vm, chain_transport, previous=previous)
        points.append((step, previous, capacity))
    problems: list[str] = []
    for index, (step, backup, capacity) in enumerate(points):
        want = expected(tmp_path / f"point-{index}.img", capacity, *(s.writes for s, _, _ in points[: index + 1]))
        found = image_problems(sequence, vm, backup.disk(data_disk(backup)), want)
        restored = sequence.resources.name(f"point-{index}")
        backup_app.restore(sequence, backup, chain_transport, vm_name=restored)
        found += restored_problems(sequence, restored, chain_transport, {DATA_DISK: want})
        problems += [f"point {index} ({backup.kind}, after {step.what}): {p}" for p in found]
    assert problems == []
