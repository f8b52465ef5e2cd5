"""Deliberately wrong backup applications: each breaks one documented usage rule, so the detection matrix can
show that the suites of a documentation-only item (C1, R1) catch an application that ignores the rule; and
lying applications, each claiming a success it did not achieve, so that the harness's own verdicts
(`conformance.verdicts`) are shown to catch what an application reports about itself.

Never use these to certify anything; they exist to fail.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conformance.sequences.context import SequenceContext
from conformance.sequences.images import SparseImage
from conformance.sequences.model import Backup, DiskBackup
from conformance.sequences.reference import ReferenceBackupApp
from conformance.vixdisklib.api import Disk
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.types import SECTOR_SIZE

#: a reader thread started when this module is imported, i.e. when --backup-app is validated at configure time,
#: before any VixDiskLib_InitEx of the run
_EARLY_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-reader")
_EARLY_READER.submit(lambda: None).result()


class QueryOffTheOpeningThread(ReferenceBackupApp):
    """Breaks C1: calls QueryAllocatedBlocks on a helper thread instead of the thread that opened the disk."""

    name = "mutant-c1-query-off-thread"

    def _extents(self, *args: Any) -> list[tuple[int, int]]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qab-helper") as helper:
            return helper.submit(super()._extents, *args).result()


class ThreadsBeforeInitEx(ReferenceBackupApp):
    """Breaks R1: reads disks on a thread it created before VixDiskLib_InitEx."""

    name = "mutant-r1-threads-before-initex"

    def _read_disk(self, *args: Any) -> Any:
        return _EARLY_READER.submit(super()._read_disk, *args).result()


class RestoresNothing(ReferenceBackupApp):
    """Lies about a restore: connects and opens like the reference, writes nothing, reports every byte."""

    name = "mutant-restores-nothing"

    def _write_disk(self, ctx: SequenceContext, source: DiskBackup, *args: Any) -> int:
        return sum(length for _, length in SparseImage(source.image, source.capacity).extents())


class FakeDigest(ReferenceBackupApp):
    """Lies about a backup: hands over images nothing was read into, with the digest a correct image has."""

    name = "mutant-fake-digest"

    def _read_disk(self, ctx: SequenceContext, *args: Any) -> DiskBackup:
        disk = super()._read_disk(ctx, *args)  # learns the right digest (a liar may know it from elsewhere)
        disk.image.unlink()
        SparseImage(disk.image, disk.capacity)  # an image of the disk's size that holds nothing
        return disk


class SkipsCleanup(ReferenceBackupApp):
    """Says it cleaned up and did nothing: snapshot, connection, access and lock stay (the test's teardown
    undoes them)."""

    name = "mutant-skips-cleanup"

    def cleanup(self, ctx: SequenceContext, backup: Backup) -> None:
        return None


class FullReadIncremental(ReferenceBackupApp):
    """Lies about an incremental: reads every allocated block instead of the changed areas, and reports only
    the changed areas' bytes as `bytes_read`."""

    name = "mutant-full-read-incremental"

    def __init__(self) -> None:
        self._changed: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def _extents(self, ctx: SequenceContext, vm: Any, snapshot: Any, disk: Any, handle: Any, previous: Any) -> Any:
        if previous is None:
            return super()._extents(ctx, vm, snapshot, disk, handle, None)
        changed = super()._extents(ctx, vm, snapshot, disk, handle, previous)
        with self._lock:
            self._changed[(snapshot._moId, disk.key)] = sum(length for _, length in changed)
        return super()._extents(ctx, vm, snapshot, disk, handle, None)

    def _read_disk(self, ctx: SequenceContext, backup: Backup, disk: Any, *args: Any) -> DiskBackup:
        result = super()._read_disk(ctx, backup, disk, *args)
        with self._lock:
            claimed = self._changed.pop((backup.snapshot_moref, disk.key), None)
        return result if claimed is None else dataclasses.replace(result, bytes_read=claimed)


class FirstPageOnly(ReferenceBackupApp):
    """Reads only the first QueryChangedDiskAreas reply of an incremental, as if one reply covered the disk: the
    areas past the first page are never read (D1)."""

    name = "mutant-first-page-only"

    def _extents(self, ctx: SequenceContext, vm: Any, snapshot: Any, disk: Any, handle: Any, previous: Any) -> Any:
        if previous is None or not previous.disk(disk.key).change_id:
            return super()._extents(ctx, vm, snapshot, disk, handle, previous)
        page = vm.QueryChangedDiskAreas(snapshot, disk.key, 0, previous.disk(disk.key).change_id)
        return [(int(a.start), int(a.length)) for a in page.changedArea]


class LeavesSnapshot(ReferenceBackupApp):
    """Cleans up everything but the backup snapshot (which the test's teardown still removes)."""

    name = "mutant-leaves-snapshot"

    def cleanup(self, ctx: SequenceContext, backup: Backup) -> None:
        kept = [r for r in ctx.resources.pending() if r.kind == "snapshot" and r.name == backup.snapshot_name]
        for resource in kept:
            ctx.resources.forget(resource)
        super().cleanup(ctx, backup)
        for resource in kept:  # left on the server, still owned by the test so that its teardown removes it
            ctx.resources.add(resource.kind, resource.name, resource.undo)


class GreedyReads(ReferenceBackupApp):
    """Ignores D3: reads every disk at once in 16 MiB requests, and where the host's NFC memory refuses one it
    keeps zeros in the image and carries on, reporting the disk backed up."""

    name = "mutant-greedy-reads"
    REQUEST = 16 * 2**20

    def backup(self, ctx: SequenceContext, vm_name: str, transports: str, previous: Backup | None = None) -> Backup:
        return super().backup(dataclasses.replace(ctx, io_size=self.REQUEST), vm_name, transports, previous)

    def _read_range(self, ctx: SequenceContext, handle: Disk, offset: int, length: int) -> bytes:
        try:
            return ctx.lib.read(handle, offset // SECTOR_SIZE, length // SECTOR_SIZE)
        except VixError:
            return bytes(length)  # "probably an empty area": the lie


MUTANTS = {"C1": "conformance.sequences.mutants:QueryOffTheOpeningThread",
           "R1": "conformance.sequences.mutants:ThreadsBeforeInitEx"}  # fmt: skip
