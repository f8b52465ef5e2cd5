"""Every VixDiskLib call through the ctypes backend maps to the C function and back: arguments, out
parameters, library-allocated memory, error codes with the library's own text, bounds and QueryAllocatedBlocks
argument rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.native.library import NativeCleanupError, NativeVixDiskLib
from conformance.vixdisklib.types import ConnectParams, OpenFlags
from tests.native.conftest import MAJORS, DiskSet, MakeNative, double_state, remote_params

SECTORS = 8 * 1024 * 1024 // 512


def vix_error(call: object, *args: object) -> VixError:
    with pytest.raises(VixError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_init_exit_and_transport_modes(make_native: MakeNative) -> None:
    lib = make_native(7, init=False)
    assert double_state(lib)["initialised"] == "0"
    lib.init_ex()
    assert double_state(lib)["initialised"] == "1"
    assert lib.list_transport_modes() == "file:san:hotadd:nbd:nbdssl"
    error = vix_error(lib.init_ex)  # the double allows one InitEx until Exit, like VDDK per process
    assert error.call == "VixDiskLib_InitEx" and error.code == VixCode.FAIL
    lib.exit()
    assert double_state(lib)["initialised"] == "0"


@pytest.mark.parametrize("major", MAJORS)
def test_reads_through_a_sparse_delta_chain(major: int, make_native: MakeNative, disks: DiskSet) -> None:
    lib = make_native(major)
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        assert lib.get_transport_mode(disk) == "nbd"  # the first default mode the double offers
        info = lib.get_info(disk)
        assert (info.capacity, info.num_links, info.parent_file_name_hint) == (SECTORS, 2, "base.vmdk")
        assert info.adapter_type.name == "SCSI_LSILOGIC" and info.uuid and info.bios_geometry.heads == 255
        for start, count in ((0, 8), (2048, 256), (4097, 300), (10240, 2048), (SECTORS - 16, 16)):
            expected = disks.contents[start * 512 : (start + count) * 512]
            assert lib.read(disk, start, count) == expected, f"sectors {start}+{count}"
        assert double_state(lib)["disks"] == "1"
    assert double_state(lib)["disks"] == "0" and double_state(lib)["connections"] == "0"
    assert double_state(lib)["live"] == "0"  # Info and connect params were freed by the library's functions


@pytest.mark.parametrize("parent_first", [False, True])
def test_single_link_then_attach_combines_the_chain(
    parent_first: bool, make_native: MakeNative, disks: DiskSet
) -> None:
    lib = make_native(7)
    with lib.connected(remote_params()) as conn:
        child = lib.open(conn, disks.delta, OpenFlags.READ_ONLY | OpenFlags.SINGLE_LINK)
        assert lib.get_info(child).num_links == 1
        assert lib.read(child, 2048, 1) == bytes(512)  # the parent's data is not there without it
        parent = lib.open(conn, disks.base)
        lib.attach(parent, child)
        assert lib.get_info(child).num_links == 2
        assert lib.read(child, 2048, 1) == disks.contents[1024 * 1024 : 1024 * 1024 + 512]
        assert vix_error(lib.read, parent, 0, 1).code == VixCode.INVALID_ARG  # the child owns its links now
        first, second = (parent, child) if parent_first else (child, parent)
        lib.close(first)
        # a parent closed first stays until its child goes; a child closed first leaves the parent's handle
        assert double_state(lib)["disks"] == ("2" if parent_first else "1")
        if parent_first:
            assert lib.read(child, 2048, 1) == disks.contents[1024 * 1024 : 1024 * 1024 + 512]
        lib.close(second)
        assert double_state(lib)["disks"] == "0"


def test_write_flush_and_read_back_on_a_local_flat_disk(make_native: MakeNative, tmp_path: Path) -> None:
    VirtualDiskFile.create(tmp_path / "local.vmdk", 4 * 1024 * 1024).close()
    lib = make_native(8)
    data = os.urandom(128 * 1024)
    with lib.connected(ConnectParams(), False) as conn, lib.opened(conn, str(tmp_path / "local.vmdk"), 0) as disk:
        assert lib.get_transport_mode(disk) == "file"
        lib.write(disk, 100, data)
        lib.flush(disk)
        assert lib.read(disk, 100, len(data) // 512) == data
    with VirtualDiskFile.open(tmp_path / "local.vmdk") as file:  # it really reached the file
        assert file.read(100 * 512, len(data)) == data


def test_errors_carry_the_code_and_the_library_text(make_native: MakeNative, disks: DiskSet) -> None:
    lib = make_native(7)
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib)
    assert backend.get_error_text(16007) == "The specified sector is out of range"
    assert backend.get_error_text(12345) == "Unknown error code 12345"
    assert backend.get_error_text((7 << 32) | 3) == "One of the parameters was invalid"  # low 16 bits count
    with lib.connected(remote_params()) as conn:
        missing = vix_error(lib.open, conn, "[ds1] vm/nope.vmdk")
        assert (missing.code, missing.call) == (VixCode.FILE_NOT_FOUND, "VixDiskLib_Open")
        assert missing.text == "A file was not found"
        with lib.opened(conn, disks.base) as disk:
            beyond = vix_error(lib.read, disk, SECTORS - 1, 2)
            assert beyond.code == VixCode.DISK_OUTOFRANGE and beyond.text == "The specified sector is out of range"
            assert vix_error(lib.read, disk, SECTORS, 1).code == VixCode.DISK_OUTOFRANGE
            assert vix_error(lib.read, disk, 2**64 - 1, 2).code == VixCode.DISK_OUTOFRANGE  # wraps in C
            assert lib.read(disk, SECTORS - 1, 1) == disks.contents[-512:]
            read_only = vix_error(lib.write, disk, 0, bytes(512))
            assert read_only.code == VixCode.FILE_READ_ONLY and read_only.call == "VixDiskLib_Write"
        writable = vix_error(lib.open, conn, disks.base, 0)  # the connection is read-only
        assert writable.code == VixCode.FILE_READ_ONLY
    assert double_state(lib)["live"] == "0"  # every error text went back through FreeErrorText


def test_open_picks_the_first_offered_transport(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7)
    for modes, expected in (("hotadd:nbdssl:nbd", "nbdssl"), ("nbd", "nbd"), (None, "nbd")):
        with lib.connected(remote_params(), True, None, modes) as conn, lib.opened(conn, disks.base) as disk:
            assert lib.get_transport_mode(disk) == expected
    monkeypatch.setenv("VIXDOUBLE_TRANSPORTS", "nbd")
    with lib.connected(remote_params(), True, None, "san:hotadd") as conn:
        assert vix_error(lib.open, conn, disks.base).code == VixCode.NOT_SUPPORTED


@pytest.mark.parametrize("major", MAJORS)
def test_query_allocated_blocks_reports_the_chain_allocation(
    major: int, make_native: MakeNative, disks: DiskSet
) -> None:
    lib = make_native(major)
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        blocks = lib.query_allocated_blocks(disk, 0, SECTORS, 128)
        # base: 1 MiB and 5 MiB (128 KiB each); delta: 2 MiB + 512 for 120000 bytes (grains 32 and 33)
        assert [(b.offset, b.length) for b in blocks] == [(2048, 256), (4096, 256), (10240, 256)]
        coarse = lib.query_allocated_blocks(disk, 0, SECTORS, 2048)
        assert [(b.offset, b.length) for b in coarse] == [(2048, 4096), (10240, 2048)]
        assert lib.query_allocated_blocks(disk, 6144, 2048, 128) == []
    assert double_state(lib)["live"] == "0"  # every block list went back through FreeBlockList


@pytest.mark.parametrize(
    ("start", "count", "chunk"),
    [
        (0, 1024, 127),  # chunk below VIXDISKLIB_MIN_CHUNK_SIZE
        (0, 131072 * 2, 131073),  # chunk above VIXDISKLIB_MAX_CHUNK_SIZE
        (0, 128 * 524289, 128),  # more than VIXDISKLIB_MAX_CHUNK_NUMBER chunks
        (SECTORS - 128, 256, 128),  # past capacity
        (2**64 - 128, 256, 128),  # wraps around
    ],
)
def test_query_allocated_blocks_argument_rules(
    start: int, count: int, chunk: int, make_native: MakeNative, disks: DiskSet
) -> None:
    lib = make_native(7)
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.base) as disk:
        error = vix_error(lib.query_allocated_blocks, disk, start, count, chunk)
        assert (error.code, error.call) == (VixCode.INVALID_ARG, "VixDiskLib_QueryAllocatedBlocks")
        # GetErrorText's words for the code, and the reason when the double logged one on the calling thread
        assert error.text.split(" (the library logged: ")[0] == "One of the parameters was invalid"
        assert lib.query_allocated_blocks(disk, SECTORS - 128, 128, 128) == []  # the edges themselves are fine


def test_prepare_and_end_access(make_native: MakeNative) -> None:
    lib = make_native(7)
    params = remote_params()
    lib.prepare_for_access(params, "vddk-conformance")
    assert double_state(lib)["access"] == "1"
    lib.end_access(params, "vddk-conformance")
    assert double_state(lib)["access"] == "0"
    assert vix_error(lib.prepare_for_access, params, "x" * 51).code == VixCode.INVALID_ARG
    assert vix_error(lib.end_access, ConnectParams(server_name="vc"), "id").code == VixCode.INVALID_ARG


def test_cleanup_removes_sessions_of_dead_processes_only(make_native: MakeNative, tmp_path: Path) -> None:
    lib = make_native(7)
    params = remote_params()
    tmp = tmp_path / "vddk-tmp"
    with lib.connected(params):
        live = [p for p in tmp.glob("vixdouble-*.session")]
        assert len(live) == 1
        dead = tmp / "vixdouble-999999999-1.session"  # no such pid
        dead.write_text("gone\n")
        assert lib.cleanup(params) == (1, 0)
        assert not dead.exists() and all(p.exists() for p in live)
    assert not list(tmp.glob("*.session"))
    assert lib.cleanup(ConnectParams()) == (0, 0)  # local connections have nothing to clean


def test_cleanup_that_leaves_work_raises_with_the_counts(
    make_native: MakeNative, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7)
    monkeypatch.setenv("VIXDOUBLE_CLEANUP_REMAINING", "2")
    with pytest.raises(NativeCleanupError) as caught:
        lib.cleanup(remote_params())
    assert (caught.value.cleaned, caught.value.remaining, caught.value.code) == (0, 2, VixCode.FAIL)
    assert "2 remaining" in caught.value.text
