"""The VixMntApi facade: VixMntapi_* calls in Python on a chosen backend, recorded with the VixDiskLib calls.

VixMntApi opens disks through VixDiskLib and mounts their volumes on the proxy, for file-level restore and
for checking that a backup is readable (release note R3). This facade shares the `CallRecorder` of the
`VixDiskLib` facade it is created from, so one trace shows both libraries in call order. Whether mounting
is simulated or done by VMware's libvixMntapi through ctypes is the backend's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Protocol

from conformance.vixdisklib.api import Connection, VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import OpenFlags

VIXMNTAPI_MAJOR_VERSION = 1
VIXMNTAPI_MINOR_VERSION = 0
#: what the verification step of a mount check reports when a disk set shows no volume (R3's affected text)
NO_VOLUME_TEXT = "No volume found to perform verification of reading files"


class VolumeType(IntEnum):
    """VixVolumeType."""

    UNKNOWN = 0
    BASIC_PARTITION = 1
    GPT_PARTITION = 2
    DYNAMIC_VOLUME = 3
    LVM_VOLUME = 4


class OsFamily(IntEnum):
    """VixOsFamily."""

    NO_OS = 0
    WINDOWS = 1
    OTHER = 255


@dataclass(frozen=True)
class DiskSetInfo:
    """VixDiskSetInfo."""

    open_flags: int
    mount_path: str


@dataclass(frozen=True)
class VolumeInfo:
    """VixVolumeInfo: `symbolic_link` is the local folder of a mounted volume (None while not mounted)."""

    type: VolumeType
    is_mounted: bool
    symbolic_link: str | None
    guest_mount_points: tuple[str, ...] = ()


@dataclass(frozen=True)
class OsInfo:
    """VixOsInfo."""

    family: OsFamily
    major: int = 0
    minor: int = 0
    os_is_64bit: bool = False
    vendor: str = ""
    edition: str = ""
    os_folder: str = ""


class DiskSet:
    """A VixDiskSetHandle: disks opened together by VixMntapi_OpenDisks."""

    def __init__(self, raw: Any, connection: Connection, paths: list[str], label: str) -> None:
        self.raw = raw
        self.connection = connection
        self.paths = list(paths)
        self.label = label
        self.closed = False

    def __repr__(self) -> str:
        return f"<DiskSet {self.label} {self.paths}>"


class Volume:
    """A VixVolumeHandle: one volume of a disk set."""

    def __init__(self, raw: Any, disk_set: DiskSet, label: str) -> None:
        self.raw = raw
        self.disk_set = disk_set
        self.label = label

    def __repr__(self) -> str:
        return f"<Volume {self.label} of {self.disk_set.label}>"


class VixMntApiBackend(Protocol):
    """What a VixMntApi backend implements: the C functions one to one; failures raise VixError."""

    name: str
    #: the proxy OS the library runs on: "linux" (OpenDisks takes exactly one disk) or "windows"
    platform: str

    def init(self, major: int, minor: int, lib_dir: Path | None, config_file: Path | None) -> None: ...
    def exit(self) -> None: ...
    def open_disks(self, connection: Any, paths: list[str], flags: int) -> Any: ...
    def get_disk_set_info(self, disk_set: Any) -> DiskSetInfo: ...
    def get_volume_handles(self, disk_set: Any) -> list[Any]: ...
    def get_volume_info(self, volume: Any) -> VolumeInfo: ...
    def mount_volume(self, volume: Any, read_only: bool) -> None: ...
    def dismount_volume(self, volume: Any, force: bool) -> None: ...
    def get_os_info(self, disk_set: Any) -> OsInfo: ...
    def close_disk_set(self, disk_set: Any) -> None: ...


class VixMntApi:
    """One initialised VixMntApi (Init ... Exit), next to the VixDiskLib it opens disks with."""

    def __init__(self, disklib: VixDiskLib, backend: VixMntApiBackend) -> None:
        self.disklib = disklib
        self.backend = backend
        self.recorder = disklib.recorder
        self.initialised = False

    def _label(self, prefix: str) -> str:
        return self.disklib._label(prefix)  # one label sequence for both libraries keeps a trace unambiguous

    # --- library lifetime ---

    def init(
        self,
        config_file: Path | None = None,
        lib_dir: Path | None = None,
        major: int = VIXMNTAPI_MAJOR_VERSION,
        minor: int = VIXMNTAPI_MINOR_VERSION,
    ) -> None:
        with self.recorder.call(
            "VixMntapi_Init",
            major=major,
            minor=minor,
            libDir=str(lib_dir) if lib_dir else None,
            configFile=str(config_file) if config_file else None,
        ):
            self.backend.init(major, minor, lib_dir, config_file)
        self.initialised = True

    def exit(self) -> None:
        with self.recorder.call("VixMntapi_Exit"):
            self.backend.exit()
        self.initialised = False

    # --- disk sets ---

    def open_disks(self, connection: Connection, paths: list[str], flags: int = OpenFlags.READ_ONLY) -> DiskSet:
        label = self._label("diskset-")
        with self.recorder.call(
            "VixMntapi_OpenDisks",
            handle=label,
            connection=connection.label,
            paths=list(paths),
            numberOfDisks=len(paths),
            flags=int(flags),
        ):
            raw = self.backend.open_disks(connection.raw, list(paths), int(flags))
        return DiskSet(raw, connection, paths, label)

    def get_disk_set_info(self, disk_set: DiskSet) -> DiskSetInfo:
        with self.recorder.call("VixMntapi_GetDiskSetInfo", handle=disk_set.label) as record:
            info = self.backend.get_disk_set_info(disk_set.raw)
            record.args.update(openFlags=info.open_flags, mountPath=info.mount_path)
            return info

    def get_volume_handles(self, disk_set: DiskSet) -> list[Volume]:
        with self.recorder.call("VixMntapi_GetVolumeHandles", handle=disk_set.label) as record:
            raws = self.backend.get_volume_handles(disk_set.raw)
            volumes = [Volume(raw, disk_set, self._label("volume-")) for raw in raws]
            record.args.update(numberOfVolumes=len(volumes), volumes=[v.label for v in volumes])
            return volumes

    def get_volume_info(self, volume: Volume) -> VolumeInfo:
        with self.recorder.call("VixMntapi_GetVolumeInfo", handle=volume.label) as record:
            info = self.backend.get_volume_info(volume.raw)
            record.args.update(type=info.type.name, isMounted=info.is_mounted, symbolicLink=info.symbolic_link)
            return info

    def mount_volume(self, volume: Volume, read_only: bool = True) -> None:
        with self.recorder.call("VixMntapi_MountVolume", handle=volume.label, readOnly=read_only):
            self.backend.mount_volume(volume.raw, read_only)

    def dismount_volume(self, volume: Volume, force: bool = False) -> None:
        with self.recorder.call("VixMntapi_DismountVolume", handle=volume.label, force=force):
            self.backend.dismount_volume(volume.raw, force)

    def get_os_info(self, disk_set: DiskSet) -> OsInfo:
        with self.recorder.call("VixMntapi_GetOsInfo", handle=disk_set.label) as record:
            info = self.backend.get_os_info(disk_set.raw)
            record.args.update(family=info.family.name, vendor=info.vendor)
            return info

    def close_disk_set(self, disk_set: DiskSet) -> None:
        with self.recorder.call("VixMntapi_CloseDiskSet", handle=disk_set.label):
            self.backend.close_disk_set(disk_set.raw)
        disk_set.closed = True

    # --- conveniences built only on the calls above ---

    @contextmanager
    def opened_disks(
        self, connection: Connection, paths: list[str], flags: int = OpenFlags.READ_ONLY
    ) -> Iterator[DiskSet]:
        disk_set = self.open_disks(connection, paths, flags)
        try:
            yield disk_set
        finally:
            if not disk_set.closed:
                self.close_disk_set(disk_set)

    @contextmanager
    def mounted(self, volume: Volume, read_only: bool = True) -> Iterator[Path]:
        """Mount, yield the local folder of the volume, dismount (forced only if a plain dismount fails)."""
        self.mount_volume(volume, read_only)
        try:
            link = self.get_volume_info(volume).symbolic_link
            if not link:
                raise VixError(VixCode.MNTAPI_MOUNTPT_NOT_FOUND, "VixMntapi_GetVolumeInfo", "no symbolic link")
            yield Path(link)
        finally:
            try:
                self.dismount_volume(volume, force=False)
            except VixError:
                self.dismount_volume(volume, force=True)

    def volumes_to_verify(self, disk_set: DiskSet) -> list[Volume]:
        """The disk set's volumes, or the error a mount check reports when there is none (R3's affected text)."""
        volumes = self.get_volume_handles(disk_set)
        if not volumes:
            raise VixError(VixCode.MNTAPI_NO_VOLUME, "VixMntapi_GetVolumeHandles", NO_VOLUME_TEXT)
        return volumes
