"""The ctypes backend of the VixMntApi facade: libvixMntapi.so.N of the same VDDK kit as the VixDiskLib.

VixMntApi shares VixDiskLib's connections (OpenDisks takes a VixDiskLibConnection) and its VIX error space,
so error texts come from VixDiskLib_GetErrorText. Volume handles stay valid until their disk set is closed;
the array GetVolumeHandles allocates is freed then. Linux proxies only (OpenDiskSet is Windows-only).
"""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, Structure, c_char, c_char_p, c_int, c_size_t, c_uint32, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.mntapi import DiskSetInfo, OsFamily, OsInfo, VolumeInfo, VolumeType
from conformance.vixdisklib.native.abi import VIX_OK, LogFunc
from conformance.vixdisklib.native.abi import VixError as CVixError
from conformance.vixdisklib.native.callbacks import LOG, PANIC, WARNING
from conformance.vixdisklib.native.library import NativeConnection, NativeVixDiskLib
from conformance.vixdisklib.native.loader import LibraryNotFoundError
from conformance.vixdisklib.native.symbols import Prototype, bind

_P = c_void_p


class CDiskSetInfo(Structure):
    _fields_ = [("openFlags", c_uint32), ("mountPath", c_char_p)]


class CVolumeInfo(Structure):
    """VixVolumeInfo: the guest mount point array (numGuestMountPoints entries) starts at inGuestMountPoints."""

    _fields_ = [
        ("type", c_int),
        ("isMounted", c_char),
        ("symbolicLink", c_char_p),
        ("numGuestMountPoints", c_size_t),
        ("inGuestMountPoints", c_char_p * 1),
    ]


class COsInfo(Structure):
    _fields_ = [
        ("family", c_int),
        ("osMajorVersion", c_uint32),
        ("osMinorVersion", c_uint32),
        ("osIs64Bit", c_char),
        ("vendor", c_char_p),
        ("edition", c_char_p),
        ("osFolder", c_char_p),
    ]


MNTAPI_PROTOTYPES: dict[str, Prototype] = {
    "VixMntapi_Init": Prototype(CVixError, (c_uint32, c_uint32, LogFunc, LogFunc, LogFunc, c_char_p, c_char_p)),
    "VixMntapi_Exit": Prototype(None, ()),
    "VixMntapi_OpenDisks": Prototype(CVixError, (_P, POINTER(c_char_p), c_size_t, c_uint32, POINTER(c_void_p))),
    "VixMntapi_GetDiskSetInfo": Prototype(CVixError, (_P, POINTER(c_void_p))),
    "VixMntapi_FreeDiskSetInfo": Prototype(None, (_P,)),
    "VixMntapi_CloseDiskSet": Prototype(CVixError, (_P,)),
    "VixMntapi_GetVolumeHandles": Prototype(CVixError, (_P, POINTER(c_size_t), POINTER(c_void_p))),
    "VixMntapi_FreeVolumeHandles": Prototype(None, (_P,)),
    "VixMntapi_GetVolumeInfo": Prototype(CVixError, (_P, POINTER(c_void_p))),
    "VixMntapi_FreeVolumeInfo": Prototype(None, (_P,)),
    "VixMntapi_MountVolume": Prototype(CVixError, (_P, c_char)),
    "VixMntapi_DismountVolume": Prototype(CVixError, (_P, c_char)),
    "VixMntapi_GetOsInfo": Prototype(CVixError, (_P, POINTER(c_void_p))),
    "VixMntapi_FreeOsInfo": Prototype(None, (_P,)),
    "VixMntapi_OpenDiskSet": Prototype(
        CVixError, (_P, c_size_t, c_uint32, POINTER(c_void_p)), feature="OpenDiskSet (Windows proxies only)"
    ),
}


@dataclass
class NativeDiskSet:
    raw: int
    volume_array: int = 0  # from GetVolumeHandles, freed at close
    volumes: list[int] = field(default_factory=list)


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


class NativeVixMntApi:
    """A VixMntApiBackend over libvixMntapi.so.N (by default the one next to `disklib`'s library)."""

    name = "native"
    platform = "linux"

    def __init__(self, disklib: NativeVixDiskLib, path: Path | None = None) -> None:
        self.disklib = disklib
        found = path or disklib.mntapi_path
        if found is None:
            raise LibraryNotFoundError(
                f"no libvixMntapi.so.{disklib.major} next to {disklib.path} (VixMntApi is optional in a kit)"
            )
        self.path = Path(found)
        try:
            self.cdll = ctypes.CDLL(str(self.path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as exc:
            raise LibraryNotFoundError(f"cannot load {self.path}: {exc}") from None
        self.symbols = bind(self.cdll, self.path, MNTAPI_PROTOTYPES, needs="VixMntApi 1.0")

    def _fn(self, name: str) -> Any:
        return self.symbols[name]

    def _check(self, rc: int, call: str) -> None:
        if rc != VIX_OK:
            raise VixError(rc, call, self.disklib.get_error_text(rc))

    def _struct_call(self, call: str, raw: int, kind: type[Structure]) -> tuple[Structure, c_void_p]:
        out = c_void_p()
        self._check(self._fn(call)(raw, ctypes.byref(out)), call)
        return kind.from_address(out.value or 0), out

    def init(self, major: int, minor: int, lib_dir: Path | None, config_file: Path | None) -> None:
        rc = self._fn("VixMntapi_Init")(
            major,
            minor,
            LOG,
            WARNING,
            PANIC,
            str(lib_dir).encode() if lib_dir else None,
            str(config_file).encode() if config_file else None,
        )
        self._check(rc, "VixMntapi_Init")

    def exit(self) -> None:
        self._fn("VixMntapi_Exit")()

    def open_disks(self, connection: NativeConnection, paths: list[str], flags: int) -> NativeDiskSet:
        names = (c_char_p * max(1, len(paths)))(*(p.encode("utf-8") for p in paths))
        out = c_void_p()
        rc = self._fn("VixMntapi_OpenDisks")(connection.raw, names, len(paths), flags, ctypes.byref(out))
        self._check(rc, "VixMntapi_OpenDisks")
        return NativeDiskSet(out.value or 0)

    def get_disk_set_info(self, disk_set: NativeDiskSet) -> DiskSetInfo:
        info, out = self._struct_call("VixMntapi_GetDiskSetInfo", disk_set.raw, CDiskSetInfo)
        try:
            assert isinstance(info, CDiskSetInfo)
            return DiskSetInfo(int(info.openFlags), _text(info.mountPath) or "")
        finally:
            self._fn("VixMntapi_FreeDiskSetInfo")(out)

    def get_volume_handles(self, disk_set: NativeDiskSet) -> list[int]:
        count, array = c_size_t(), c_void_p()
        rc = self._fn("VixMntapi_GetVolumeHandles")(disk_set.raw, ctypes.byref(count), ctypes.byref(array))
        self._check(rc, "VixMntapi_GetVolumeHandles")
        if disk_set.volume_array:
            self._fn("VixMntapi_FreeVolumeHandles")(disk_set.volume_array)
        disk_set.volume_array = array.value or 0
        handles: list[int | None] = []
        if count.value and array.value:
            handles = list((c_void_p * count.value).from_address(array.value))
        disk_set.volumes = [int(h or 0) for h in handles]
        return list(disk_set.volumes)

    def get_volume_info(self, volume: int) -> VolumeInfo:
        info, out = self._struct_call("VixMntapi_GetVolumeInfo", volume, CVolumeInfo)
        try:
            assert isinstance(info, CVolumeInfo)
            count = int(info.numGuestMountPoints)
            points = (c_char_p * count).from_address(ctypes.addressof(info) + CVolumeInfo.inGuestMountPoints.offset)
            try:
                kind = VolumeType(int(info.type))
            except ValueError:
                kind = VolumeType.UNKNOWN
            return VolumeInfo(
                kind,
                info.isMounted != b"\x00",
                _text(info.symbolicLink),
                tuple(_text(p) or "" for p in points),
            )
        finally:
            self._fn("VixMntapi_FreeVolumeInfo")(out)

    def mount_volume(self, volume: int, read_only: bool) -> None:
        rc = self._fn("VixMntapi_MountVolume")(volume, b"\x01" if read_only else b"\x00")
        self._check(rc, "VixMntapi_MountVolume")

    def dismount_volume(self, volume: int, force: bool) -> None:
        rc = self._fn("VixMntapi_DismountVolume")(volume, b"\x01" if force else b"\x00")
        self._check(rc, "VixMntapi_DismountVolume")

    def get_os_info(self, disk_set: NativeDiskSet) -> OsInfo:
        info, out = self._struct_call("VixMntapi_GetOsInfo", disk_set.raw, COsInfo)
        try:
            assert isinstance(info, COsInfo)
            try:
                family = OsFamily(int(info.family))
            except ValueError:
                family = OsFamily.OTHER
            return OsInfo(
                family,
                int(info.osMajorVersion),
                int(info.osMinorVersion),
                info.osIs64Bit != b"\x00",
                _text(info.vendor) or "",
                _text(info.edition) or "",
                _text(info.osFolder) or "",
            )
        finally:
            self._fn("VixMntapi_FreeOsInfo")(out)

    def close_disk_set(self, disk_set: NativeDiskSet) -> None:
        self._check(self._fn("VixMntapi_CloseDiskSet")(disk_set.raw), "VixMntapi_CloseDiskSet")
        if disk_set.volume_array:
            self._fn("VixMntapi_FreeVolumeHandles")(disk_set.volume_array)
            disk_set.volume_array = 0
