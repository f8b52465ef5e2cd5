"""Tests of the simulated datastore storage: real VMDK files (checked with qemu-img), space
accounting, snapshots (delta chains) and changed block tracking."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conformance.sim.storage.cbt import ChangeTracker, InvalidChangeId
from conformance.sim.storage.space import BlockBitmap, DatastoreSpace
from conformance.sim.storage.vmdk import DiskFullError, VirtualDiskFile

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
GRAIN = 64 * KiB

QEMU_IMG = shutil.which("qemu-img")
needs_qemu = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img (qemu-utils) is not installed")


def qemu(*args: str) -> subprocess.CompletedProcess[str]:
    """Run qemu-img; a failure shows its output."""
    assert QEMU_IMG is not None
    result = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"qemu-img {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def qemu_info(path: Path, *extra: str) -> Any:
    return json.loads(qemu("info", "--output=json", *extra, str(path)).stdout)


def qemu_identical(image: Path, raw: bytes | Path, tmp_path: Path) -> None:
    """qemu-img compare says `image` (read through its chain) equals the raw bytes."""
    if isinstance(raw, bytes):
        raw_path = tmp_path / f"expected-{random.getrandbits(32):08x}.raw"
        raw_path.write_bytes(raw)
    else:
        raw_path = raw
    result = qemu("compare", "-f", "vmdk", "-F", "raw", str(image), str(raw_path))
    assert "identical" in result.stdout


def pattern(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


def apply(model: bytearray, offset: int, data: bytes) -> None:
    model[offset : offset + len(data)] = data


# -- flat base disks ---------------------------------------------------------------------------


@needs_qemu
def test_thin_64g_disk_is_sparse_and_readable_by_qemu(tmp_path: Path) -> None:
    disk = VirtualDiskFile.create(tmp_path / "big.vmdk", 64 * GiB)
    writes = {offset: pattern(256 * KiB, offset) for offset in (0, 5 * GiB + 4096, 40 * GiB, 64 * GiB - 256 * KiB)}
    for offset, data in writes.items():
        disk.write(offset, data)
    disk.flush()
    assert disk.host_bytes() <= 1.2 * MiB
    for offset, data in writes.items():
        assert disk.read(offset, len(data)) == data
    info = qemu_info(disk.path)
    assert info["format"] == "vmdk"
    assert info["virtual-size"] == 64 * GiB
    assert info["format-specific"]["data"]["create-type"] == "monolithicFlat"
    descriptor = disk.path.read_text()
    assert 'ddb.thinProvisioned = "1"' in descriptor
    assert 'ddb.adapterType = "lsilogic"' in descriptor
    assert 'ddb.virtualHWVersion = "13"' in descriptor
    assert "parentCID=ffffffff" in descriptor
    assert disk.files() == [tmp_path / "big.vmdk", tmp_path / "big-flat.vmdk"]
    assert re.fullmatch(r"6000C29[0-9a-f]-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", disk.uuid)
    disk.close()


@needs_qemu
def test_qemu_convert_of_flat_disk_equals_our_bytes(tmp_path: Path) -> None:
    disk = VirtualDiskFile.create(tmp_path / "small.vmdk", 4 * MiB)
    disk.write(12345, pattern(300 * KiB, 1))
    disk.write(4 * MiB - 1000, pattern(1000, 2))
    disk.flush()
    qemu("convert", "-O", "raw", str(disk.path), str(tmp_path / "out.raw"))
    assert (tmp_path / "out.raw").read_bytes() == disk.read(0, 4 * MiB)


def test_thick_disk_is_allocated_and_reserved(tmp_path: Path) -> None:
    space = DatastoreSpace(1 * GiB)
    disk = VirtualDiskFile.create(tmp_path / "thick.vmdk", 16 * MiB, "thick", space)
    assert disk.provisioning == "thick"
    assert space.used() == 16 * MiB
    assert 16 * MiB <= disk.host_bytes() <= 16 * MiB + 64 * KiB
    disk.write(0, b"no new space needed")
    assert space.used() == 16 * MiB
    disk.delete()
    assert space.used() == 0
    assert not (tmp_path / "thick-flat.vmdk").exists()


def test_thick_disk_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    space = DatastoreSpace(8 * MiB)
    with pytest.raises(DiskFullError) as failure:
        VirtualDiskFile.create(tmp_path / "eager.vmdk", 16 * MiB, "eagerZeroedThick", space)
    assert failure.value.bytes_written == 0
    assert space.used() == 0
    assert list(tmp_path.iterdir()) == []


def test_write_bounds_are_checked(tmp_path: Path) -> None:
    disk = VirtualDiskFile.create(tmp_path / "d.vmdk", 1 * MiB)
    with pytest.raises(ValueError, match=r"10 bytes at offset 1048570 .*capacity 1048576"):
        disk.write(1 * MiB - 6, bytes(10))
    with pytest.raises(ValueError, match="offset -1"):
        disk.read(-1, 1)
    with pytest.raises(FileExistsError):
        VirtualDiskFile.create(tmp_path / "d.vmdk", 1 * MiB)


def test_metadata_is_the_disk_database(tmp_path: Path) -> None:
    disk = VirtualDiskFile.create(tmp_path / "md.vmdk", MiB)
    assert disk.metadata()["adapterType"] == "lsilogic"
    disk.write_metadata("toolsVersion", "12345")
    disk.close()
    reopened = VirtualDiskFile.open(tmp_path / "md.vmdk")
    assert reopened.metadata()["toolsVersion"] == "12345"
    assert reopened.cid == disk.cid and reopened.uuid == disk.uuid
    with pytest.raises(ValueError, match="quotes"):
        reopened.write_metadata("bad", 'a"b')
    reopened.close()


# -- deltas (snapshots) ------------------------------------------------------------------------


@needs_qemu
def test_delta_takes_writes_and_freezes_its_parent(tmp_path: Path) -> None:
    size = 8 * MiB
    base = VirtualDiskFile.create(tmp_path / "vm.vmdk", size)
    model = bytearray(size)
    for offset, seed in ((0, 1), (3 * MiB + 77, 2)):
        data = pattern(200 * KiB, seed)
        base.write(offset, data)
        apply(model, offset, data)
    frozen = bytes(model)
    delta = VirtualDiskFile.create_delta(tmp_path / "vm-000001.vmdk", base)
    for offset, seed in ((100 * KiB + 3, 3), (3 * MiB, 4), (size - 10, 5)):
        data = pattern(min(150 * KiB, size - offset), seed)
        delta.write(offset, data)
        apply(model, offset, data)
    delta.flush()
    assert delta.read(0, size) == bytes(model)
    assert base.read(0, size) == frozen
    assert delta.chain() == [delta, base]
    assert delta.parent_cid == base.cid and delta.uuid == base.uuid

    descriptor = delta.path.read_text()
    assert 'parentFileNameHint="vm.vmdk"' in descriptor
    assert 'RW 16384 SPARSE "vm-000001-delta.vmdk"' in descriptor
    extent = (tmp_path / "vm-000001-delta.vmdk").read_bytes()[:512]
    assert extent[:4] == b"KDMV" and extent[73:77] == b"\n \r\n"

    chain = qemu_info(delta.path, "--backing-chain")
    assert [entry["filename"] for entry in chain] == [str(delta.path), str(base.path)]
    assert chain[0]["backing-filename"] == "vm.vmdk"
    qemu_identical(delta.path, bytes(model), tmp_path)
    qemu_identical(base.path, frozen, tmp_path)
    qemu("check", str(delta.path))

    second = VirtualDiskFile.create_delta(tmp_path / "vm-000002.vmdk", delta)
    data = pattern(3 * GRAIN, 6)
    second.write(GRAIN - 1, data)
    level_one = bytes(model)
    apply(model, GRAIN - 1, data)
    assert second.read(0, size) == bytes(model)
    assert delta.read(0, size) == level_one
    assert len(qemu_info(second.path, "--backing-chain")) == 3
    qemu_identical(second.path, bytes(model), tmp_path)


@needs_qemu
def test_delta_in_another_folder_names_its_parent_by_absolute_path(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "base.vmdk", 2 * MiB)
    base.write(0, pattern(MiB, 1))
    (tmp_path / "other").mkdir()
    delta = VirtualDiskFile.create_delta(tmp_path / "other" / "child.vmdk", base)
    delta.write(MiB, pattern(1000, 2))
    assert f'parentFileNameHint="{base.path.resolve()}"' in delta.path.read_text()
    qemu_identical(delta.path, delta.read(0, 2 * MiB), tmp_path)


def test_64g_delta_preallocates_nothing(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "big.vmdk", 64 * GiB)
    delta = VirtualDiskFile.create_delta(tmp_path / "big-000001.vmdk", base)
    extent = tmp_path / "big-000001-delta.vmdk"
    assert extent.stat().st_size <= 64 * KiB
    assert delta.host_bytes() <= 16 * KiB
    delta.write(63 * GiB, pattern(MiB, 1))
    assert delta.host_bytes() <= MiB + 32 * KiB
    assert delta.allocated_extents(top_only=True) == [(63 * GiB, MiB)]


def test_allocated_extents_of_flat_and_delta(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "a.vmdk", 4 * MiB + 512)
    assert base.allocated_extents() == []
    base.write(0, b"x" * 100)
    base.write(5 * GRAIN + 10, b"y" * GRAIN)
    base.write(4 * MiB, b"z" * 512)
    assert base.allocated_extents() == [(0, GRAIN), (5 * GRAIN, 2 * GRAIN), (4 * MiB, 512)]
    delta = VirtualDiskFile.create_delta(tmp_path / "a-000001.vmdk", base)
    assert delta.allocated_extents(top_only=True) == []
    delta.write(GRAIN + 1, b"q" * GRAIN)
    delta.write(20 * GRAIN, b"r")
    assert delta.allocated_extents(top_only=True) == [(GRAIN, 2 * GRAIN), (20 * GRAIN, GRAIN)]
    assert delta.allocated_extents() == [(0, 3 * GRAIN), (5 * GRAIN, 2 * GRAIN), (20 * GRAIN, GRAIN), (4 * MiB, 512)]


@needs_qemu
def test_consolidate_commits_delta_into_parent(tmp_path: Path) -> None:
    size = 4 * MiB
    space = DatastoreSpace(GiB)
    base = VirtualDiskFile.create(tmp_path / "c.vmdk", size, space=space)
    model = bytearray(size)
    apply(model, 0, pattern(MiB, 1))
    base.write(0, model[:MiB])
    delta = VirtualDiskFile.create_delta(tmp_path / "c-000001.vmdk", base, space)
    for offset, seed in ((500 * KiB + 1, 2), (2 * MiB + 3, 3)):
        data = pattern(300 * KiB, seed)
        delta.write(offset, data)
        apply(model, offset, data)
    delta_files = delta.files()
    used_before = space.used()
    parent = delta.consolidate_into_parent()
    assert parent is base
    assert not any(path.exists() for path in delta_files)
    assert base.read(0, size) == bytes(model)
    assert space.used() < used_before  # the delta's grains were released
    qemu_identical(base.path, bytes(model), tmp_path)


@needs_qemu
def test_consolidating_a_middle_link_and_reparenting_the_child(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "m.vmdk", 2 * MiB)
    middle = VirtualDiskFile.create_delta(tmp_path / "m-000001.vmdk", base)
    middle.write(0, pattern(GRAIN, 1))
    top = VirtualDiskFile.create_delta(tmp_path / "m-000002.vmdk", middle)
    top.write(10, pattern(100, 2))
    expected = top.read(0, 2 * MiB)
    middle.consolidate_into_parent()
    top.set_parent(base)
    assert top.read(0, 2 * MiB) == expected
    assert 'parentFileNameHint="m.vmdk"' in top.path.read_text()
    qemu_identical(top.path, expected, tmp_path)
    reopened = VirtualDiskFile.open(top.path)
    assert [link.path.name for link in reopened.chain()] == ["m-000002.vmdk", "m.vmdk"]
    reopened.close()


@needs_qemu
def test_copy_to_flattens_the_chain_sparsely(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "src.vmdk", 64 * MiB)
    base.write(10 * MiB, pattern(MiB, 1))
    base.write(30 * MiB, bytes(MiB))  # allocated but zero: must not be copied
    delta = VirtualDiskFile.create_delta(tmp_path / "src-000001.vmdk", base)
    delta.write(10 * MiB + 5, pattern(1000, 2))
    delta.write(50 * MiB, pattern(MiB, 3))
    space = DatastoreSpace(GiB)
    copy = delta.copy_to(tmp_path / "copy.vmdk", space=space)
    assert copy.parent is None and copy.provisioning == "thin"
    assert copy.host_bytes() <= 2 * MiB + 64 * KiB
    assert space.used() == 2 * MiB
    assert copy.read(0, copy.capacity) == delta.read(0, delta.capacity)
    result = qemu("compare", str(delta.path), str(copy.path))
    assert "identical" in result.stdout


# -- space accounting --------------------------------------------------------------------------


def test_datastore_space_grants_what_is_left() -> None:
    space = DatastoreSpace(10 * MiB)
    assert space.reserve(4 * MiB) == 4 * MiB
    assert space.free() == 6 * MiB
    space.set_free_space(MiB)
    assert space.reserve(3 * MiB) == MiB
    assert space.reserve(1) == 0
    space.release(2 * MiB)
    assert space.free() == 2 * MiB
    space.set_free_space(None)
    assert space.free() == 10 * MiB - space.used()


@pytest.mark.parametrize("kind", ["flat", "delta"])
def test_full_datastore_keeps_the_part_that_fit(tmp_path: Path, kind: str) -> None:
    space = DatastoreSpace(GiB)
    disk = VirtualDiskFile.create(tmp_path / "f.vmdk", 4 * MiB, space=space)
    if kind == "delta":
        disk.write(0, pattern(4 * MiB, 9))
        disk = VirtualDiskFile.create_delta(tmp_path / "f-000001.vmdk", disk, space)
    disk.write(6 * GRAIN, b"K" * GRAIN)  # already allocated: needs no space later
    before = disk.read(0, 4 * MiB)
    # room for 3 grains plus the delta's grain table slot (4 KiB), not for a 4th grain
    space.set_free_space(3 * GRAIN + 4 * KiB + 1000)
    data = pattern(8 * GRAIN - 200, 5)
    with pytest.raises(DiskFullError) as failure:
        disk.write(100, data)
    written = failure.value.bytes_written
    assert written == 3 * GRAIN - 100
    assert disk.read(100, written) == data[:written]
    after = disk.read(0, 4 * MiB)
    assert after[:100] == before[:100]
    assert after[100 + written :] == before[100 + written :]
    assert space.free() < GRAIN
    with pytest.raises(DiskFullError) as again:
        disk.write(3 * GRAIN, b"x")
    assert again.value.bytes_written == 0


# -- I/O shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "delta"])
def test_unaligned_io_across_grain_boundaries(tmp_path: Path, kind: str) -> None:
    size = 2 * MiB
    disk = VirtualDiskFile.create(tmp_path / "u.vmdk", size)
    model = bytearray(size)
    if kind == "delta":
        apply(model, 0, pattern(size, 1))
        disk.write(0, model)
        disk = VirtualDiskFile.create_delta(tmp_path / "u-000001.vmdk", disk)
    rng = random.Random(7)
    for offset, length in [
        (GRAIN - 7, 20),
        (3 * GRAIN + 511, 2 * GRAIN + 3),
        (1, 1),
        (size - 1, 1),
        (10 * GRAIN + 100, 5 * GRAIN),
    ]:
        data = rng.randbytes(length)
        disk.write(offset, data)
        apply(model, offset, data)
    for _ in range(50):
        offset = rng.randrange(size)
        length = rng.randrange(min(3 * GRAIN, size - offset) + 1)
        assert disk.read(offset, length) == bytes(model[offset : offset + length])
    assert disk.read(0, size) == bytes(model)


@pytest.mark.parametrize("kind", ["flat", "delta"])
def test_concurrent_writes_from_threads(tmp_path: Path, kind: str) -> None:
    size = 8 * MiB
    disk = VirtualDiskFile.create(tmp_path / "t.vmdk", size)
    if kind == "delta":
        disk.write(0, pattern(size, 3))
        disk = VirtualDiskFile.create_delta(tmp_path / "t-000001.vmdk", disk)
    region = 1_000_003  # regions share grains, so copy-on-write races would show
    model = bytearray(disk.read(0, size))

    def writer(index: int) -> None:
        rng = random.Random(index)
        start = index * region
        for _ in range(20):
            offset = start + rng.randrange(region - 20000)
            data = rng.randbytes(rng.randrange(1, 20000))
            disk.write(offset, data)
            assert disk.read(offset, len(data)) == data

    with ThreadPoolExecutor(max_workers=8) as pool:
        for future in [pool.submit(writer, index) for index in range(8)]:
            future.result()  # re-raises a failure of that thread
    for index in range(8):  # replay the same writes on the model
        rng = random.Random(index)
        for _ in range(20):
            offset = index * region + rng.randrange(region - 20000)
            apply(model, offset, rng.randbytes(rng.randrange(1, 20000)))
    assert disk.read(0, size) == bytes(model)


def test_large_unaligned_write_to_a_delta(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "l.vmdk", GiB)
    delta = VirtualDiskFile.create_delta(tmp_path / "l-000001.vmdk", base)
    data = pattern(64 * MiB, 1)
    delta.write(GRAIN // 2, data)
    assert delta.read(GRAIN // 2, len(data)) == data
    assert delta.host_bytes() <= 64 * MiB + 200 * KiB


# -- reopening ----------------------------------------------------------------------------------


@needs_qemu
def test_open_follows_the_parent_chain(tmp_path: Path) -> None:
    spaces: dict[Path, DatastoreSpace] = {}
    base = VirtualDiskFile.create(tmp_path / "r.vmdk", 4 * MiB, "thick")
    base.write(0, pattern(MiB, 1))
    first = VirtualDiskFile.create_delta(tmp_path / "r-000001.vmdk", base)
    first.write(MiB - 3, pattern(GRAIN, 2))
    top = VirtualDiskFile.create_delta(tmp_path / "r-000002.vmdk", first)
    top.write(3 * MiB + 1, pattern(GRAIN, 3))
    expected = top.read(0, 4 * MiB)
    for disk in (top, first, base):
        disk.close()

    def space_for(path: Path) -> DatastoreSpace:
        return spaces.setdefault(path.parent, DatastoreSpace(GiB))

    reopened = VirtualDiskFile.open(tmp_path / "r-000002.vmdk", space_for)
    assert [link.path.name for link in reopened.chain()] == ["r-000002.vmdk", "r-000001.vmdk", "r.vmdk"]
    assert [link.provisioning for link in reopened.chain()] == ["thin", "thin", "thick"]
    assert reopened.read(0, 4 * MiB) == expected
    assert reopened.allocated_extents(top_only=True) == [(3 * MiB, 2 * GRAIN)]
    reopened.write(2 * MiB, b"after reopen")
    assert reopened.space is spaces[tmp_path]
    assert spaces[tmp_path].used() == GRAIN  # grain table 0 already existed
    qemu_identical(reopened.path, reopened.read(0, 4 * MiB), tmp_path)
    reopened.close()


def test_open_refuses_a_parent_that_changed(tmp_path: Path) -> None:
    base = VirtualDiskFile.create(tmp_path / "p.vmdk", MiB)
    delta = VirtualDiskFile.create_delta(tmp_path / "p-000001.vmdk", base)
    delta.close()
    text = base.path.read_text().replace(f"CID={base.cid}", "CID=12345678")
    base.path.write_text(text)
    with pytest.raises(ValueError, match="parentCID"):
        VirtualDiskFile.open(delta.path)


# -- changed block tracking ---------------------------------------------------------------------


def test_change_tracker_reports_changes_since_marks(tmp_path: Path) -> None:
    tracker = ChangeTracker.load_or_create(tmp_path / "disk.vmdk", 16 * MiB)
    assert tracker.path == tmp_path / "disk-ctk.json" and tracker.path.exists()
    start = tracker.current_change_id()
    assert re.fullmatch(r"52( [0-9a-f]{2}){7}-[0-9a-f]{2}( [0-9a-f]{2}){7}/\d+", start)
    tracker.record(100, 10)
    first = tracker.mark()
    tracker.record(5 * MiB, MiB)
    second = tracker.mark()
    tracker.record(GRAIN, 1)
    assert tracker.changed_since(start) == [(0, 2 * GRAIN), (5 * MiB, MiB)]
    assert tracker.changed_since(first) == [(GRAIN, GRAIN), (5 * MiB, MiB)]
    assert tracker.changed_since(second) == [(GRAIN, GRAIN)]
    assert tracker.changed_since(first, second) == [(5 * MiB, MiB)]
    assert tracker.changed_since(second, second) == []
    assert tracker.current_change_id() == second  # advances only at marks: no side effect
    now = tracker.mark()
    assert tracker.current_change_id() == now
    assert tracker.changed_since(now) == []
    tracker.record(0, 1)
    assert tracker.changed_since(now) == [(0, GRAIN)]


def test_change_tracker_rejects_foreign_and_stale_ids(tmp_path: Path) -> None:
    tracker = ChangeTracker.load_or_create(tmp_path / "a-ctk.json", MiB)
    other = ChangeTracker.load_or_create(tmp_path / "b-ctk.json", MiB)
    old = tracker.mark()
    with pytest.raises(InvalidChangeId, match="reset"):
        tracker.changed_since(other.current_change_id())
    for bad in ("garbage", "*", old.rsplit("/", 1)[0] + "/99"):
        with pytest.raises(InvalidChangeId):
            tracker.changed_since(bad)
    with pytest.raises(InvalidChangeId, match="older"):
        tracker.changed_since(tracker.mark(), old)
    tracker.reset()
    with pytest.raises(InvalidChangeId, match="change tracking was reset"):
        tracker.changed_since(old)
    assert isinstance(InvalidChangeId("x"), ValueError)


def test_change_tracker_persists_and_clips(tmp_path: Path) -> None:
    capacity = MiB + 512
    tracker = ChangeTracker.load_or_create(tmp_path / "c.vmdk", capacity)
    start = tracker.current_change_id()
    tracker.record(MiB, 10_000)  # past the end: clipped to capacity
    tracker.record(3 * GRAIN, 10)
    tracker.record(2 * GRAIN + 5, 10)  # touches the previous block: merged
    snap = tracker.mark()
    tracker.record(0, 1)
    tracker.save()
    loaded = ChangeTracker.load_or_create(tmp_path / "c-ctk.json", capacity)
    assert loaded.changed_since(start) == [(0, GRAIN), (2 * GRAIN, 2 * GRAIN), (MiB, 512)]
    assert loaded.changed_since(start, snap) == [(2 * GRAIN, 2 * GRAIN), (MiB, 512)]
    assert loaded.changed_since(snap) == [(0, GRAIN)]
    assert loaded.current_change_id() == snap


def test_change_tracker_handles_many_small_writes(tmp_path: Path) -> None:
    tracker = ChangeTracker.load_or_create(tmp_path / "m.vmdk", 64 * GiB)
    start = tracker.current_change_id()
    rng = random.Random(1)
    blocks: set[int] = set()
    for _ in range(100_000):
        offset = rng.randrange(64 * GiB - 4096)
        tracker.record(offset, 4096)
        blocks.update(range(offset // GRAIN, (offset + 4095) // GRAIN + 1))
    changed = tracker.changed_since(start)
    assert sum(length for _, length in changed) == len(blocks) * GRAIN
    for index in range(100):  # hundreds of sequences stay cheap
        tracker.record(index * GiB // 2, 10)
        tracker.mark()
    assert len(tracker.changed_since(start)) >= len(changed) - 100


def test_disk_writes_feed_its_change_tracker(tmp_path: Path) -> None:
    disk = VirtualDiskFile.create(tmp_path / "cbt.vmdk", 4 * MiB)
    disk.tracker = ChangeTracker.load_or_create(disk.path, disk.capacity)
    start = disk.tracker.current_change_id()
    disk.write(GRAIN * 3 + 1, b"abc")
    assert disk.tracker.changed_since(start) == [(3 * GRAIN, GRAIN)]


def test_block_bitmap_runs_and_union() -> None:
    first = BlockBitmap.from_runs([(0, 3), (9, 17), (40_000, 40_010)])
    second = BlockBitmap.from_runs([(3, 5), (32_760, 32_780)])
    assert first.runs() == [(0, 3), (9, 17), (40_000, 40_010)]
    assert first.count(0, 20) == 11 and first.test(16) and not first.test(17)
    union = BlockBitmap.union([first, second])
    assert union.runs() == [(0, 5), (9, 17), (32_760, 32_780), (40_000, 40_010)]
    assert union.total() == 5 + 8 + 20 + 10
