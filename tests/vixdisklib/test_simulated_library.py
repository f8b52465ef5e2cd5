"""The simulated VixDiskLib through the facade: transports, fall-back, I/O rules, build-specific behaviour
(release-note items in the test names), HotAdd and Cleanup across real processes.

One simulator for the module. Tests that write use target-nfs (its current disk, at offsets of their own);
target-vmfs carries guest-written data and the snapshot `backup` that read tests open; target-win2019
is powered off and parked for the maintenance-mode tests; target-nfs41 is the PrepareForAccess VM.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sequences.backup_process import child_env, cleanup_process, crashed_backup
from conformance.sim.instance import Simulator
from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.config import KEY_AIO_BUF_COUNT, KEY_AIO_BUF_SIZE, KEY_TMP_DIRECTORY
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.factory import LibrarySpec
from conformance.vixdisklib.simulated.library import CleanupError, SimulatedVixDiskLib
from conformance.vixdisklib.simulated.tmpstate import SESSIONS, UNMOUNT_INFO, SessionFolder, session_folders
from conformance.vixdisklib.types import MAX_CHUNK_NUMBER, SECTOR_SIZE, Block, ConnectParams, OpenFlags, UidCredentials
from tests.vixdisklib.conftest import (
    PROXY_VM,
    MakeLib,
    connect_params,
    disk_path,
    disks_of,
    find,
    guest,
    proxy_disk_count,
    snapshot,
    wait,
    write_config,
)

KiB, MiB = 1024, 1024 * 1024
CAPACITY = 256 * MiB // SECTOR_SIZE  # sectors of the default target VMs' disk
#: written by the guest (dd) into target-vmfs before the snapshot: byte offset -> data (64 KiB aligned)
PATTERNS = {1 * MiB: os.urandom(64 * KiB), 100 * MiB: os.urandom(192 * KiB)}


@dataclasses.dataclass(frozen=True)
class Backup:
    params: ConnectParams
    snapshot: str  # moref
    path: str  # the disk as the snapshot records it


@pytest.fixture(scope="module")
def snapshots(content: Any, vm_params: Callable[[str], ConnectParams]) -> Callable[[str], Backup]:
    """A backup snapshot of a target VM (made once per VM)."""
    made: dict[str, Backup] = {}

    def of(name: str) -> Backup:
        if name not in made:
            snap = snapshot(find(content, vim.VirtualMachine, name), "backup")
            made[name] = Backup(vm_params(name), snap._moId, disk_path(snap))
        return made[name]

    return of


@pytest.fixture(scope="module")
def vmfs_backup(sim: Simulator, content: Any, snapshots: Callable[[str], Backup]) -> Backup:
    """target-vmfs with PATTERNS written by dd in the guest, then snapshotted."""
    workload = guest(sim, content, find(content, vim.VirtualMachine, "target-vmfs"))
    for offset, data in PATTERNS.items():
        workload.write_disk(0, offset, data)
    return snapshots("target-vmfs")


@pytest.fixture(scope="module")
def restore_target(content: Any, vm_params: Callable[[str], ConnectParams]) -> tuple[ConnectParams, str]:
    """(params, current disk path) of target-nfs, which the write tests restore onto."""
    return vm_params("target-nfs"), disk_path(find(content, vim.VirtualMachine, "target-nfs"))


@pytest.fixture
def local_chain(tmp_path: Path) -> Path:
    """A local 128 MiB disk with PATTERNS written, then a child delta (a hosted snapshot); the child's path."""
    base = VirtualDiskFile.create(tmp_path / "local.vmdk", 128 * MiB)
    for offset, data in PATTERNS.items():
        base.write(offset, data)
    child = VirtualDiskFile.create_delta(tmp_path / "local-000001.vmdk", base)
    child.close()
    base.close()
    return child.path


@contextmanager
def restore_disk(
    lib: VixDiskLib, where: str, restore_target: tuple[ConnectParams, str], tmp_path: Path, flags: int = 0
) -> Iterator[Disk]:
    """A disk on a writable connection, open with `flags` (writable by default): target-nfs's current disk over
    `where` ("nbd", "nbdssl"), or a new local one ("file")."""
    if where == "file":
        local = VirtualDiskFile.create(tmp_path / "restore.vmdk", 256 * MiB)
        local.close()
        params, path = ConnectParams(), str(local.path)
    else:
        params, path = restore_target
    with lib.connected(params, False, None, where) as connection, lib.opened(connection, path, flags) as disk:
        yield disk


@contextmanager
def opened_backup(lib: VixDiskLib, backup: Backup, modes: str | None) -> Iterator[Disk]:
    """The backup's snapshot disk, open read-only over `modes`."""
    with (
        lib.connected(backup.params, True, backup.snapshot, modes) as connection,
        lib.opened(connection, backup.path) as disk,
    ):
        yield disk


def vix_error(call: Callable[[], Any]) -> VixError:
    with pytest.raises(VixError) as caught:
        call()
    return caught.value


def merged(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for block in sorted(blocks, key=lambda b: b.offset):
        if out and out[-1].offset + out[-1].length >= block.offset:
            end = max(out[-1].offset + out[-1].length, block.offset + block.length)
            out[-1] = Block(out[-1].offset, end - out[-1].offset)
        else:
            out.append(block)
    return out


def widened(extents: dict[int, bytes], chunk: int) -> list[Block]:
    """PATTERNS as sector blocks widened to `chunk`-sector boundaries."""
    blocks = []
    for offset, data in extents.items():
        first = offset // SECTOR_SIZE // chunk * chunk
        last = -(-(offset + len(data)) // SECTOR_SIZE // chunk) * chunk
        blocks.append(Block(first, last - first))
    return merged(blocks)


# --- transports ---


@pytest.mark.parametrize("transport", ["nbd", "nbdssl", "hotadd", "san", "file"])
def test_each_transport_reads_back_what_was_written_before_the_snapshot(
    make_lib: MakeLib, vmfs_backup: Backup, local_chain: Path, transport: str
) -> None:
    lib = make_lib()
    if transport == "file":
        params, snap, path = ConnectParams(), None, str(local_chain)
    else:
        params, snap, path = vmfs_backup.params, vmfs_backup.snapshot, vmfs_backup.path
    with lib.connected(params, True, snap, transport) as connection, lib.opened(connection, path) as disk:
        assert lib.get_transport_mode(disk) == transport
        for offset, data in PATTERNS.items():
            assert lib.read(disk, offset // SECTOR_SIZE, len(data) // SECTOR_SIZE) == data
        assert lib.read(disk, 0, 8) == bytes(8 * SECTOR_SIZE)  # never written


@pytest.mark.parametrize(
    ("vm_name", "modes", "chosen"),
    [
        ("target-vsan", "san:nbdssl", "nbdssl"),  # C2: SAN refused on vSAN
        ("target-vvol", "san:nbdssl", "nbdssl"),  # C2: SAN refused on vVol
        ("target-nfs41", "san:hotadd", "hotadd"),  # NFS is not block storage
        ("target-vsan", "hotadd:nbdssl", "nbdssl"),  # K4: the proxy is not on vSAN
        ("target-vmfs", "file:san:hotadd:nbd", "san"),  # file is for local disks only
        ("target-vmfs", None, "san"),  # the default list, file:san:hotadd:nbd
        ("target-vmfs", "hotadd:san", "hotadd"),
        ("target-vmfs", "nbd:nbdssl", "nbd"),
    ],
)
def test_transport_lists_fall_back_in_order(
    make_lib: MakeLib, vmfs_backup: Backup, snapshots: Callable[[str], Backup], vm_name: str, modes: str, chosen: str
) -> None:
    lib = make_lib()
    backup = snapshots(vm_name)  # target-vmfs's is vmfs_backup's (requested first, so it holds PATTERNS)
    with opened_backup(lib, backup, modes) as disk:
        assert lib.get_transport_mode(disk) == chosen
        lib.read(disk, 0, 1)


@pytest.mark.parametrize("build", ["6.7.0", "7.0.3"])
@pytest.mark.parametrize(("vm_name", "ds_type"), [("target-vsan", "vsan"), ("target-vvol", "VVOL")])
def test_c2_san_alone_on_vsan_or_vvol_fails_at_open_naming_san(
    make_lib: MakeLib, snapshots: Callable[[str], Backup], vm_name: str, ds_type: str, build: str
) -> None:
    lib = make_lib(build)
    backup = snapshots(vm_name)
    with lib.connected(backup.params, True, backup.snapshot, "san") as connection:
        error = vix_error(lambda: lib.open(connection, backup.path))
    assert error.code == VixCode.NOT_SUPPORTED
    assert "SAN" in error.text and ds_type in error.text


@pytest.mark.parametrize("modes", ["nbd", "nbdssl", "hotadd", "san"])
def test_a_wrong_thumbprint_fails_at_open_with_vix_e_fail_not_at_connect(
    make_lib: MakeLib, content: Any, vmfs_backup: Backup, modes: str
) -> None:
    lib = make_lib()
    wrong = dataclasses.replace(vmfs_backup.params, thumbprint=":".join(["AA"] * 20))
    before = proxy_disk_count(content)
    with lib.connected(wrong, True, vmfs_backup.snapshot, modes) as connection:  # ConnectEx does not check
        error = vix_error(lambda: lib.open(connection, vmfs_backup.path))
    assert (error.code, error.text) == (VixCode.FAIL, "Unknown error")
    assert proxy_disk_count(content) == before  # nothing was hot-added


def test_hotadd_attaches_the_disk_to_the_proxy_while_open_and_removes_it_at_close(
    make_lib: MakeLib, content: Any, vmfs_backup: Backup, server_params: ConnectParams
) -> None:
    lib = make_lib()
    proxy = find(content, vim.VirtualMachine, PROXY_VM)
    before = [d.key for d in disks_of(proxy)]
    with lib.connected(vmfs_backup.params, True, vmfs_backup.snapshot, "hotadd") as connection:
        disk = lib.open(connection, vmfs_backup.path)
        added = [d for d in disks_of(proxy) if d.key not in before]
        assert [d.backing.fileName for d in added] == [vmfs_backup.path]
        lib.close(disk)
        assert [d.key for d in disks_of(proxy)] == before
    assert lib.cleanup(server_params) == (0, 0)  # nothing left to clean up


# --- QueryAllocatedBlocks ---


@pytest.mark.parametrize(
    ("start", "count", "chunk"),
    [
        (0, 127 * 8, 127),  # chunk below VIXDISKLIB_MIN_CHUNK_SIZE
        (0, 131073, 131073),  # chunk above VIXDISKLIB_MAX_CHUNK_SIZE
        (0, 128 * (MAX_CHUNK_NUMBER + 1), 128),  # more than VIXDISKLIB_MAX_CHUNK_NUMBER chunks
        (CAPACITY - 128, 256, 128),  # past capacity
        (CAPACITY, 128, 128),  # starts at capacity
    ],
    ids=["chunk-127", "chunk-131073", "524289-chunks", "past-capacity", "at-capacity"],
)
def test_query_allocated_blocks_rejects_bad_arguments(
    make_lib: MakeLib, vmfs_backup: Backup, start: int, count: int, chunk: int
) -> None:
    lib = make_lib()
    with opened_backup(lib, vmfs_backup, "nbd") as disk:
        error = vix_error(lambda: lib.query_allocated_blocks(disk, start, count, chunk))
    assert (error.code, error.call) == (VixCode.INVALID_ARG, "VixDiskLib_QueryAllocatedBlocks")


@pytest.mark.parametrize(
    ("start", "count", "chunk"),
    [(0, 128, 128), (0, CAPACITY, 131072), (CAPACITY - 128, 128, 128), (0, CAPACITY, 128)],
    ids=["one-min-chunk", "max-chunk", "last-chunk", "whole-disk"],
)
def test_query_allocated_blocks_accepts_the_boundaries(
    make_lib: MakeLib, vmfs_backup: Backup, start: int, count: int, chunk: int
) -> None:
    lib = make_lib()
    with opened_backup(lib, vmfs_backup, "nbd") as disk:
        blocks = lib.query_allocated_blocks(disk, start, count, chunk)
    assert all(start <= b.offset and b.offset + b.length <= start + count for b in blocks)


@pytest.mark.parametrize("chunk", [128, 2048, 131072])
@pytest.mark.parametrize("transport", ["nbd", "hotadd", "san"])
def test_allocated_blocks_are_exactly_the_written_extents(
    make_lib: MakeLib, vmfs_backup: Backup, transport: str, chunk: int
) -> None:
    lib = make_lib()
    with opened_backup(lib, vmfs_backup, transport) as disk:
        blocks = lib.allocated_blocks(disk, lib.get_info(disk).capacity, chunk)
    assert merged(blocks) == widened(PATTERNS, chunk)


def test_allocated_blocks_walks_chunk_aligned_windows_inside_capacity(make_lib: MakeLib, tmp_path: Path) -> None:
    """A (sparse) local disk of two full windows of 524288 chunks of 128 sectors plus 200 sectors: three queries,
    the extents written in each (one across a window boundary), and the unqueried partial last chunk."""
    chunk = 128
    window = MAX_CHUNK_NUMBER * chunk
    capacity = 2 * window + 200
    written = {0: 64 * KiB, (window - chunk) * SECTOR_SIZE: 128 * KiB, 2 * window * SECTOR_SIZE: 64 * KiB}
    disk_file = VirtualDiskFile.create(tmp_path / "big.vmdk", capacity * SECTOR_SIZE)
    for offset, length in written.items():
        disk_file.write(offset, b"\x5a" * length)
    disk_file.close()
    lib = make_lib()
    windows: list[list[Block]] = []
    with lib.connected(ConnectParams(), True) as connection, lib.opened(connection, str(disk_file.path)) as disk:
        blocks = lib.allocated_blocks(disk, capacity, chunk, on_window=windows.append)
    queries = [r.args for r in lib.recorder.records() if r.call == "VixDiskLib_QueryAllocatedBlocks"]
    assert [(q["startSector"], q["numSectors"]) for q in queries] == [
        (0, window),
        (window, window),
        (2 * window, chunk),
    ]
    assert [len(found) for found in windows] == [2, 1, 1]  # the boundary extent is cut between two windows
    tail = Block(2 * window + chunk, 200 - chunk)
    expected = [Block(o // SECTOR_SIZE, n // SECTOR_SIZE) for o, n in written.items()]
    assert merged(blocks) == merged([*expected, tail])
    assert blocks[-1] == tail


# --- reads and writes ---


@pytest.mark.parametrize("where", ["nbd", "file"])
@pytest.mark.parametrize(
    ("op", "start", "count"),
    [("read", CAPACITY - 1, 2), ("read", CAPACITY, 1), ("write", CAPACITY - 1, 2), ("write", 2**40, 1)],
)
def test_io_out_of_range_fails_with_disk_outofrange(
    make_lib: MakeLib,
    restore_target: tuple[ConnectParams, str],
    tmp_path: Path,
    where: str,
    op: str,
    start: int,
    count: int,
) -> None:
    lib = make_lib()
    with restore_disk(lib, where, restore_target, tmp_path) as disk:
        if op == "read":
            error = vix_error(lambda: lib.read(disk, start, count))
        else:
            error = vix_error(lambda: lib.write(disk, start, bytes(count * SECTOR_SIZE)))
        assert error.code == VixCode.DISK_OUTOFRANGE
        assert lib.read(disk, CAPACITY - 1, 1) == bytes(SECTOR_SIZE)  # the last sector is in range and untouched


@pytest.mark.parametrize("where", ["nbd", "file"])
def test_write_on_a_read_only_handle_fails_and_changes_nothing(
    make_lib: MakeLib, restore_target: tuple[ConnectParams, str], tmp_path: Path, where: str
) -> None:
    lib = make_lib()
    with restore_disk(lib, where, restore_target, tmp_path, OpenFlags.READ_ONLY) as disk:
        before = lib.read(disk, 4096, 8)
        error = vix_error(lambda: lib.write(disk, 4096, b"\x01" * 8 * SECTOR_SIZE))
        assert error.code == VixCode.FILE_READ_ONLY
        assert lib.read(disk, 4096, 8) == before


def test_opening_for_write_on_a_read_only_connection_fails(
    make_lib: MakeLib, restore_target: tuple[ConnectParams, str]
) -> None:
    lib = make_lib()
    params, path = restore_target
    with lib.connected(params, True, None, "nbd") as connection:
        assert vix_error(lambda: lib.open(connection, path, 0)).code == VixCode.FILE_READ_ONLY


def test_a_write_needs_whole_sectors(
    make_lib: MakeLib, restore_target: tuple[ConnectParams, str], tmp_path: Path
) -> None:
    lib = make_lib()
    with restore_disk(lib, "nbd", restore_target, tmp_path) as disk:
        assert vix_error(lambda: lib.write(disk, 0, b"\x01" * 100)).code == VixCode.INVALID_ARG


@pytest.mark.parametrize(("where", "base"), [("nbd", 20_000), ("nbdssl", 30_000), ("file", 0)])
def test_async_io_completes_on_worker_threads_and_wait_collects_it(
    make_lib: MakeLib, restore_target: tuple[ConnectParams, str], tmp_path: Path, where: str, base: int
) -> None:
    lib = make_lib()
    calls: list[tuple[int, threading.Thread]] = []
    lock = threading.Lock()

    def completed(result: int) -> None:
        with lock:
            calls.append((result, threading.current_thread()))

    pieces = [os.urandom(64 * KiB) for _ in range(6)]
    buffers = [bytearray(64 * KiB) for _ in pieces]
    with restore_disk(lib, where, restore_target, tmp_path) as disk:
        for index, data in enumerate(pieces):
            lib.write_async(disk, base + index * 128, data, completed)
        lib.wait(disk)
        assert len(calls) == len(pieces)
        for index, buffer in enumerate(buffers):
            lib.read_async(disk, base + index * 128, 128, buffer, completed)
        lib.wait(disk)
        assert len(calls) == 2 * len(pieces)
    assert [result for result, _ in calls] == [VixCode.OK] * len(calls)
    assert all(thread is not threading.main_thread() for _, thread in calls)
    assert buffers == pieces


def test_async_errors_arrive_in_the_callback(
    make_lib: MakeLib, restore_target: tuple[ConnectParams, str], tmp_path: Path
) -> None:
    lib = make_lib()
    results: list[int] = []
    with restore_disk(lib, "nbd", restore_target, tmp_path) as disk:
        lib.read_async(disk, CAPACITY, 1, bytearray(SECTOR_SIZE), results.append)
        lib.wait(disk)
    assert results == [VixCode.DISK_OUTOFRANGE]


@pytest.mark.parametrize(("build", "sector_size"), [("6.7.3", None), ("7.0.0", 512), ("7.0.3", 512)])
def test_get_info_has_sector_sizes_from_7_0_on(
    make_lib: MakeLib, vmfs_backup: Backup, build: str, sector_size: int | None
) -> None:
    lib = make_lib(build)
    with opened_backup(lib, vmfs_backup, "nbdssl") as disk:
        info = lib.get_info(disk)
    assert info.capacity == CAPACITY
    assert (info.logical_sector_size, info.physical_sector_size) == (sector_size, sector_size)


# --- R5: datastore full during Write ---


@pytest.mark.parametrize(
    ("build", "code", "start"), [("7.0.3", VixCode.DISK_FULL, 40_000), ("7.0.2", VixCode.FAIL, 60_000)]
)
def test_r5_datastore_full_during_write(
    sim: Simulator,
    make_lib: MakeLib,
    restore_target: tuple[ConnectParams, str],
    tmp_path: Path,
    build: str,
    code: VixCode,
    start: int,
) -> None:
    lib = make_lib(build)
    before = os.urandom(256 * KiB)
    with restore_disk(lib, "nbd", restore_target, tmp_path) as disk:
        lib.write(disk, start, before)
        sim.set_datastore_free_space("nfs-01", 128 * KiB)
        try:
            error = vix_error(lambda: lib.write(disk, start + 1024, os.urandom(4 * MiB)))
        finally:
            sim.set_datastore_free_space("nfs-01", None)
        assert lib.read(disk, start, len(before) // SECTOR_SIZE) == before
    assert error.code == code
    if code == VixCode.DISK_FULL:
        assert "VIX_E_DISK_FULL (8)" in str(error) and "not enough space" in error.text
    else:
        assert error.text == "Unknown error"


# --- host maintenance mode at Open ---


@pytest.fixture(scope="module")
def parked_vm(content: Any, vm_params: Callable[[str], ConnectParams]) -> tuple[Any, ConnectParams]:
    """target-win2019, powered off so that it stays on its host while the host enters maintenance mode."""
    vm = find(content, vim.VirtualMachine, "target-win2019")
    wait(vm.PowerOffVM_Task())
    return vm, vm_params("target-win2019")


def maintenance_events(content: Any, host: Any) -> list[str]:
    spec = vim.event.EventFilterSpec(entity=vim.event.EventFilterSpec.ByEntity(entity=host, recursion="self"))
    return [type(e).__name__.rsplit(".", 1)[-1] for e in content.eventManager.QueryEvents(spec)]


@pytest.mark.parametrize("phase", ["entering", "in"])
@pytest.mark.parametrize(
    ("build", "entering_code", "in_code"),
    [
        ("7.0.0", VixCode.FILE_ACCESS_ERROR, VixCode.FILE_ACCESS_ERROR),
        ("7.0.1", VixCode.HOST_SERVER_SHUTDOWN, VixCode.HOST_SERVER_NOT_AVAILABLE),
        ("7.0.3", VixCode.HOST_SERVER_SHUTDOWN, VixCode.HOST_SERVER_NOT_AVAILABLE),
    ],
)
def test_open_while_the_host_is_entering_or_in_maintenance_mode(
    sim: Simulator,
    content: Any,
    make_lib: MakeLib,
    parked_vm: tuple[Any, ConnectParams],
    phase: str,
    build: str,
    entering_code: VixCode,
    in_code: VixCode,
) -> None:
    vm, params = parked_vm
    host = vm.runtime.host
    lib = make_lib(build)
    entered_before = maintenance_events(content, host).count("EnteringMaintenanceModeEvent")
    with lib.connected(params, True, None, "nbdssl") as connection:
        sim.faults.update(maintenance_entering_seconds=1.0 if phase == "entering" else 0.05)
        task = host.EnterMaintenanceMode_Task(0)
        try:
            if phase == "in":
                WaitForTask(task)
                assert host.runtime.inMaintenanceMode is True
            else:
                deadline = time.monotonic() + 10
                while maintenance_events(content, host).count("EnteringMaintenanceModeEvent") == entered_before:
                    assert time.monotonic() < deadline, "the host never started entering maintenance mode"
                    time.sleep(0.01)
                assert host.runtime.inMaintenanceMode is False
            error = vix_error(lambda: lib.open(connection, disk_path(vm)))
            if phase == "entering":
                assert task.info.state == "running"  # still entering when Open answered
        finally:
            WaitForTask(task)
            wait(host.ExitMaintenanceMode_Task(0))
    assert vm.runtime.host == host  # the powered-off VM stayed
    assert error.code == (entering_code if phase == "entering" else in_code)


# --- HotAdd crash and Cleanup across processes (K2) ---


def crashed_hotadd_backup(sim: Simulator, backup: Backup, config: Path | None, tmpdir: Path | None) -> dict[str, Any]:
    """A real process opens `backup` over HotAdd and is SIGKILLed mid-backup; what it reported."""
    assert backup.params.vm_moref is not None
    env = child_env(
        "hotadd-open", connect_params(sim), LibrarySpec("7.0.3", proxy_vm=PROXY_VM), config, tmpdir,
        vm=backup.params.vm_moref, snapshot=backup.snapshot, disk=backup.path,
    )  # fmt: skip
    return crashed_backup(env)


def cleanup_in_new_process(sim: Simulator, config: Path | None, tmpdir: Path | None) -> dict[str, Any]:
    return cleanup_process(
        child_env("cleanup", connect_params(sim), LibrarySpec("7.0.3", proxy_vm=PROXY_VM), config, tmpdir), timeout=120
    )


def test_k2_cleanup_with_a_shared_tmp_directory_releases_a_crashed_hotadd_session(
    sim: Simulator, content: Any, vmfs_backup: Backup, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-tmp"
    config = write_config(tmp_path / "shared.conf", {KEY_TMP_DIRECTORY: str(shared)})
    before = proxy_disk_count(content)
    report = crashed_hotadd_backup(sim, vmfs_backup, config, None)
    assert report == {"transport": "hotadd", "tmp_directory": str(shared)}
    assert proxy_disk_count(content) == before + 1  # left behind by the crash
    assert cleanup_in_new_process(sim, config, None) == {"cleaned": 1, "remaining": 0}
    assert proxy_disk_count(content) == before
    assert session_folders(shared, sim.host) == []


def test_k2_cleanup_with_the_default_tmp_directory_does_not_find_a_crashed_session(
    sim: Simulator, content: Any, make_lib: MakeLib, vmfs_backup: Backup, server_params: ConnectParams, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "TMPDIR"
    tmpdir.mkdir()
    before = proxy_disk_count(content)
    report = crashed_hotadd_backup(sim, vmfs_backup, None, tmpdir)
    left = Path(report["tmp_directory"])
    try:
        assert left.parent.parent == tmpdir  # <TMPDIR>/vmware-<user>/vixDiskLib-<pid>: per process
        assert cleanup_in_new_process(sim, None, tmpdir) == {"cleaned": 0, "remaining": 0}
        assert proxy_disk_count(content) == before + 1  # still hot-added
        assert len(session_folders(left, sim.host)) == 1
    finally:  # the workaround: point tmpDirectory at the crashed process's directory
        lib = make_lib(config=write_config(tmp_path / "rescue.conf", {KEY_TMP_DIRECTORY: str(left)}))
        assert lib.cleanup(server_params) == (1, 0)
    assert proxy_disk_count(content) == before


# --- R4: a session folder without unmount.dat ---


def orphan_session_folder(lib: VixDiskLib, server: str) -> Path:
    """A session folder as a crashed connection leaves it when its unmount.dat is gone."""
    tmp_directory = lib.backend.tmp_directory  # type: ignore[attr-defined]
    folder = SessionFolder.create(tmp_directory, server)
    assert not (folder.path / UNMOUNT_INFO).exists()
    return folder.path


def test_r4_7_0_3_cleanup_removes_a_session_folder_without_unmount_dat(
    make_lib: MakeLib, server_params: ConnectParams, sim: Simulator
) -> None:
    lib = make_lib("7.0.3")
    folder = orphan_session_folder(lib, sim.host)
    assert lib.cleanup(server_params) == (1, 0)
    assert not folder.exists()
    assert list((folder.parent).iterdir()) == []  # nothing left under tmpDirectory's session folders
    assert folder.parent.name == SESSIONS


def test_r4_7_0_2_cleanup_reports_could_not_unmount_and_leaves_the_folder(
    make_lib: MakeLib, server_params: ConnectParams, sim: Simulator
) -> None:
    lib = make_lib("7.0.2")
    folder = orphan_session_folder(lib, sim.host)
    with pytest.raises(CleanupError) as caught:
        lib.cleanup(server_params)
    assert (caught.value.cleaned, caught.value.remaining) == (0, 1)
    assert "Could not unmount" in caught.value.text
    assert folder.is_dir()


# --- C3: closing the parent after Attach ---


@pytest.fixture
def local_parent_and_child(tmp_path: Path) -> tuple[Path, Path]:
    parent = VirtualDiskFile.create(tmp_path / "parent.vmdk", 4 * MiB)
    parent.write(0, b"\x11" * 64 * KiB)
    child = VirtualDiskFile.create_delta(tmp_path / "parent-000001.vmdk", parent)
    child.write(64 * KiB, b"\x22" * 64 * KiB)
    child.close()
    parent.close()
    return parent.path, child.path


def attached(lib: VixDiskLib, paths: tuple[Path, Path]) -> tuple[Disk, Disk]:
    connection = lib.connect_ex(ConnectParams(), True)
    parent, child = (lib.open(connection, str(p), OpenFlags.READ_ONLY) for p in paths)
    lib.attach(parent, child)
    return parent, child


@pytest.mark.parametrize("build", ["6.7.3", "7.0.3"])
def test_c3_closing_the_parent_after_attach_is_harmless_from_6_7_3(
    make_lib: MakeLib, local_parent_and_child: tuple[Path, Path], build: str
) -> None:
    lib = make_lib(build)
    parent, child = attached(lib, local_parent_and_child)
    lib.close(parent)  # no error, no double close
    assert not parent.raw.closed  # the child still owns it
    assert lib.read(child, 0, 256) == b"\x11" * 64 * KiB + b"\x22" * 64 * KiB
    lib.close(child)
    assert parent.raw.closed and child.raw.closed  # closing the child released both
    lib.disconnect(parent.connection)


def test_c3_closing_the_parent_after_attach_is_an_error_before_6_7_3(
    make_lib: MakeLib, local_parent_and_child: tuple[Path, Path]
) -> None:
    lib = make_lib("6.7.2")
    parent, child = attached(lib, local_parent_and_child)
    assert vix_error(lambda: lib.close(parent)).code == VixCode.INVALID_HANDLE
    lib.close(child)
    assert parent.raw.closed and child.raw.closed
    lib.disconnect(parent.connection)


# --- PrepareForAccess / EndAccess ---


@pytest.fixture(scope="module")
def access_vm(content: Any, vm_params: Callable[[str], ConnectParams]) -> tuple[Any, ConnectParams]:
    return find(content, vim.VirtualMachine, "target-nfs41"), vm_params("target-nfs41")


def test_prepare_for_access_disables_relocate(make_lib: MakeLib, access_vm: tuple[Any, ConnectParams]) -> None:
    vm, params = access_vm
    lib = make_lib()
    lib.prepare_for_access(params, "acme-backup")
    try:
        assert "RelocateVM_Task" in vm.disabledMethod
        with pytest.raises(vim.fault.MethodDisabled) as caught:
            wait(vm.RelocateVM_Task(vim.vm.RelocateSpec()))
        assert caught.value.source == "acme-backup"
    finally:
        lib.end_access(params, "acme-backup")


def test_end_access_re_enables_relocate(make_lib: MakeLib, access_vm: tuple[Any, ConnectParams]) -> None:
    vm, params = access_vm
    lib = make_lib()
    lib.prepare_for_access(params, "acme-backup")
    lib.end_access(params, "acme-backup")
    assert "RelocateVM_Task" not in vm.disabledMethod
    wait(vm.RelocateVM_Task(vim.vm.RelocateSpec()))


@pytest.mark.parametrize("call", ["prepare_for_access", "end_access"])
def test_identity_over_50_characters_is_rejected(
    make_lib: MakeLib, access_vm: tuple[Any, ConnectParams], call: str
) -> None:
    vm, params = access_vm
    lib = make_lib()
    assert vix_error(lambda: getattr(lib, call)(params, "x" * 51)).code == VixCode.INVALID_ARG
    assert "RelocateVM_Task" not in vm.disabledMethod


def test_identity_of_50_characters_is_accepted(make_lib: MakeLib, access_vm: tuple[Any, ConnectParams]) -> None:
    vm, params = access_vm
    lib = make_lib()
    lib.prepare_for_access(params, "x" * 50)
    lib.end_access(params, "x" * 50)
    assert "RelocateVM_Task" not in vm.disabledMethod


# --- F1: NFC AIO buffers ---


def aio_lib(make_lib: MakeLib, tmp_path: Path, build: str, size: int, count: int) -> VixDiskLib:
    values: dict[str, str | int] = {KEY_TMP_DIRECTORY: str(tmp_path / "aio-tmp")}
    values.update({KEY_AIO_BUF_SIZE: size, KEY_AIO_BUF_COUNT: count})
    return make_lib(build, config=write_config(tmp_path / "aio.conf", values))


@pytest.mark.parametrize("transport", ["nbd", "nbdssl"])
@pytest.mark.parametrize(("size", "count"), [(16, 17), (257, 1), (1, 257)])
def test_f1_a_session_over_16_mib_fails_open_on_7_0_3(
    make_lib: MakeLib, vmfs_backup: Backup, tmp_path: Path, transport: str, size: int, count: int
) -> None:
    lib = aio_lib(make_lib, tmp_path, "7.0.3", size, count)
    with lib.connected(vmfs_backup.params, True, vmfs_backup.snapshot, transport) as connection:
        error = vix_error(lambda: lib.open(connection, vmfs_backup.path))
    assert error.call == "VixDiskLib_Open" and "16 MiB" in error.text


@pytest.mark.parametrize(
    ("build", "size", "count", "transport"),
    [
        ("7.0.3", 16, 16, "nbd"),  # exactly 16 MiB
        ("7.0.3", 256, 1, "nbdssl"),
        ("7.0.3", 1, 256, "nbd"),
        ("7.0.3", 1, 4, "nbdssl"),  # the defaults
        ("7.0.2", 16, 17, "nbd"),  # before 7.0.3 the keys are ignored
        ("7.0.2", 257, 1, "nbdssl"),
        ("7.0.3", 16, 17, "hotadd"),  # NBD and NBDSSL only
        ("7.0.3", 16, 17, "san"),
    ],
)
def test_f1_sessions_that_open(
    make_lib: MakeLib, vmfs_backup: Backup, tmp_path: Path, build: str, size: int, count: int, transport: str
) -> None:
    lib = aio_lib(make_lib, tmp_path, build, size, count)
    with opened_backup(lib, vmfs_backup, transport) as disk:
        offset, data = next(iter(PATTERNS.items()))
        assert lib.read(disk, offset // SECTOR_SIZE, len(data) // SECTOR_SIZE) == data


# --- library lifetime and the trace ---


def test_init_ex_twice_fails(make_lib: MakeLib, vddk_config: Path) -> None:
    lib = make_lib()
    error = vix_error(lambda: lib.init_ex(vddk_config))
    assert (error.code, error.call) == (VixCode.FAIL, "VixDiskLib_InitEx")


def test_calls_before_init_ex_fail(make_lib: MakeLib, vmfs_backup: Backup) -> None:
    lib = make_lib(init=False)
    assert vix_error(lambda: lib.connect_ex(vmfs_backup.params, True)).code == VixCode.DISK_NOINIT


def test_the_trace_never_contains_the_password(
    sim: Simulator,
    make_lib: MakeLib,
    vmfs_backup: Backup,
    access_vm: tuple[Any, ConnectParams],
    server_params: ConnectParams,
    tmp_path: Path,
) -> None:
    lib = make_lib()
    lib.prepare_for_access(access_vm[1], "acme-backup")
    lib.end_access(access_vm[1], "acme-backup")
    with opened_backup(lib, vmfs_backup, "hotadd:nbdssl") as disk:
        lib.read(disk, 0, 8)
    lib.cleanup(server_params)
    # a refused login too; its password contains the real one, so recording either would show below
    wrong = dataclasses.replace(vmfs_backup.params, credentials=UidCredentials(sim.user, "not-the-" + sim.password))
    assert vix_error(lambda: lib.connect_ex(wrong, True)).code == VixCode.AUTHENTICATION_FAIL
    trace = lib.recorder.to_json()
    lib.recorder.write(tmp_path / "trace.json")
    assert sim.user in trace  # the connect parameters are recorded ...
    for text in (trace, (tmp_path / "trace.json").read_text()):
        assert sim.password not in text  # ... but never a password
    assert [r.call for r in lib.recorder.records()].count("VixDiskLib_ConnectEx") == 2


# --- the default temporary folder at Exit ---


@pytest.mark.parametrize("connection", ["none", "ended", "open"])
def test_exit_removes_the_default_folders_empty_trail_but_keeps_a_session_for_cleanup(
    make_lib: MakeLib, server_params: ConnectParams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connection: str
) -> None:
    """Runs leave nothing in the temporary directory; a connection that never ended is Cleanup's to find."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    lib = make_lib(config=None)
    assert isinstance(lib.backend, SimulatedVixDiskLib)
    folder, server = lib.backend.tmp_directory, server_params.server_name or ""
    assert folder.parent.parent == tmp_path and folder.is_dir()  # InitEx made it
    opened = lib.connect_ex(server_params, True) if connection != "none" else None
    if opened is not None:
        assert session_folders(folder, server)
        if connection == "ended":
            lib.disconnect(opened)
    lib.exit()
    assert (folder.parent.exists(), len(session_folders(folder, server))) == (
        (True, 1) if connection == "open" else (False, 0)
    )
    if connection == "open" and opened is not None:
        lib.disconnect(opened)
