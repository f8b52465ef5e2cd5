"""Disk patterns and guest workloads: what tests write into a VM, and the image they expect back.

Each pattern is deterministic (seeded), writes through the guest (dd via guest operations, see
`vsphere/guest.py`) and builds the expected image locally, so a backup or restore is checked against what
was written, independently of the path that read it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from conformance.sequences.images import SparseImage
from conformance.vsphere.guest import GuestWorkload

KiB, MiB, GiB = 1024, 1024**2, 1024**3
Write = tuple[int, bytes]


@dataclass(frozen=True)
class DiskPattern:
    name: str
    disk_size: int
    description: str

    def writes(self, seed: int = 1) -> list[Write]:
        """The initial content (on an empty disk)."""
        rng = random.Random(f"{self.name}-{seed}")
        size = self.disk_size
        if self.name == "zeros":
            return [(0, bytes(4 * MiB))]
        if self.name == "random":
            return [(0, rng.randbytes(8 * MiB))]
        if self.name == "sparse":
            return [(offset, rng.randbytes(64 * KiB)) for offset in (0, size // 3 // MiB * MiB, size - 64 * KiB)]
        if self.name == "fragmented":
            offsets = sorted(rng.sample(range(0, size // (64 * KiB)), 48))
            return [(block * 64 * KiB, rng.randbytes(rng.choice((4, 16, 64)) * KiB)) for block in offsets]
        if self.name == "scattered":
            # one 64 KiB block in every MiB, at a random aligned place, the last one in the disk's last block: a
            # range the transport gets wrong anywhere on the disk holds data
            blocks = [mib * MiB + rng.randrange(MiB // (64 * KiB)) * 64 * KiB for mib in range(size // MiB - 1)]
            return [(offset, rng.randbytes(64 * KiB)) for offset in (*blocks, size - 64 * KiB)]
        if self.name == "large-sparse":
            return [(size // 2, rng.randbytes(MiB))]
        raise ValueError(f"unknown disk pattern {self.name!r}")

    def changes(self, seed: int = 2) -> list[Write]:
        """What a guest workload writes between a full and an incremental backup."""
        rng = random.Random(f"{self.name}-changes-{seed}")
        size = self.disk_size
        return [(64 * KiB, rng.randbytes(128 * KiB)), (size // 2 // MiB * MiB + 4 * KiB, rng.randbytes(8 * KiB))]


PATTERNS: dict[str, DiskPattern] = {
    p.name: p
    for p in (
        DiskPattern("zeros", 32 * MiB, "4 MiB of written zeros: allocated, but no content"),
        DiskPattern("random", 32 * MiB, "8 MiB of random data from the start"),
        DiskPattern("sparse", 32 * MiB, "three 64 KiB blocks far apart, one in the last block"),
        DiskPattern("fragmented", 32 * MiB, "48 small writes (4 to 64 KiB) at random aligned offsets"),
        DiskPattern("scattered", 32 * MiB, "a 64 KiB block in every MiB, the last in the disk's last block"),
        DiskPattern("large-sparse", 64 * GiB, "a 64 GiB disk with 1 MiB written in the middle"),
    )
}
DEFAULT_PATTERNS = ("zeros", "random", "sparse", "fragmented", "scattered")


def pattern(name: str) -> DiskPattern:
    try:
        return PATTERNS[name]
    except KeyError:
        raise ValueError(f"unknown disk pattern {name!r}: use one of {', '.join(PATTERNS)}") from None


def apply(workload: GuestWorkload, disk_index: int, writes: list[Write]) -> None:
    """Write through the guest: one dd per write, or one upload and batched dd runs for many writes."""
    if len(writes) > 1:
        workload.write_disk_many(disk_index, writes)
        return
    for offset, data in writes:
        workload.write_disk(disk_index, offset, data)


def expected_image(path: Path, capacity: int, *write_sets: list[Write]) -> SparseImage:
    """The image an empty disk has after these writes, built locally."""
    image = SparseImage(path, capacity)
    for writes in write_sets:
        image.write_many(writes)
    return image


@dataclass(frozen=True)
class Expected:
    """What one disk must hold after the guest's writes: the image built locally from them, and the ranges the
    guest wrote (a backup image must store those, even where the guest wrote zeros)."""

    image: SparseImage
    written: tuple[tuple[int, int], ...]

    @property
    def capacity(self) -> int:
        return self.image.capacity


def expected(path: Path, capacity: int, *write_sets: list[Write]) -> Expected:
    """The expectation for a disk of `capacity` that was empty before these write sets (in order)."""
    written = tuple((offset, len(data)) for writes in write_sets for offset, data in writes)
    return Expected(expected_image(path, capacity, *write_sets), written)
