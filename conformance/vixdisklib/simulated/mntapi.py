"""The simulated VixMntApi (a Linux proxy): disks opened through the simulated VixDiskLib, VDDKCFS1 volumes.

Disks. OpenDisks opens its one disk with the simulated VixDiskLib backend on the caller's connection, so
transports apply (HotAdd attaches the disk to the proxy VM until CloseDiskSet); these internal opens are not
the application's VixDiskLib calls and are not recorded. A First Class Disk is named by the path
``"[<datastore>] VStorageObject:<id>"`` or by a connection whose params carry a vStorageObject spec. The
simulated VixDiskLib cannot open FCDs by id yet, so this module opens the FCD as a VM disk: on a VM
connection the device of the VM (or of its snapshot) whose vDiskId is the FCD; on an FCD connection the
FCD's current file (RetrieveVStorageObject backing filePath) through an internal connection to the VM it
is attached to. Detached FCDs and FCD snapshots (ssid) get VIX_E_NOT_SUPPORTED.

Volumes are VDDKCFS1 (conformance/vsphere/volumes.py), as there is no kernel driver to mount ext4 or NTFS.
Discovery reads a superblock at byte 1 MiB, then at the next 1 MiB boundary after each volume; no valid
superblock there, no volume. MountVolume reads the table and every file, checks each SHA-256 (damage:
VIX_E_MNTAPI_OS_ERROR, like a failed mount(8)) and writes the files read-only into
``<mount_path>/volume-<n>``, mount_path being a per-set folder under ``<tmpDirectory>/vixMntapi``
(VixMntapi_Init's config, else the VixDiskLib's). Dismount removes it (`force` changes nothing: nothing can
hold it busy). Read-write mounts: VIX_E_MNTAPI_VOLUME_NOT_WRITABLE on a read-only set, else NOT_SUPPORTED.

R3 (FCD mount on Linux after HotAdd). GetVolumeHandles returns no volume, and MountVolume of a handle
listed before fails with VIX_E_MNTAPI_NO_VOLUME, while all of these hold at the time of the call: the
build's `fcd_mount_after_hotadd` is false (7.0.2 and older); the set was opened as an FCD (either form
above; a plain VM disk path never is); the library has a proxy VM; and vCenter's events show a completed
HotAdd of one of the FCD's files to that proxy since this process started: a VmReconfiguredEvent adding a
link of the FCD's chain (backing filePath and parents) followed by one removing it, i.e. a HotAdd whose
cleanup ran. The set's own HotAdd (events during its OpenDisks) does not count. Reading the server rather
than process memory makes the rule independent of how the backup was coded; the simulator and this
process share the host's clock.
"""

from __future__ import annotations

import datetime
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyVmomi import vim, vmodl

from conformance.vixdisklib.config import load_config
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.mntapi import VIXMNTAPI_MAJOR_VERSION, DiskSetInfo, OsFamily, OsInfo, VolumeInfo, VolumeType
from conformance.vixdisklib.simulated.control import ControlSession, disks_of
from conformance.vixdisklib.simulated.disk import SimDisk
from conformance.vixdisklib.simulated.library import SimConnection, SimulatedVixDiskLib
from conformance.vixdisklib.types import SECTOR_SIZE, OpenFlags
from conformance.vsphere.volumes import (
    SUPERBLOCK_SIZE,
    VOLUME_OFFSET,
    FileEntry,
    FileTable,
    Superblock,
    VolumeFormatError,
    check_file,
    next_volume_offset,
    parse_superblock,
    parse_table,
)

MAX_VOLUMES = 16  # per disk: discovery stops there
MOUNT_ROOT = "vixMntapi"
FCD_PATH_MARK = "VStorageObject:"


def _process_start() -> datetime.datetime:
    """When this process started (Linux /proc), to bound "earlier in the same process"; import time otherwise."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK") - 1.0  # btime has whole seconds
        return datetime.datetime.fromtimestamp(started, datetime.UTC)
    except (OSError, ValueError, IndexError, StopIteration):
        return datetime.datetime.now(datetime.UTC)


PROCESS_START = _process_start()


@dataclass(frozen=True)
class FcdRef:
    id: str
    datastore: Any  # vim.Datastore


@dataclass
class SimVolume:
    disk_set: SimDiskSet
    disk: SimDisk
    offset: int  # byte offset of the superblock on the disk
    number: int
    superblock: Superblock
    table: FileTable | None  # None: the table is damaged (mount fails)
    damage: str = ""
    mount_dir: Path | None = None


@dataclass
class SimDiskSet:
    connection: SimConnection
    flags: int
    mount_path: Path
    disk: SimDisk | None = None  # Linux: one disk per set
    inner: SimConnection | None = None  # the VM connection opened for an FCD connection
    fcd: FcdRef | None = None
    own_hotadd: tuple[datetime.datetime, datetime.datetime] | None = None  # when its own OpenDisks ran
    volumes: dict[int, SimVolume] = field(default_factory=dict)  # by disk offset
    closed: bool = False


class SimulatedVixMntApi:
    """A VixMntApiBackend over a SimulatedVixDiskLib, behaving as that library's build on a Linux proxy."""

    name = "simulated"
    platform = "linux"

    def __init__(self, library: SimulatedVixDiskLib) -> None:
        self.library = library
        self.tmp_directory: Path | None = None
        self._initialised = False

    # --- library ---

    def init(self, major: int, minor: int, lib_dir: Path | None, config_file: Path | None) -> None:
        if major != VIXMNTAPI_MAJOR_VERSION:
            raise VixError(VixCode.MNTAPI_INCOMPATIBLE_VERSION, "VixMntapi_Init", f"version {major}.{minor}")
        if self._initialised:
            raise VixError(VixCode.FAIL, "VixMntapi_Init", "VixMntapi_Init may be called once before Exit")
        config = load_config(config_file) if config_file else None
        self.tmp_directory = (config.tmp_directory if config else None) or self.library.tmp_directory
        self._initialised = True

    def exit(self) -> None:
        self._initialised = False

    def _require_init(self, call: str) -> Path:
        if not self._initialised or self.tmp_directory is None:
            raise VixError(VixCode.FAIL, call, "VixMntapi_Init has not been called")
        return self.tmp_directory

    # --- disk sets ---

    def open_disks(self, connection: SimConnection, paths: list[str], flags: int) -> SimDiskSet:
        call = "VixMntapi_OpenDisks"
        tmp = self._require_init(call)
        if len(paths) != 1:
            raise VixError(VixCode.INVALID_ARG, call, f"on Linux OpenDisks takes exactly one disk, not {len(paths)}")
        disk_set = SimDiskSet(connection, flags, tmp / MOUNT_ROOT / f"diskset-{uuid.uuid4().hex[:12]}")
        started = datetime.datetime.now(datetime.UTC)
        try:
            disk_set.disk = self._open_one(disk_set, paths[0], flags)
        except BaseException:
            self._release(disk_set)
            raise
        if disk_set.disk.transport == "hotadd":
            disk_set.own_hotadd = (started, datetime.datetime.now(datetime.UTC))
        disk_set.mount_path.mkdir(parents=True, exist_ok=True)
        return disk_set

    def _open_one(self, disk_set: SimDiskSet, path: str, flags: int) -> SimDisk:
        connection = disk_set.connection
        fcd = self._fcd_ref(connection, path)
        if fcd is None:
            return self.library.open(connection, path, flags)
        assert connection.control is not None
        disk_set.fcd = fcd
        if connection.vm is not None:
            device = _fcd_device(connection.snapshot or connection.vm, fcd.id)
            if device is None:
                raise VixError(VixCode.FILE_NOT_FOUND, "VixMntapi_OpenDisks", f"FCD {fcd.id} is not a disk of the VM")
            return self.library.open(connection, device.backing.fileName, flags)
        spec = connection.params.vstorage_object
        if spec is not None and spec.ssid:
            raise VixError(VixCode.NOT_SUPPORTED, "VixMntapi_OpenDisks", "FCD snapshots are not simulated here yet")
        holder = _fcd_holder(connection.control, fcd.id)
        if holder is None:
            raise VixError(
                VixCode.NOT_SUPPORTED,
                "VixMntapi_OpenDisks",
                f"the simulated VixDiskLib opens FCD {fcd.id} only through the VM it is attached to",
            )
        vm, device = holder
        disk_set.inner = self.library.connect_ex(
            connection.params.with_vm(vm._moId), connection.read_only, None, ":".join(connection.modes)
        )
        return self.library.open(disk_set.inner, device.backing.fileName, flags)

    def _fcd_ref(self, connection: SimConnection, path: str) -> FcdRef | None:
        """The FCD a path or an FCD connection names; None for an ordinary disk path."""
        call = "VixMntapi_OpenDisks"
        text = path.strip()
        spec = connection.params.vstorage_object
        named = text.startswith("[") and "]" in text and text.split("]", 1)[1].strip().startswith(FCD_PATH_MARK)
        if not named and spec is None:
            return None
        control = connection.control
        if control is None:
            raise VixError(VixCode.INVALID_ARG, call, "a First Class Disk needs a connection to vCenter")
        if named:
            ds_name, rest = text[1:].split("]", 1)
            fcd_id = rest.strip()[len(FCD_PATH_MARK) :].strip()
            datastore = next((d for d in _objects(control, vim.Datastore) if d.name == ds_name), None)
            if datastore is None:
                raise VixError(VixCode.FILE_NOT_FOUND, call, f"no datastore {ds_name!r}")
        else:
            assert spec is not None
            fcd_id, datastore = spec.id, vim.Datastore(spec.datastore_moref, control.si._stub)
        ref = FcdRef(fcd_id, datastore)
        _fcd_chain(control, ref)  # raises when there is no such FCD there
        return ref

    def get_disk_set_info(self, disk_set: SimDiskSet) -> DiskSetInfo:
        self._check_set(disk_set, "VixMntapi_GetDiskSetInfo")
        return DiskSetInfo(open_flags=disk_set.flags, mount_path=str(disk_set.mount_path))

    def get_volume_handles(self, disk_set: SimDiskSet) -> list[SimVolume]:
        self._check_set(disk_set, "VixMntapi_GetVolumeHandles")
        if self._r3_hides_volumes(disk_set):
            return []
        disk, offset, found = disk_set.disk, VOLUME_OFFSET, list[SimVolume]()
        assert disk is not None
        while offset + SUPERBLOCK_SIZE <= disk.capacity and len(found) < MAX_VOLUMES:
            superblock = parse_superblock(_read(disk, offset, SUPERBLOCK_SIZE))
            if superblock is None or offset + superblock.volume_length > disk.capacity:
                break
            volume = disk_set.volumes.get(offset)
            if volume is None or volume.superblock != superblock:
                volume = disk_set.volumes[offset] = self._volume(disk_set, disk, offset, superblock)
            found.append(volume)
            offset = next_volume_offset(offset, superblock)
        return found

    def _volume(self, disk_set: SimDiskSet, disk: SimDisk, offset: int, sb: Superblock) -> SimVolume:
        raw, number = _read(disk, offset + sb.table_offset, sb.table_length), len(disk_set.volumes) + 1
        try:
            return SimVolume(disk_set, disk, offset, number, sb, parse_table(sb, raw))
        except VolumeFormatError as exc:
            return SimVolume(disk_set, disk, offset, number, sb, None, str(exc))

    def get_volume_info(self, volume: SimVolume) -> VolumeInfo:
        self._check_set(volume.disk_set, "VixMntapi_GetVolumeInfo")
        mount_point = volume.table.mount_point if volume.table else None
        return VolumeInfo(
            type=VolumeType.BASIC_PARTITION,
            is_mounted=volume.mount_dir is not None,
            symbolic_link=str(volume.mount_dir) if volume.mount_dir is not None else None,
            guest_mount_points=(mount_point,) if mount_point else (),
        )

    def mount_volume(self, volume: SimVolume, read_only: bool) -> None:
        call = "VixMntapi_MountVolume"
        disk_set = volume.disk_set
        self._check_set(disk_set, call)
        if volume.mount_dir is not None:
            raise VixError(VixCode.MNTAPI_VOLUME_ALREADY_MOUNTED, call, f"already mounted at {volume.mount_dir}")
        if not read_only:
            if disk_set.flags & OpenFlags.READ_ONLY:
                raise VixError(VixCode.MNTAPI_VOLUME_NOT_WRITABLE, call, "the disk set was opened read-only")
            raise VixError(VixCode.NOT_SUPPORTED, call, "the simulated VixMntApi mounts read-only only")
        if self._r3_hides_volumes(disk_set):
            raise VixError(VixCode.MNTAPI_NO_VOLUME, call)
        if volume.table is None:
            raise VixError(VixCode.MNTAPI_OS_ERROR, call, f"mount failed: {volume.damage}")
        files: list[tuple[FileEntry, bytes]] = []
        try:
            for entry in volume.table.files:
                data = _read(volume.disk, volume.offset + entry.offset, entry.length)
                files.append((entry, check_file(entry, data)))
        except VolumeFormatError as exc:
            raise VixError(VixCode.MNTAPI_OS_ERROR, call, f"mount failed: {exc}") from exc
        target = disk_set.mount_path / f"volume-{volume.number}"
        _remove_tree(target)
        target.mkdir(parents=True)
        for entry, data in files:
            local = target.joinpath(*entry.name.split("/"))
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            local.chmod(0o444)
        for folder, _dirs, _files in os.walk(target):
            Path(folder).chmod(0o555)
        volume.mount_dir = target

    def dismount_volume(self, volume: SimVolume, force: bool) -> None:
        self._check_set(volume.disk_set, "VixMntapi_DismountVolume")
        if volume.mount_dir is None:
            raise VixError(VixCode.MNTAPI_VOLUME_NOT_MOUNTED, "VixMntapi_DismountVolume", "the volume is not mounted")
        _remove_tree(volume.mount_dir)
        volume.mount_dir = None

    def get_os_info(self, disk_set: SimDiskSet) -> OsInfo:
        """OTHER (Linux) from the first volume holding etc/os-release; NO_OS when none does (simulator rule)."""
        for volume in self.get_volume_handles(disk_set):
            table = volume.table
            entry = next((f for f in table.files if f.name == "etc/os-release"), None) if table else None
            if table is None or entry is None:
                continue
            text = _read(volume.disk, volume.offset + entry.offset, entry.length).decode(errors="replace")
            fields = {k.strip(): v.strip().strip('"') for k, _, v in (x.partition("=") for x in text.splitlines())}
            major, minor = ([int(n) if n.isdigit() else 0 for n in fields.get("VERSION_ID", "").split(".")] + [0, 0])[
                :2
            ]
            vendor, edition = fields.get("NAME", ""), fields.get("VARIANT", "")
            return OsInfo(OsFamily.OTHER, major, minor, True, vendor, edition, table.mount_point or "/")
        return OsInfo(family=OsFamily.NO_OS)

    def close_disk_set(self, disk_set: SimDiskSet) -> None:
        call = "VixMntapi_CloseDiskSet"
        self._check_set(disk_set, call)
        mounted = [v.number for v in disk_set.volumes.values() if v.mount_dir is not None]
        if mounted:
            raise VixError(VixCode.MNTAPI_OPEN_HANDLES, call, f"volume(s) {mounted} are still mounted: dismount first")
        self._release(disk_set)

    def _release(self, disk_set: SimDiskSet) -> None:
        if disk_set.disk is not None:
            self.library.close(disk_set.disk)
        if disk_set.inner is not None:
            self.library.disconnect(disk_set.inner)
        disk_set.disk = disk_set.inner = None
        _remove_tree(disk_set.mount_path)
        disk_set.closed = True

    def _check_set(self, disk_set: SimDiskSet, call: str) -> None:
        self._require_init(call)
        if disk_set.closed:
            raise VixError(VixCode.INVALID_HANDLE, call, "the disk set is closed")

    # --- R3 ---

    def _r3_hides_volumes(self, disk_set: SimDiskSet) -> bool:
        """True when R3's affected behaviour applies now (the rule is in the module docstring)."""
        control = disk_set.connection.control
        behaviour, proxy_vm = self.library.behaviour, self.library.proxy_vm
        if disk_set.fcd is None or control is None or proxy_vm is None or behaviour.fcd_mount_after_hotadd:
            return False
        try:
            proxy = control.find_vm(proxy_vm)
        except VixError:
            return False  # no proxy VM: nothing can have been hot-added
        chain = set(_fcd_chain(control, disk_set.fcd))
        spec = vim.event.EventFilterSpec(
            entity=vim.event.EventFilterSpec.ByEntity(entity=proxy, recursion="self"),
            eventTypeId=["VmReconfiguredEvent"],
            time=vim.event.EventFilterSpec.ByTime(beginTime=PROCESS_START),
        )
        added: set[str] = set()
        for event in sorted(control.content.eventManager.QueryEvents(spec), key=lambda e: (e.createdTime, e.key)):
            own = disk_set.own_hotadd
            if own is not None and own[0] <= event.createdTime <= own[1]:
                continue
            for change in getattr(event.configSpec, "deviceChange", None) or []:
                name = str(getattr(getattr(change.device, "backing", None), "fileName", "") or "").strip()
                if name not in chain:
                    continue
                if change.operation == "add":
                    added.add(name)
                elif change.operation == "remove" and name in added:
                    return True
        return False


def _read(disk: SimDisk, offset: int, length: int) -> bytes:
    """Bytes at any offset, read in whole sectors through the VixDiskLib handle."""
    first = offset // SECTOR_SIZE
    last = -(-(offset + length) // SECTOR_SIZE)
    data = disk.read(first, last - first)
    start = offset - first * SECTOR_SIZE
    return data[start : start + length]


def _fcd_chain(control: ControlSession, fcd: FcdRef) -> list[str]:
    """The FCD's current file and its parents, top first, as datastore paths."""
    try:
        obj = control.content.vStorageObjectManager.RetrieveVStorageObject(vim.vslm.ID(id=fcd.id), fcd.datastore)
    except (vim.fault.NotFound, vmodl.fault.ManagedObjectNotFound, vmodl.fault.InvalidArgument) as exc:
        raise VixError(VixCode.FILE_NOT_FOUND, "VixMntapi_OpenDisks", f"no First Class Disk {fcd.id}") from exc
    chain, backing = [], obj.config.backing
    while backing is not None:
        chain.append(str(backing.filePath).strip())
        backing = getattr(backing, "parent", None)
    return chain


def _fcd_device(owner: Any, fcd_id: str) -> Any:
    return next((d for d in disks_of(owner) if d.vDiskId is not None and d.vDiskId.id == fcd_id), None)


def _objects(control: ControlSession, kind: Any) -> list[Any]:
    view = control.content.viewManager.CreateContainerView(control.content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def _fcd_holder(control: ControlSession, fcd_id: str) -> tuple[Any, Any] | None:
    """The VM an FCD is attached to, and its device there."""
    found = ((vm, _fcd_device(vm, fcd_id)) for vm in _objects(control, vim.VirtualMachine))
    return next(((vm, device) for vm, device in found if device is not None), None)


def _remove_tree(path: Path) -> None:
    """Remove a mount folder whose files and folders were made read-only."""
    if not path.exists():
        return
    for folder, _dirs, _files in os.walk(path):
        Path(folder).chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)
