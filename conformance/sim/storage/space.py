"""Datastore space accounting and a compact block bitmap.

The simulated ESXi keeps real files on the host, but the size of each datastore is simulated: every
disk charges the bytes it newly allocates against the `DatastoreSpace` of its folder, so a test can
make a datastore run out of room at a precise point (the host file system is never the limit).

`BlockBitmap` is the shared "which 64 KiB blocks" structure: flat disks use it for their
allocation map and changed block tracking uses it for its per-sequence change sets.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

__all__ = ["BlockBitmap", "DatastoreSpace", "DiskFullError"]


class DiskFullError(Exception):
    """A write (or a thick create) did not fit in the datastore.

    `bytes_written` is the length of the prefix of the failed write that persisted, so callers can
    report a short write the way ESXi does (the data before the failure point stays intact).
    """

    def __init__(self, message: str, bytes_written: int = 0) -> None:
        super().__init__(message)
        self.bytes_written = bytes_written

    def __reduce__(self) -> tuple[type[DiskFullError], tuple[str, int]]:
        """Keep `bytes_written` when the error crosses a process boundary (pickling)."""
        return (type(self), (str(self), self.bytes_written))


class DatastoreSpace:
    """Capacity and free space of one datastore folder; shared by every disk on it."""

    def __init__(self, capacity: int, free_limit: int | None = None) -> None:
        if capacity < 0:
            raise ValueError(f"datastore capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._used = 0
        self._limit: int | None = None
        self._used_at_limit = 0
        self.set_free_space(free_limit)

    def __repr__(self) -> str:
        return f"DatastoreSpace(capacity={self.capacity}, used={self.used()}, free={self.free()})"

    def used(self) -> int:
        """Bytes currently charged by the disks on this datastore."""
        with self._lock:
            return self._used

    def free(self) -> int:
        """Bytes that can still be reserved (honours a `set_free_space` override)."""
        with self._lock:
            return self._free_locked()

    def _free_locked(self) -> int:
        if self._limit is None:
            return max(0, self.capacity - self._used)
        # The override is "this many more bytes from the moment it was set": later growth eats
        # into it and releases give room back, so a fault test sees a datastore that really fills.
        return max(0, self._limit - (self._used - self._used_at_limit))

    def set_free_space(self, free_bytes: int | None) -> None:
        """Pretend only `free_bytes` are free from now on (fault hook); None = back to capacity - used."""
        if free_bytes is not None and free_bytes < 0:
            raise ValueError(f"free space must be >= 0 or None, got {free_bytes}")
        with self._lock:
            self._limit = free_bytes
            self._used_at_limit = self._used

    def reserve(self, nbytes: int) -> int:
        """Charge up to `nbytes`; returns what was granted (less when nearly full, 0 when full)."""
        if nbytes <= 0:
            return 0
        with self._lock:
            granted = min(nbytes, self._free_locked())
            self._used += granted
            return granted

    def release(self, nbytes: int) -> None:
        """Give back bytes charged earlier (deleted files, unused part of a grant)."""
        if nbytes <= 0:
            return
        with self._lock:
            self._used = max(0, self._used - nbytes)


_CHUNK_BITS = 1 << 15  # blocks per chunk: 2 GiB of 64 KiB blocks in 4 KiB of bitmap
_CHUNK_BYTES = _CHUNK_BITS // 8
# A run of fully set bytes, or one partially set byte.
_RUNS = re.compile(rb"\xff+|[^\x00\xff]")


def _set_bits(buf: bytearray, start: int, end: int) -> None:
    """Set bits [start, end) of `buf` (bit k of byte i is bit 8*i+k) without a per-bit loop."""
    first, last = start >> 3, (end - 1) >> 3
    if first == last:
        buf[first] |= ((1 << (end - start)) - 1) << (start & 7)
        return
    buf[first] |= (0xFF << (start & 7)) & 0xFF
    if last > first + 1:
        buf[first + 1 : last] = b"\xff" * (last - first - 1)
    buf[last] |= (1 << (((end - 1) & 7) + 1)) - 1


def _count_bits(buf: bytearray, start: int, end: int) -> int:
    """Number of set bits in [start, end) of `buf`."""
    first, last = start >> 3, (end - 1) >> 3
    value = int.from_bytes(buf[first : last + 1], "little") >> (start & 7)
    return (value & ((1 << (end - start)) - 1)).bit_count()


def _append_run(runs: list[tuple[int, int]], start: int, end: int) -> None:
    """Append [start, end) to ordered `runs`, merging with the last run when they touch."""
    if runs and runs[-1][1] >= start:
        runs[-1] = (runs[-1][0], max(end, runs[-1][1]))
    else:
        runs.append((start, end))


class BlockBitmap:
    """Set of block numbers kept as lazily allocated bit chunks.

    Memory grows with the regions touched (4 KiB per 2 GiB region at 64 KiB blocks), not with the
    number of writes, so a million small writes cost the same as one large one.
    """

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: dict[int, bytearray] = {}

    @classmethod
    def from_runs(cls, runs: Iterable[tuple[int, int]]) -> BlockBitmap:
        """Bitmap with every block of the half-open `runs` set."""
        bitmap = cls()
        for start, end in runs:
            bitmap.add(start, end)
        return bitmap

    @classmethod
    def union(cls, bitmaps: Iterable[BlockBitmap]) -> BlockBitmap:
        """Blocks set in any of `bitmaps` (chunks are OR-ed as big integers, not bit by bit)."""
        merged: dict[int, int] = {}
        for bitmap in bitmaps:
            for index, buf in bitmap._chunks.items():
                merged[index] = merged.get(index, 0) | int.from_bytes(buf, "little")
        result = cls()
        for index, value in merged.items():
            if value:
                result._chunks[index] = bytearray(value.to_bytes(_CHUNK_BYTES, "little"))
        return result

    def _spans(self, start: int, end: int) -> Iterable[tuple[int, int, int]]:
        """Split [start, end) into (chunk index, first bit, end bit) pieces."""
        if start < 0:
            raise ValueError(f"block numbers must be >= 0, got {start}")
        while start < end:
            index, bit = divmod(start, _CHUNK_BITS)
            stop = min(end, (index + 1) * _CHUNK_BITS)
            yield index, bit, bit + (stop - start)
            start = stop

    def add(self, start: int, end: int) -> None:
        """Set blocks [start, end)."""
        for index, first, last in self._spans(start, end):
            buf = self._chunks.get(index)
            if buf is None:
                buf = self._chunks[index] = bytearray(_CHUNK_BYTES)
            _set_bits(buf, first, last)

    def count(self, start: int, end: int) -> int:
        """How many of blocks [start, end) are set."""
        total = 0
        for index, first, last in self._spans(start, end):
            buf = self._chunks.get(index)
            if buf is not None:
                total += _count_bits(buf, first, last)
        return total

    def test(self, block: int) -> bool:
        """Whether `block` is set."""
        buf = self._chunks.get(block // _CHUNK_BITS)
        if buf is None:
            return False
        bit = block % _CHUNK_BITS
        return bool((buf[bit >> 3] >> (bit & 7)) & 1)

    def total(self) -> int:
        """Number of set blocks."""
        return sum(int.from_bytes(buf, "little").bit_count() for buf in self._chunks.values())

    def runs(self) -> list[tuple[int, int]]:
        """Set blocks as sorted, merged half-open (start, end) runs."""
        runs: list[tuple[int, int]] = []
        for index in sorted(self._chunks):
            buf = self._chunks[index]
            base = index * _CHUNK_BITS
            for match in _RUNS.finditer(buf):
                pos = match.start()
                value = buf[pos]
                if value == 0xFF:
                    _append_run(runs, base + 8 * pos, base + 8 * match.end())
                    continue
                for bit in range(8):
                    if (value >> bit) & 1:
                        block = base + 8 * pos + bit
                        _append_run(runs, block, block + 1)
        return runs
