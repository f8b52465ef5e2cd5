"""The raw data file of a monolithicFlat disk (NAME-flat.vmdk).

Thin disks are sparse host files (holes read as zeros), thick ones are fully allocated with
posix_fallocate. Which 64 KiB blocks hold data is tracked in memory so that growth can be charged
against the datastore before it happens, the way VMFS refuses a write that needs a new block.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from .space import BlockBitmap, DatastoreSpace, DiskFullError

__all__ = [
    "BLOCK",
    "Fill",
    "FlatExtent",
    "merge_extents",
    "pread_full",
    "pread_into",
    "pwrite_full",
]

#: allocation unit of flat disks and the grain size of sparse ones
BLOCK = 64 * 1024

#: fills a view (freshly allocated, so already zero) with what the disk's parent holds at an
#: offset; sparse extents use it for reads that fall through and for copy-on-write
Fill = Callable[[int, memoryview], None]
#: largest single preadv: huge reads into one buffer are slow, chunks keep them memory-friendly
_IO_CHUNK = 8 * 1024 * 1024


def pread_full(fd: int, length: int, offset: int) -> bytes:
    """Read exactly `length` bytes (a short read past the end of file reads as zeros)."""
    parts: list[bytes] = []
    done = 0
    while done < length:
        chunk = os.pread(fd, length - done, offset + done)
        if not chunk:
            parts.append(bytes(length - done))
            break
        parts.append(chunk)
        done += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def pread_into(fd: int, view: memoryview, offset: int) -> None:
    """Fill `view` from the file at `offset` (past the end of file stays as it is: zeros)."""
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done : done + _IO_CHUNK]], offset + done)
        if not count:
            break
        done += count


def pwrite_full(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (os.pwrite may write less than asked)."""
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def merge_extents(extents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort (offset, length) extents and merge the ones that overlap or touch."""
    merged: list[tuple[int, int]] = []
    for offset, length in sorted(extents):
        if length <= 0:
            continue
        if merged and merged[-1][0] + merged[-1][1] >= offset:
            start = merged[-1][0]
            merged[-1] = (start, max(merged[-1][1], offset + length - start))
        else:
            merged.append((offset, length))
    return merged


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """Host data regions of a file as (offset, length), found with SEEK_DATA / SEEK_HOLE."""
    extents: list[tuple[int, int]] = []
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after `position`
                break
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        if end > start:
            extents.append((start, end - start))
        position = end
    return extents


class FlatExtent:
    """A preallocated-size raw extent; callers hold the disk's lock around every call."""

    def __init__(self, path: Path, fd: int, capacity: int, thick: bool) -> None:
        self.path = path
        self.capacity = capacity
        self._fd = fd
        self._blocks = -(-capacity // BLOCK)
        self._allocated = BlockBitmap()
        if thick:
            # Thick disks were charged in full at creation; SEEK_DATA would report fallocated
            # (unwritten) extents as holes on ext4, so do not derive their accounting from it.
            self._allocated.add(0, self._blocks)
        else:
            for offset, length in data_extents(fd, capacity):
                self._allocated.add(offset // BLOCK, -(-(offset + length) // BLOCK))

    @classmethod
    def create(cls, path: Path, capacity: int, thick: bool) -> FlatExtent:
        """Create the data file: truncate to size (thin) or posix_fallocate it (thick)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, capacity)
            if thick:
                os.posix_fallocate(fd, 0, capacity)
        except BaseException as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise DiskFullError(f"host file system full while allocating {path}") from exc
            raise
        return cls(path, fd, capacity, thick)

    @classmethod
    def open(cls, path: Path, capacity: int, thick: bool) -> FlatExtent:
        """Open an existing data file; a file shorter than the disk is extended with a hole."""
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size < capacity:
                os.ftruncate(fd, capacity)
            return cls(path, fd, capacity, thick)
        except BaseException:
            os.close(fd)
            raise

    def _block_bytes(self, block: int) -> int:
        """Bytes of the disk in `block` (the last block may be short)."""
        return min(BLOCK, self.capacity - block * BLOCK)

    def _missing_bytes(self, first: int, end: int) -> int:
        """Bytes that writing blocks [first, end) would newly allocate."""
        missing = (end - first) - self._allocated.count(first, end)
        if missing and end == self._blocks and not self._allocated.test(end - 1):
            return missing * BLOCK - (BLOCK - self._block_bytes(end - 1))
        return missing * BLOCK

    def readinto(self, offset: int, view: memoryview, fallback: Fill | None = None) -> None:
        """Read from the data file into `view` (holes read as zeros)."""
        pread_into(self._fd, view, offset)

    def write(self, offset: int, data: memoryview, fill: Fill | None, space: DatastoreSpace | None) -> None:
        """Write `data`; new blocks are charged first and a short grant writes only what fits."""
        end = offset + len(data)
        first, last = offset // BLOCK, -(-end // BLOCK)
        need = self._missing_bytes(first, last)
        granted = need if space is None else space.reserve(need)
        cut = last
        if granted < need:
            assert space is not None
            budget = granted
            for block in range(first, last):
                if self._allocated.test(block):
                    continue
                cost = self._block_bytes(block)
                if cost > budget:
                    cut = block
                    break
                budget -= cost
            space.release(budget)
            granted -= budget
        written = max(0, min(end, cut * BLOCK) - offset)
        if written:
            try:
                pwrite_full(self._fd, data[:written], offset)
            except BaseException:
                if space is not None:
                    space.release(granted)  # a host I/O error: what landed stays uncharged
                raise
            self._allocated.add(first, min(cut, last))
        if cut < last:
            raise DiskFullError(
                f"datastore full: wrote {written} of {len(data)} bytes at offset {offset} to {self.path.name}",
                bytes_written=written,
            )

    def extend(self, capacity: int, thick: bool, space: DatastoreSpace | None) -> None:
        """Grow the data file to `capacity`: a hole (thin), or charged and fallocated (thick)."""
        added = capacity - self.capacity
        if thick and space is not None:
            granted = space.reserve(added)
            if granted < added:
                space.release(granted)
                raise DiskFullError(f"datastore full: cannot grow {self.path.name} by {added} bytes", bytes_written=0)
        os.ftruncate(self._fd, capacity)
        if thick:
            os.posix_fallocate(self._fd, self.capacity, added)
        old_blocks = self._blocks
        self.capacity, self._blocks = capacity, -(-capacity // BLOCK)
        if thick:
            self._allocated.add(old_blocks, self._blocks)

    def allocated_runs(self) -> list[tuple[int, int]]:
        """Host data regions as (offset, length), rounded out to 64 KiB and clipped to capacity."""
        runs: list[tuple[int, int]] = []
        for offset, length in data_extents(self._fd, self.capacity):
            start = offset // BLOCK * BLOCK
            stop = min(-(-(offset + length) // BLOCK) * BLOCK, self.capacity)
            runs.append((start, stop - start))
        return merge_extents(runs)

    def accounted_bytes(self) -> int:
        """Bytes this extent counts against its datastore."""
        if not self._blocks:
            return 0
        return self.capacity - self._missing_bytes(0, self._blocks)

    def flush(self) -> None:
        """fsync the data file."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the data file."""
        os.close(self._fd)
