"""Struct layouts per major version (the figures of the reference notes, §2) and that the backend's
layouts agree with what a library of each major version allocates and reads."""

from __future__ import annotations

import ctypes
import logging

import pytest

from conformance.vixdisklib.native import abi
from conformance.vixdisklib.native.library import NativeVixDiskLib
from tests.native.conftest import MAJORS, PASSWORD, DiskSet, Kits, MakeNative, double_state, remote_params


def test_info_is_56_bytes_before_7_and_64_from_7() -> None:
    assert ctypes.sizeof(abi.InfoV6) == 56 and ctypes.sizeof(abi.InfoV7) == 64
    assert [abi.InfoV6.capacity.offset, abi.InfoV6.adapterType.offset, abi.InfoV6.numLinks.offset] == [24, 32, 36]
    assert [abi.InfoV6.parentFileNameHint.offset, abi.InfoV6.uuid.offset] == [40, 48]
    assert [abi.InfoV7.logicalSectorSize.offset, abi.InfoV7.physicalSectorSize.offset] == [56, 60]
    assert [abi.info_struct(m) for m in MAJORS] == [abi.InfoV6, abi.InfoV7, abi.InfoV7]


def test_connect_params_layouts_grow_in_6_5_and_6_7() -> None:
    assert ctypes.sizeof(abi.ConnectParamsV60) == 72
    assert ctypes.sizeof(abi.ConnectParamsV65) == 80
    assert ctypes.sizeof(abi.ConnectParamsV67) == 128
    p = abi.ConnectParamsV67
    offsets = [p.vmxSpec, p.serverName, p.thumbPrint, p.privateUse, p.credType, p.creds, p.port, p.nfcHostPort]
    assert [f.offset for f in offsets] == [0, 8, 16, 24, 32, 40, 64, 68]
    assert [p.vimApiVer.offset, p.reserved.offset, p.state.offset, p.spec.offset, p.specType.offset] == [
        72,
        80,
        88,
        96,
        120,
    ]
    assert ctypes.sizeof(abi.Creds) == 24 and ctypes.sizeof(abi.Spec) == 24


def test_block_list_blocks_start_at_offset_8() -> None:
    assert abi.BlockList.blocks.offset == 8 and ctypes.sizeof(abi.Block) == 16


def test_params_layout_follows_allocate_connect_params() -> None:
    assert abi.connect_params_struct(6, has_allocate=False) is abi.ConnectParamsV65
    assert abi.connect_params_struct(6, has_allocate=True) is abi.ConnectParamsV67
    assert abi.connect_params_struct(7, has_allocate=False) is abi.ConnectParamsV67


@pytest.mark.parametrize("major", MAJORS)
def test_get_info_reads_the_layout_of_the_library_major(
    major: int, make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 6.x library's Info has no sector sizes (the double fills the 8 bytes after it with 0xAB, so reading
    the 7.0 layout would show garbage); 7.x and 8.x report them."""
    monkeypatch.setenv("VIXDOUBLE_PHYSICAL_SECTOR", "4096")
    lib = make_native(major)
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        info = lib.get_info(disk)
    assert info.capacity == 8 * 1024 * 1024 // 512
    if major == 6:
        assert (info.logical_sector_size, info.physical_sector_size) == (None, None)
    else:
        assert (info.logical_sector_size, info.physical_sector_size) == (512, 4096)


@pytest.mark.parametrize(("major", "kit_name"), [(6, "flat"), (7, "flat"), (8, "flat"), (6, "v65")])
def test_connect_params_reach_the_library_field_by_field(
    major: int, kit_name: str, kits: Kits, make_native: MakeNative
) -> None:
    """The double echoes what it read at its own offsets: every field arrives where the header puts it."""
    lib = make_native(major, kit=getattr(kits, kit_name))
    with lib.connected(remote_params("vm-7"), True, "snapshot-9", "nbdssl"):
        seen = double_state(lib)
    assert seen["server"] == "vcenter.example.test" and seen["vmxSpec"] == "moref=vm-7"
    assert seen["user"] == "administrator@vsphere.local" and seen["secretLength"] == str(len(PASSWORD))
    assert (seen["credType"], seen["port"], seen["nfcHostPort"]) == ("1", "8443", "9902")
    assert (seen["snapshot"], seen["modes"], seen["readOnly"]) == ("snapshot-9", "nbdssl", "1")
    assert seen["thumbprint"].startswith("AA:BB:CC")
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib)
    if kit_name == "v65":
        assert backend.params_type is abi.ConnectParamsV65 and "specType" not in seen
    else:
        assert seen["allocated"] == "1", "6.7+ parameters must come from AllocateConnectParams"
        assert seen["specType"] == "0"


def test_params_go_back_to_the_library_clean(make_native: MakeNative, caplog: pytest.LogCaptureFixture) -> None:
    """Library-allocated params are freed with FreeConnectParams after our string pointers are cleared; the
    double warns about either mistake, and does warn for a struct that did not come from it."""
    caplog.set_level(logging.WARNING, logger="conformance.vixdisklib.native.vddk")
    lib = make_native(7)
    with lib.connected(remote_params()):
        pass
    lib.cleanup(remote_params())
    assert caplog.records == []
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib)
    own = abi.ConnectParamsV67()
    own.serverName = b"vcenter.example.test"
    out = ctypes.c_void_p()
    assert backend.symbols["VixDiskLib_ConnectEx"](ctypes.addressof(own), b"\x01", None, None, ctypes.byref(out)) == 0
    assert backend.symbols["VixDiskLib_Disconnect"](out) == 0
    assert "not allocated with VixDiskLib_AllocateConnectParams" in caplog.text
