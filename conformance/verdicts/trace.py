"""What the VixDiskLib call trace shows: bytes read from a backup's snapshot disks, handles left open.

The facade records every call of the library the application is given, so these numbers are the harness's
own count, not the application's `bytes_read`.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.recorder import CallRecord
from conformance.vixdisklib.types import SECTOR_SIZE

#: vSphere CBT tracks changes in 64 KiB blocks: an incremental may read whole blocks around each write
CBT_BLOCK = 64 * 1024
READS = ("VixDiskLib_Read", "VixDiskLib_ReadAsync")


def trace_mark(lib: VixDiskLib) -> int:
    """The position after the last recorded call: `since` for the functions below."""
    return max((r.seq for r in lib.recorder.records()), default=0)


def _since(lib: VixDiskLib, since: int) -> list[CallRecord]:
    return [r for r in lib.recorder.records() if r.seq > since]


@dataclass(frozen=True)
class SnapshotReads:
    """Sectors read (successful calls) per opened disk path of one snapshot, since a mark."""

    by_path: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_path.values())


def snapshot_reads(lib: VixDiskLib, since: int, snapshot_moref: str, paths: set[str]) -> SnapshotReads:
    """Bytes read from disks opened on a connection to the snapshot, or opened by one of `paths` (the backup's
    disks) on any connection: an application cannot hide reads behind a second connection."""
    records = _since(lib, since)
    to_snapshot = {
        r.handle for r in records if r.call == "VixDiskLib_ConnectEx" and r.args.get("snapshotRef") == snapshot_moref
    }
    opened = {
        r.handle: str(r.args.get("path"))
        for r in records
        if r.call == "VixDiskLib_Open" and r.error is None
        and (r.args.get("connection") in to_snapshot or r.args.get("path") in paths)
    }  # fmt: skip
    by_path: dict[str, int] = {}
    for r in records:
        if r.call in READS and r.error is None and r.handle in opened:
            path = opened[r.handle]
            by_path[path] = by_path.get(path, 0) + int(r.args.get("numSectors", 0)) * SECTOR_SIZE
    return SnapshotReads(by_path)


def changed_bytes(writes: list[tuple[int, int]], block: int = CBT_BLOCK) -> int:
    """The bytes of the CBT blocks these (offset, length) writes touch: the most an incremental needs to read."""
    blocks = {b for offset, length in writes for b in range(offset // block, -(-(offset + length) // block))}
    return len(blocks) * block


def left_open(lib: VixDiskLib, since: int) -> list[str]:
    """Connections without a Disconnect and disks without a Close among those made since the mark."""
    records = _since(lib, since)
    ended = {r.handle for r in records if r.call in ("VixDiskLib_Disconnect", "VixDiskLib_Close") and r.error is None}
    made = [r for r in records if r.call in ("VixDiskLib_ConnectEx", "VixDiskLib_Open") and r.error is None]
    return [
        f"{'connection' if r.call == 'VixDiskLib_ConnectEx' else 'disk'} {r.handle}"
        + (f" ({r.args['path']})" if r.args.get("path") else "")
        for r in made
        if r.handle not in ended
    ]
