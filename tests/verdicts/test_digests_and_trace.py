"""The verdict functions on local data: whole-disk digests, backup images, and call traces, each shown to fail
on a hostile case (nothing read, an unread image, a wrong size, too many reads, a handle left open)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.sequences.images import BLOCK, SparseImage
from conformance.sequences.model import DiskBackup
from conformance.verdicts.digest import DiskDigest, image_digest
from conformance.verdicts.image import image_problems
from conformance.verdicts.trace import changed_bytes, left_open, snapshot_reads, trace_mark
from conformance.vixdisklib.recorder import CallRecorder
from conformance.workloads import expected

MiB = 2**20
CAPACITY = 16 * MiB
ZEROS = [(0, bytes(4 * MiB))]
DATA = [(MiB, os.urandom(200 * 1024)), (9 * MiB + 4096, os.urandom(4096))]


def read_in_full(content: bytes, capacity: int = CAPACITY) -> str:
    digest = DiskDigest(capacity)
    for offset in range(0, capacity, MiB):
        digest.feed(offset, content[offset : offset + MiB].ljust(min(MiB, capacity - offset), b"\0"))
    return digest.hexdigest()


def disk_bytes(writes: list[tuple[int, bytes]], capacity: int = CAPACITY) -> bytes:
    disk = bytearray(capacity)
    for offset, data in writes:
        disk[offset : offset + len(data)] = data
    return bytes(disk)


@pytest.mark.parametrize("writes", [ZEROS, DATA], ids=["zeros", "data"])
def test_a_disk_read_in_full_matches_the_expected_image(writes: list[tuple[int, bytes]], tmp_path: Path) -> None:
    want = expected(tmp_path / "expected.img", CAPACITY, writes)
    assert read_in_full(disk_bytes(writes)) == image_digest(want.image)


def test_all_zeros_read_differs_from_nothing_read(tmp_path: Path) -> None:
    zeros = image_digest(expected(tmp_path / "expected.img", CAPACITY, ZEROS).image)
    assert read_in_full(bytes(CAPACITY)) == zeros
    assert DiskDigest(CAPACITY).hexdigest() != zeros  # a read-back that read nothing
    half = DiskDigest(CAPACITY)
    half.feed(0, bytes(CAPACITY // 2))
    assert half.hexdigest() != zeros  # or stopped half way


def test_the_capacity_is_part_of_the_digest(tmp_path: Path) -> None:
    want = image_digest(expected(tmp_path / "expected.img", CAPACITY, DATA).image)
    assert read_in_full(disk_bytes(DATA, CAPACITY + MiB), CAPACITY + MiB) != want


def test_allocated_extents_with_the_rest_known_zero_match_a_large_sparse_image(tmp_path: Path) -> None:
    capacity = 64 * 2**30
    data = os.urandom(MiB)
    want = image_digest(expected(tmp_path / "expected.img", capacity, [(capacity // 2, data)]).image)
    digest = DiskDigest(capacity)
    digest.known_zero(0, capacity)
    digest.feed(capacity // 2, data)
    assert digest.hexdigest() == want
    wrong = DiskDigest(capacity)
    wrong.known_zero(0, capacity)
    assert wrong.hexdigest() != want  # the allocated extent never read


def backup_of(image: Path) -> DiskBackup:
    return DiskBackup(2001, "[ds] vm/vm_1.vmdk", CAPACITY, None, image, "nbdssl", 0, 0, digest="claimed")


def check_image(tmp_path: Path, writes: list[tuple[int, bytes]], image: Path) -> tuple[list[str], list[Any]]:
    ctx: Any = SimpleNamespace(digests=[])
    problems = image_problems(ctx, "vm", backup_of(image), expected(tmp_path / "expected.img", CAPACITY, writes))
    return problems, ctx.digests


def test_an_image_of_written_zeros_passes_and_an_unread_image_does_not(tmp_path: Path) -> None:
    stored = tmp_path / "stored.img"
    SparseImage(stored, CAPACITY).write_many(ZEROS)
    assert check_image(tmp_path, ZEROS, stored)[0] == []
    unread = tmp_path / "unread.img"
    SparseImage(unread, CAPACITY)
    problems, compared = check_image(tmp_path, ZEROS, unread)
    assert [p for p in problems if "never stored" in p]
    assert compared[0]["match"] is True and compared[0]["reported_by_application"] == "claimed"


def test_an_image_with_other_content_or_size_fails(tmp_path: Path) -> None:
    image = tmp_path / "image.img"
    SparseImage(image, CAPACITY).write_many(DATA)
    assert check_image(tmp_path, DATA, image)[0] == []
    SparseImage(image, CAPACITY).write(DATA[0][0] + BLOCK, b"x")
    problems, compared = check_image(tmp_path, DATA, image)
    assert problems == ["vm disk 2001: backup image content differs from what the guest wrote"]
    assert compared[0]["match"] is False
    short = tmp_path / "short.img"
    SparseImage(short, CAPACITY - MiB).write_many(DATA)
    assert any("bytes, the disk" in p for p in check_image(tmp_path, DATA, short)[0])
    assert any("does not exist" in p for p in check_image(tmp_path, DATA, tmp_path / "missing.img")[0])


def fake_backup_trace(recorder: CallRecorder, reads: list[tuple[int, int]], close: bool = True) -> None:
    """ConnectEx to snapshot-1, Open of the data disk, these (sector, count) reads, then Close and Disconnect."""
    with recorder.call("VixDiskLib_ConnectEx", handle="conn-1", snapshotRef="snapshot-1"):
        pass
    with recorder.call("VixDiskLib_Open", handle="disk-2", connection="conn-1", path="[ds] vm/vm_1.vmdk"):
        pass
    with recorder.call("VixDiskLib_ConnectEx", handle="conn-3", snapshotRef=None):
        pass
    with recorder.call("VixDiskLib_Open", handle="disk-4", connection="conn-3", path="[ds] other/other.vmdk"):
        pass
    for sector, count in reads:
        with recorder.call("VixDiskLib_Read", handle="disk-2", startSector=sector, numSectors=count):
            pass
    with recorder.call("VixDiskLib_Read", handle="disk-4", startSector=0, numSectors=2048):
        pass  # another disk on another connection: not the backup's
    if close:
        for call, handle in (
            ("Close", "disk-2"),
            ("Close", "disk-4"),
            ("Disconnect", "conn-1"),
            ("Disconnect", "conn-3"),
        ):
            with recorder.call(f"VixDiskLib_{call}", handle=handle):
                pass


def test_reads_are_counted_from_the_trace_and_bounded_by_the_changed_blocks() -> None:
    lib: Any = SimpleNamespace(recorder=CallRecorder())
    with lib.recorder.call("VixDiskLib_Read", handle="disk-0", startSector=0, numSectors=8):
        pass  # before the mark
    mark = trace_mark(lib)
    changes = [(64 * 1024, 128 * 1024), (32 * MiB + 4096, 8192)]
    assert changed_bytes(changes) == 3 * BLOCK
    fake_backup_trace(lib.recorder, [(128, 256), (65544, 16)])  # exactly the changed areas
    reads = snapshot_reads(lib, mark, "snapshot-1", {"[ds] vm/vm_1.vmdk"})
    assert reads.by_path == {"[ds] vm/vm_1.vmdk": 136 * 1024}
    assert reads.total <= changed_bytes(changes)


def test_a_trace_with_too_many_reads_exceeds_the_bound() -> None:
    lib: Any = SimpleNamespace(recorder=CallRecorder())
    mark = trace_mark(lib)
    fake_backup_trace(lib.recorder, [(s, 2048) for s in range(0, 16384, 2048)])  # every allocated MiB
    assert snapshot_reads(lib, mark, "snapshot-1", set()).total == 8 * MiB > changed_bytes([(65536, 131072)])


def test_handles_left_open_are_named() -> None:
    lib: Any = SimpleNamespace(recorder=CallRecorder())
    mark = trace_mark(lib)
    fake_backup_trace(lib.recorder, [(0, 8)])
    assert left_open(lib, mark) == []
    mark = trace_mark(lib)
    fake_backup_trace(lib.recorder, [(0, 8)], close=False)
    assert left_open(lib, mark) == [
        "connection conn-1",
        "disk disk-2 ([ds] vm/vm_1.vmdk)",
        "connection conn-3",
        "disk disk-4 ([ds] other/other.vmdk)",
    ]
