"""The backup image an application handed over, hashed by the harness and compared with the guest's writes.

The application's own `digest` is shown next to the harness's in the report and never decides anything.
"""

from __future__ import annotations

from conformance.sequences.context import SequenceContext
from conformance.sequences.images import BLOCK, SparseImage
from conformance.sequences.model import DiskBackup
from conformance.verdicts.digest import image_digest
from conformance.workloads import Expected


def unstored(image: SparseImage, written: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    """Ranges the guest wrote that the image file holds as a hole: never read into it (an image of written
    zeros stores them; an image nothing was read into does not). Compared per 64 KiB block, since filesystems
    allocate in blocks."""
    stored = {b for offset, length in image.extents() for b in range(offset // BLOCK, -(-(offset + length) // BLOCK))}
    return [
        (offset, length)
        for offset, length in written
        if any(b not in stored for b in range(offset // BLOCK, -(-(offset + length) // BLOCK)))
    ]


def image_problems(ctx: SequenceContext, vm_name: str, disk: DiskBackup, want: Expected) -> list[str]:
    """What is wrong with the image of one backed-up disk (empty: it holds exactly what the guest wrote)."""
    if not disk.image.is_file():
        problems = [f"{vm_name} disk {disk.key}: backup image {disk.image} does not exist"]
        ctx.digests.append(_entry(vm_name, disk, image_digest(want.image), None))
        return problems
    actual = SparseImage(disk.image, disk.image.stat().st_size)
    got, expected = image_digest(actual), image_digest(want.image)
    ctx.digests.append(_entry(vm_name, disk, expected, got))
    problems = []
    if actual.capacity != want.capacity:
        problems.append(f"{vm_name} disk {disk.key}: backup image is {actual.capacity} bytes, the disk {want.capacity}")
    if got != expected:
        problems.append(f"{vm_name} disk {disk.key}: backup image content differs from what the guest wrote")
    holes = unstored(actual, want.written)
    if holes:
        where = ", ".join(f"{length} bytes at {offset}" for offset, length in holes[:3])
        problems.append(f"{vm_name} disk {disk.key}: backup image never stored what the guest wrote ({where})")
    return problems


def _entry(vm_name: str, disk: DiskBackup, expected: str, actual: str | None) -> dict[str, object]:
    return {
        "vm": vm_name,
        "disk": disk.key,
        "what": "backup image",
        "method": "image file hashed by the harness",
        "expected": expected,
        "actual": actual,
        "match": expected == actual,
        "reported_by_application": getattr(disk, "digest", None),
    }
