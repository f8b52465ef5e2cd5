"""VMware hosted sparse extent ("KDMV", version 1): the data file of a delta disk (NAME-delta.vmdk).

Layout (all offsets in 512-byte sectors, little-endian): a 512-byte header at sector 0, the grain
directory (GD) right after it, then grain tables (GT) and 64 KiB grains appended at the end of the
file as they are needed. A GD entry of 0 means "no grain table yet" and a GT entry of 0 means "grain
not allocated": both read through to the parent disk, which is how qemu-img and ESXi read deltas.
Grain tables take a 4 KiB slot (2 KiB table + padding) so grains stay aligned to host blocks.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from array import array
from pathlib import Path
from typing import NamedTuple

from .space import DatastoreSpace, DiskFullError
from .vmdk_flat import Fill, merge_extents, pread_full, pread_into, pwrite_full

__all__ = ["SparseExtent"]

SECTOR = 512
_MAGIC = b"KDMV"
# magic, version, flags, capacity, grainSize, descriptorOffset, descriptorSize, numGTEsPerGT,
# rgdOffset, gdOffset, overHead, uncleanShutdown, 4 newline-detection chars, compressAlgorithm
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH433x")
_NEWLINE_CHARS = b"\n \r\n"
_FLAG_NEWLINE_TEST = 1 << 0
_GRAIN_SECTORS = 128
_GTES_PER_GT = 512
_GT_SLOT_SECTORS = 8
_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_MAX_SECTOR = 0xFFFFFFFF  # grain table entries are 32-bit sector numbers
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class _Header(NamedTuple):
    """The fields of the 512-byte sparse extent header, in file order."""

    magic: bytes
    version: int
    flags: int
    capacity: int
    grain_size: int
    descriptor_offset: int
    descriptor_size: int
    gtes_per_gt: int
    rgd_offset: int
    gd_offset: int
    overhead: int
    unclean_shutdown: int
    newline_chars: bytes
    compress_algorithm: int

    @classmethod
    def parse(cls, raw: bytes) -> _Header:
        return cls._make(_HEADER.unpack(raw))


def _table(raw: bytes) -> array[int]:
    """A little-endian uint32 table from file bytes as a native array."""
    table = array("I")
    assert table.itemsize == 4, "array('I') must be 32 bits"
    table.frombytes(raw)
    if _BIG_ENDIAN_HOST:
        table.byteswap()
    return table


def _table_bytes(table: array[int]) -> bytes:
    """File bytes (little-endian) of a uint32 table."""
    if not _BIG_ENDIAN_HOST:
        return table.tobytes()
    swapped = array("I", table)
    swapped.byteswap()
    return swapped.tobytes()


class SparseExtent:
    """Grain directory and grain tables cached in memory, written through to the file.

    Callers hold the disk's lock around every call.
    """

    def __init__(self, path: Path, fd: int, header: _Header) -> None:
        self.path = path
        self._fd = fd
        magic, version, flags, compress = (header.magic, header.version, header.flags, header.compress_algorithm)
        capacity, grain, gtes = header.capacity, header.grain_size, header.gtes_per_gt
        gd_offset, overhead = header.gd_offset, header.overhead
        if magic != _MAGIC:
            raise ValueError(f"{path}: not a hosted sparse extent (magic {magic!r})")
        if version not in (1, 2, 3) or flags & ~_FLAG_NEWLINE_TEST or compress:
            raise ValueError(
                f"{path}: unsupported sparse extent features (version {version}, "
                f"flags {flags:#x}, compression {compress}); only plain version-1 "
                "extents without a redundant grain directory are supported"
            )
        if grain <= 0 or gtes <= 0 or gd_offset in (0, _GD_AT_END):
            raise ValueError(f"{path}: corrupt sparse extent header")
        self.capacity = capacity * SECTOR
        self._grain_sectors = grain
        self._grain_bytes = grain * SECTOR
        self._gtes = gtes
        self._gd_offset = gd_offset
        gd_entries = -(-capacity // (gtes * grain))
        self._gd = _table(pread_full(fd, gd_entries * 4, gd_offset * SECTOR))
        self._gts: dict[int, array[int]] = {}
        end = -(-os.fstat(fd).st_size // SECTOR)
        self._next = max(overhead, -(-end // _GT_SLOT_SECTORS) * _GT_SLOT_SECTORS)

    @classmethod
    def create(cls, path: Path, capacity: int) -> SparseExtent:
        """Write a header and an empty (hole) grain directory; nothing else is allocated."""
        sectors = capacity // SECTOR
        gd_entries = -(-sectors // (_GTES_PER_GT * _GRAIN_SECTORS))
        gd_sectors = -(-(gd_entries * 4) // SECTOR)
        overhead = -(-(1 + gd_sectors) // _GRAIN_SECTORS) * _GRAIN_SECTORS
        header = _HEADER.pack(
            _MAGIC,
            1,
            _FLAG_NEWLINE_TEST,
            sectors,
            _GRAIN_SECTORS,
            0,
            0,
            _GTES_PER_GT,
            0,
            1,
            overhead,
            0,
            _NEWLINE_CHARS,
            0,
        )
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            pwrite_full(fd, header, 0)
            os.ftruncate(fd, overhead * SECTOR)  # qemu refuses a file shorter than overHead
            return cls(path, fd, _Header.parse(header))
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise

    @classmethod
    def open(cls, path: Path) -> SparseExtent:
        """Open an existing extent and load its grain directory."""
        fd = os.open(path, os.O_RDWR)
        try:
            raw = pread_full(fd, _HEADER.size, 0)
            return cls(path, fd, _Header.parse(raw))
        except BaseException:
            os.close(fd)
            raise

    def _grain_table(self, index: int) -> array[int]:
        """Grain table `index` (its GD entry must be set), read from the file once."""
        table = self._gts.get(index)
        if table is None:
            raw = pread_full(self._fd, self._gtes * 4, self._gd[index] * SECTOR)
            table = self._gts[index] = _table(raw)
        return table

    def _lookup(self, grain: int) -> int:
        """File sector of `grain`, 0 when not allocated."""
        index, entry = divmod(grain, self._gtes)
        if not self._gd[index]:
            return 0
        return self._grain_table(index)[entry]

    def readinto(self, offset: int, view: memoryview, fallback: Fill) -> None:
        """Read into `view`; each run of unallocated grains is one `fallback` (parent) call."""
        size = self._grain_bytes
        end = offset + len(view)
        run_start, run_file, run_len = offset, -1, 0
        position = offset
        while position < end:
            grain = position // size
            count = min(end, (grain + 1) * size) - position
            sector = self._lookup(grain)
            file_offset = sector * SECTOR + position - grain * size if sector else -1
            if run_len and (
                (file_offset < 0 and run_file < 0)
                or (file_offset >= 0 and run_file >= 0 and run_file + run_len == file_offset)
            ):
                run_len += count
            else:
                if run_len:
                    self._read_run(view[run_start - offset :][:run_len], run_start, run_file, fallback)
                run_start, run_file, run_len = position, file_offset, count
            position += count
        if run_len:
            self._read_run(view[run_start - offset :][:run_len], run_start, run_file, fallback)

    def _read_run(self, view: memoryview, start: int, file_offset: int, fallback: Fill) -> None:
        if file_offset < 0:
            fallback(start, view)
        else:
            pread_into(self._fd, view, file_offset)

    def write(self, offset: int, data: memoryview, fill: Fill, space: DatastoreSpace | None) -> None:
        """Write `data`; new grains (and grain tables) are charged first, a short grant writes
        the grains that fit and raises DiskFullError with the length of that prefix."""
        size = self._grain_bytes
        end = offset + len(data)
        first, last = offset // size, -(-end // size)
        sectors = [self._lookup(grain) for grain in range(first, last)]
        new_tables = {
            g // self._gtes
            for g, s in zip(range(first, last), sectors, strict=True)
            if not s and not self._gd[g // self._gtes]
        }
        need = sectors.count(0) * size + len(new_tables) * _GT_SLOT_SECTORS * SECTOR
        if self._next + need // SECTOR > _MAX_SECTOR:
            raise OSError(
                errno.EFBIG, f"{self.path.name}: a hosted sparse extent cannot grow past 2 TiB (32-bit sector numbers)"
            )
        granted = need if space is None else space.reserve(need)
        charged, cut = granted, last
        if granted < need:
            assert space is not None
            budget, tables = granted, set()
            for grain, sector in zip(range(first, last), sectors, strict=True):
                if sector:
                    continue
                index = grain // self._gtes
                cost = size
                if not self._gd[index] and index not in tables:
                    cost += _GT_SLOT_SECTORS * SECTOR
                if cost > budget:
                    cut = grain
                    break
                budget -= cost
                tables.add(index)
            space.release(budget)
            charged -= budget
        stop = min(end, cut * size)
        if stop > offset:
            try:
                self._write_grains(offset, data[: stop - offset], sectors[: cut - first], fill)
            except BaseException:
                if space is not None:
                    space.release(charged)  # host I/O error: nothing was committed
                raise
        if cut < last:
            written = max(0, stop - offset)
            raise DiskFullError(
                f"datastore full: wrote {written} of {len(data)} bytes at offset {offset} to {self.path.name}",
                bytes_written=written,
            )

    def _write_grains(self, offset: int, data: memoryview, sectors: list[int], fill: Fill) -> None:
        """Allocate what is missing, write data, then grain tables, then the grain directory
        (data before metadata, so a crash never leaves a table pointing at garbage)."""
        new_tables: list[int] = []
        dirty: set[int] = set()
        try:
            self._allocate_and_write(offset, data, sectors, fill, new_tables, dirty)
        except BaseException:
            # A host I/O error: drop the cached tables this write touched so they are read back
            # as the file has them. The end-of-file pointer is not moved back, so space already
            # handed out (maybe referenced by a table that did reach the file) is never reused.
            for index in new_tables:
                self._gd[index] = 0
            for index in dirty:
                self._gts.pop(index, None)
            raise

    def _allocate_and_write(
        self, offset: int, data: memoryview, sectors: list[int], fill: Fill, new_tables: list[int], dirty: set[int]
    ) -> None:
        size = self._grain_bytes
        end = offset + len(data)
        first = offset // size
        for grain, sector in zip(range(first, first + len(sectors)), sectors, strict=True):
            index = grain // self._gtes
            if not sector and not self._gd[index]:
                self._gd[index] = self._next
                self._gts[index] = array("I", bytes(self._gtes * 4))
                self._next += _GT_SLOT_SECTORS
                new_tables.append(index)
        pieces: list[tuple[int, bytes | bytearray | memoryview]] = []
        for grain, sector in zip(range(first, first + len(sectors)), sectors, strict=True):
            start = grain * size
            lo, hi = max(offset, start), min(end, start + size)
            chunk = data[lo - offset : hi - offset]
            if sector:
                pieces.append((sector * SECTOR + lo - start, chunk))
                continue
            sector = self._next
            self._next += self._grain_sectors
            index, entry = divmod(grain, self._gtes)
            self._gts[index][entry] = sector
            dirty.add(index)
            if hi - lo == size:
                pieces.append((sector * SECTOR, chunk))
            else:  # copy-on-write: the rest of the grain keeps what the parent shows
                buffer = bytearray(size)
                fill(start, memoryview(buffer)[: min(size, self.capacity - start)])
                buffer[lo - start : hi - start] = chunk
                pieces.append((sector * SECTOR, buffer))
        self._write_pieces(pieces)
        for index in sorted(dirty):
            pwrite_full(self._fd, _table_bytes(self._gts[index]), self._gd[index] * SECTOR)
        for index in new_tables:
            pwrite_full(self._fd, struct.pack("<I", self._gd[index]), self._gd_offset * SECTOR + 4 * index)

    def _write_pieces(self, pieces: list[tuple[int, bytes | bytearray | memoryview]]) -> None:
        """Write (file offset, bytes) pieces, one pwrite per run of contiguous pieces."""
        index = 0
        while index < len(pieces):
            start, chunk = pieces[index]
            group = [chunk]
            position = start + len(chunk)
            index += 1
            while index < len(pieces) and pieces[index][0] == position:
                group.append(pieces[index][1])
                position += len(pieces[index][1])
                index += 1
            pwrite_full(self._fd, group[0] if len(group) == 1 else b"".join(group), start)

    def allocated_grains(self) -> list[int]:
        """Indices of allocated grains, ascending."""
        grains: list[int] = []
        for index, table_sector in enumerate(self._gd):
            if not table_sector:
                continue
            base = index * self._gtes
            grains.extend(base + entry for entry, sector in enumerate(self._grain_table(index)) if sector)
        return grains

    def allocated_runs(self) -> list[tuple[int, int]]:
        """Allocated grains as merged (offset, length) byte extents, clipped to capacity."""
        size = self._grain_bytes
        extents = [(grain * size, min(size, self.capacity - grain * size)) for grain in self.allocated_grains()]
        return merge_extents(extents)

    def accounted_bytes(self) -> int:
        """Bytes this extent counts against its datastore (grains plus grain table slots)."""
        tables = sum(1 for sector in self._gd if sector)
        return len(self.allocated_grains()) * self._grain_bytes + tables * _GT_SLOT_SECTORS * SECTOR

    def flush(self) -> None:
        """fsync the extent file."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the extent file and drop the cached tables."""
        os.close(self._fd)
        self._gts.clear()
