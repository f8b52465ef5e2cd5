"""Backup images on the harness's side: sparse raw files, and content digests that ignore zero blocks.

A digest is the SHA-256 over (block number, SHA-256 of block) for every non-zero 64 KiB block, so a disk
and its backup compare equal whether holes are stored as holes or as written zeros.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BLOCK = 64 * 1024
ZERO_BLOCK = bytes(BLOCK)


def data_extents(path: Path) -> list[tuple[int, int]]:
    """(offset, length) runs of a sparse file that hold data, from SEEK_DATA/SEEK_HOLE."""
    size = path.stat().st_size
    out: list[tuple[int, int]] = []
    with path.open("rb") as handle:
        fd = handle.fileno()
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end - start))
            offset = end
    return out


class ContentDigest:
    """Accumulates blocks in any order; `hexdigest()` is independent of order and of zero blocks."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytes] = {}

    def feed(self, offset: int, data: bytes) -> None:
        if offset % BLOCK:
            raise ValueError(f"digest input must be {BLOCK}-byte aligned, got offset {offset}")
        view = memoryview(data)
        for start in range(0, len(data), BLOCK):
            block = bytes(view[start : start + BLOCK])
            index = (offset + start) // BLOCK
            if block.count(0) == len(block):
                self.blocks.pop(index, None)
            else:
                self.blocks[index] = hashlib.sha256(block.ljust(BLOCK, b"\0")).digest()

    def hexdigest(self) -> str:
        total = hashlib.sha256()
        for index in sorted(self.blocks):
            total.update(index.to_bytes(8, "little"))
            total.update(self.blocks[index])
        return total.hexdigest()

    @property
    def nonzero_bytes(self) -> int:
        return len(self.blocks) * BLOCK


class SparseImage:
    """A raw disk image in a sparse file: only written ranges take space."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                handle.truncate(capacity)

    def write(self, offset: int, data: bytes) -> None:
        with self.path.open("r+b") as handle:
            handle.seek(offset)
            handle.write(data)

    def write_many(self, pieces: Iterable[tuple[int, bytes]]) -> None:
        with self.path.open("r+b") as handle:
            for offset, data in pieces:
                handle.seek(offset)
                handle.write(data)

    def read(self, offset: int, length: int) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(length).ljust(length, b"\0")

    def extents(self) -> list[tuple[int, int]]:
        return data_extents(self.path)

    def copy_to(self, path: Path) -> SparseImage:
        """A sparse copy (incremental backups start from the previous image)."""
        copy = SparseImage(path, self.capacity)
        with self.path.open("rb") as source, path.open("r+b") as target:
            for offset, length in self.extents():
                source.seek(offset)
                target.seek(offset)
                shutil.copyfileobj(_limited(source, length), target, BLOCK * 16)
        return copy

    def digest(self) -> str:
        digest = ContentDigest()
        self.feed(digest)
        return digest.hexdigest()

    def feed(self, digest: ContentDigest | Any) -> None:
        """Feed every block that holds stored data (holes are zeros) to a digest with `feed(offset, data)`."""
        with self.path.open("rb") as handle:
            for offset, length in self.extents():
                start = offset // BLOCK * BLOCK
                end = -(-(offset + length) // BLOCK) * BLOCK
                handle.seek(start)
                for position in range(start, min(end, self.capacity), BLOCK):
                    digest.feed(position, handle.read(BLOCK).ljust(BLOCK, b"\0"))


class _limited:  # noqa: N801 - a tiny file-like adapter
    def __init__(self, handle: object, remaining: int) -> None:
        self.handle = handle
        self.remaining = remaining

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data: bytes = self.handle.read(size)  # type: ignore[attr-defined]
        self.remaining -= len(data)
        return data
