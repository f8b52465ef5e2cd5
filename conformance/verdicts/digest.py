"""Whole-disk digests: capacity, the bytes accounted for, and the content of every non-zero 64 KiB block.

Content ignores zero blocks (a hole and a written zero block are the same content), so the digest of the
expected image, of a backup image file and of a disk read back compare equal exactly when they hold the same
bytes. The capacity and the bytes accounted for (read, or known to be zero) are part of the digest, so a
disk of another size, or a read-back that read nothing, never matches an expected image of zeros.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from conformance.sequences.images import ContentDigest, SparseImage

FORMAT = "vddkc-disk/1"


class DiskDigest:
    """Accumulates what the harness knows of one disk of `capacity` bytes, in any order."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.content = ContentDigest()
        self._ranges: list[tuple[int, int]] = []

    def feed(self, offset: int, data: bytes) -> None:
        """Bytes read at `offset` (64 KiB aligned); only what lies inside the capacity counts as covered."""
        self.content.feed(offset, data)
        self.known_zero(offset, len(data))

    def known_zero(self, offset: int, length: int) -> None:
        """A range the harness knows holds zeros without reading it (a hole its own library reported)."""
        start, end = max(0, offset), min(self.capacity, offset + length)
        if end > start:
            self._ranges.append((start, end))

    @property
    def covered(self) -> int:
        """Bytes accounted for (union of what was read and what is known zero)."""
        total, reach = 0, 0
        for start, end in sorted(self._ranges):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total

    def hexdigest(self) -> str:
        text = f"{FORMAT} capacity={self.capacity} covered={self.covered} content={self.content.hexdigest()}"
        return hashlib.sha256(text.encode()).hexdigest()


def image_digest(image: SparseImage) -> str:
    """The digest of a local image file: its stored data, its holes known zero, its size as the capacity. The
    expected image and an application's backup image both go through here."""
    digest = DiskDigest(image.path.stat().st_size)
    image.feed(digest.content)
    digest.known_zero(0, digest.capacity)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    return image_digest(SparseImage(path, path.stat().st_size))
