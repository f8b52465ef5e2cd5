"""VixMntApi through ctypes: detection next to the VixDiskLib of a kit, and the whole open / volumes / mount /
OS info / close cycle through the VixMntApi facade over the C double, with its errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.mntapi import OsFamily, VixMntApi, VolumeType
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.native.loader import LibraryNotFoundError
from conformance.vixdisklib.native.mntapi import NativeVixMntApi
from tests.native.conftest import DiskSet, Kits, MakeNative, remote_params


def mntapi_of(lib: VixDiskLib) -> tuple[VixMntApi, NativeVixMntApi]:
    assert isinstance(lib.backend, NativeVixDiskLib)
    native = NativeVixMntApi(lib.backend)
    return VixMntApi(lib, native), native


def test_mntapi_is_detected_only_where_the_kit_has_it(kits: Kits, make_native: MakeNative) -> None:
    with_it = make_native(7, kit=kits.lib64, init=False).backend
    without = make_native(7, kit=kits.flat, init=False).backend
    assert isinstance(with_it, NativeVixDiskLib) and isinstance(without, NativeVixDiskLib)
    assert with_it.mntapi_path == kits.lib64 / "lib64" / "libvixMntapi.so.7"
    assert without.mntapi_path is None
    with pytest.raises(LibraryNotFoundError, match=r"no libvixMntapi\.so\.7 next to"):
        NativeVixMntApi(without)


def test_open_mount_read_dismount_close(
    kits: Kits, make_native: MakeNative, disks: DiskSet, vddk_conf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conformance.vixdisklib.native.vddk")
    lib = make_native(7, kit=kits.lib64)
    mnt, _ = mntapi_of(lib)
    mnt.init(vddk_conf)
    try:
        with lib.connected(remote_params()) as conn, mnt.opened_disks(conn, [disks.base]) as disk_set:
            info = mnt.get_disk_set_info(disk_set)
            assert info.open_flags == 4 and info.mount_path.startswith(str(vddk_conf.parent / "vddk-tmp"))
            os_info = mnt.get_os_info(disk_set)
            assert (os_info.family, os_info.vendor, os_info.os_is_64bit) == (OsFamily.OTHER, "Red Hat", True)
            (volume,) = mnt.volumes_to_verify(disk_set)
            before = mnt.get_volume_info(volume)
            assert (before.type, before.is_mounted, before.symbolic_link) == (VolumeType.BASIC_PARTITION, False, None)
            assert before.guest_mount_points == ("/",)
            with mnt.mounted(volume) as folder:
                assert (folder / "mounted-by-vixmntapi-double").read_text() == "read-only\n"
                with pytest.raises(VixError) as busy:
                    mnt.close_disk_set(disk_set)
                assert busy.value.code == VixCode.MNTAPI_OPEN_HANDLES
                assert busy.value.text == "Unknown error code 24015"  # VixDiskLib's text for the VIX code
            assert not folder.exists()
    finally:
        mnt.exit()
    assert "VixMntapi double 1.0 initialised" in caplog.text


def test_linux_opens_exactly_one_disk_and_a_disk_without_volumes_has_no_os(
    kits: Kits, make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7, kit=kits.lib64)
    mnt, _ = mntapi_of(lib)
    mnt.init()
    try:
        with lib.connected(remote_params()) as conn:
            with pytest.raises(VixError) as two:
                mnt.open_disks(conn, [disks.base, disks.delta])
            assert (two.value.code, two.value.call) == (VixCode.INVALID_ARG, "VixMntapi_OpenDisks")
            monkeypatch.setenv("VIXMNTDOUBLE_VOLUMES", "0")
            with mnt.opened_disks(conn, [disks.base]) as disk_set:
                assert mnt.get_os_info(disk_set).family == OsFamily.NO_OS
                with pytest.raises(VixError) as none:
                    mnt.volumes_to_verify(disk_set)
                assert none.value.code == VixCode.MNTAPI_NO_VOLUME
    finally:
        mnt.exit()


def test_two_volumes_and_their_mount_errors(
    kits: Kits, make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIXMNTDOUBLE_VOLUMES", "2")
    lib = make_native(7, kit=kits.lib64)
    mnt, _ = mntapi_of(lib)
    mnt.init()
    try:
        with lib.connected(remote_params()) as conn, mnt.opened_disks(conn, [disks.base]) as disk_set:
            first, second = mnt.get_volume_handles(disk_set)
            assert mnt.get_volume_info(second).type == VolumeType.LVM_VOLUME
            assert mnt.get_volume_info(second).guest_mount_points == ("/data",)
            mnt.mount_volume(second, read_only=False)
            with pytest.raises(VixError) as again:
                mnt.mount_volume(second)
            assert again.value.code == VixCode.MNTAPI_VOLUME_ALREADY_MOUNTED
            link = mnt.get_volume_info(second).symbolic_link
            assert link and (Path(link) / "mounted-by-vixmntapi-double").read_text() == "read-write\n"
            mnt.dismount_volume(second)
            with pytest.raises(VixError) as not_mounted:
                mnt.dismount_volume(first)
            assert not_mounted.value.code == 24304
    finally:
        mnt.exit()
