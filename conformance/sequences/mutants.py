"""Deliberately wrong backup applications: each breaks one documented usage rule, so the detection matrix can
show that the suites of a documentation-only item (C1, R1) catch an application that ignores the rule.

Never use these to certify anything; they exist to fail.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conformance.sequences.reference import ReferenceBackupApp

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


MUTANTS = {"C1": "conformance.sequences.mutants:QueryOffTheOpeningThread",
           "R1": "conformance.sequences.mutants:ThreadsBeforeInitEx"}  # fmt: skip
