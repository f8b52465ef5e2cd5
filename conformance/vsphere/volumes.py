"""A tiny volume format of our own ("VDDKCFS1") that guest workloads write and the simulated VixMntApi mounts.

Why: VixMntApi mounts real file systems (ext4, NTFS) with a kernel driver; the simulator has none, so its
VixMntApi recognises this format instead. It is deliberately simple, deterministic and checkable.

Layout (all integers little-endian; offsets are bytes from the start of the volume):

* A volume starts at byte 1 MiB of the disk (`VOLUME_OFFSET`), as the first partition would after a
  partition table. Further volumes may follow, each at the next 1 MiB boundary after the previous one's end.
* Superblock, 512 bytes at the volume start::

      0   8  magic b"VDDKCFS1"
      8   2  version (1)
     10   2  flags (0)
     12   4  table_length: bytes of the file table
     16   8  table_offset: 512 (the table follows the superblock)
     24   8  volume_length: bytes from the volume start to the end of the last file, 4 KiB aligned
     32  32  SHA-256 of the file table
     64  32  label, UTF-8, NUL padded
     96 412  zero
    508   4  CRC-32 of bytes 0..507

* File table, UTF-8 JSON: ``{"files": [{"name", "offset", "length", "sha256"}], "mount_point": str|null}``;
  names are relative POSIX paths ("etc/os-release"), `mount_point` is where the guest mounts the volume.
* File data at the listed offsets, each 4 KiB aligned, after the table.

On a real Linux VM this format means nothing to the kernel: it exists only for the simulator. A lab run
that wants VixMntApi to mount a volume creates a real one in the guest instead (partition, `mkfs.ext4`,
`mount`, copy the files) with the same `GuestWorkload`; `write_simple_volume` is the simulator's stand-in.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.vsphere.guest import GuestWorkload

MAGIC = b"VDDKCFS1"
VERSION = 1
VOLUME_OFFSET = 1024 * 1024
VOLUME_ALIGN = 1024 * 1024
SUPERBLOCK_SIZE = 512
DATA_ALIGN = 4096
MAX_TABLE = 1024 * 1024
LABEL_SIZE = 32
_HEAD = struct.Struct("<8sHHIQQ32s32s")  # 96 bytes; zero padding up to the CRC at 508


class VolumeFormatError(ValueError):
    """Bytes that claim to be a VDDKCFS1 volume but are not a consistent one (or files that cannot be one)."""


@dataclass(frozen=True)
class Superblock:
    version: int
    flags: int
    table_offset: int
    table_length: int
    volume_length: int
    table_sha256: bytes
    label: str


@dataclass(frozen=True)
class FileEntry:
    name: str
    offset: int
    length: int
    sha256: str


@dataclass(frozen=True)
class FileTable:
    files: tuple[FileEntry, ...]
    mount_point: str | None


def _align(value: int, boundary: int) -> int:
    return -(-value // boundary) * boundary


def check_name(name: str) -> str:
    """A file name must be a relative POSIX path without '.', '..' or empty parts (it becomes a host path)."""
    parts = name.split("/")
    if (
        not name
        or len(name.encode()) > 1024
        or "\\" in name
        or "\0" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise VolumeFormatError(f"file name {name!r} is not a relative path of plain components")
    return name


def volume_image(files: dict[str, bytes], label: str = "", mount_point: str | None = None) -> bytes:
    """The bytes of one volume holding `files`, to be written at `VOLUME_OFFSET` of a disk (pure function)."""
    names = sorted(check_name(n) for n in files)
    if any(b.startswith(a + "/") for a in names for b in names):
        raise VolumeFormatError("no file may also be a folder of another file")
    raw_label = label.encode()
    if len(raw_label) > LABEL_SIZE:
        raise VolumeFormatError(f"label {label!r} is longer than {LABEL_SIZE} bytes")
    # the table's length decides where data starts; offsets are its only variable part, so iterate to a fixpoint
    data_start = DATA_ALIGN
    while True:
        placed: list[tuple[str, int]] = []
        offset = data_start
        for name in names:
            placed.append((name, offset))
            offset = _align(offset + len(files[name]), DATA_ALIGN)
        entries = [
            {"name": name, "offset": at, "length": len(files[name]), "sha256": _sha(files[name])} for name, at in placed
        ]
        table = json.dumps({"files": entries, "mount_point": mount_point}, separators=(",", ":")).encode()
        needed = _align(SUPERBLOCK_SIZE + len(table), DATA_ALIGN)
        if needed <= data_start:
            break
        data_start = needed
    if len(table) > MAX_TABLE:
        raise VolumeFormatError(f"the file table needs {len(table)} bytes; at most {MAX_TABLE}")
    volume_length = max(offset, data_start)
    image = bytearray(volume_length)
    head = _HEAD.pack(
        MAGIC, VERSION, 0, len(table), SUPERBLOCK_SIZE, volume_length, hashlib.sha256(table).digest(), raw_label
    )
    image[: len(head)] = head
    image[508:512] = struct.pack("<I", zlib.crc32(bytes(image[:508])))
    image[SUPERBLOCK_SIZE : SUPERBLOCK_SIZE + len(table)] = table
    for name, at in placed:
        image[at : at + len(files[name])] = files[name]
    return bytes(image)


def parse_superblock(block: bytes) -> Superblock | None:
    """The superblock in the first 512 bytes of `block`, or None when there is no valid one (no volume)."""
    if len(block) < SUPERBLOCK_SIZE or block[:8] != MAGIC:
        return None
    if struct.unpack("<I", block[508:512])[0] != zlib.crc32(block[:508]):
        return None
    _magic, version, flags, t_len, t_off, v_len, t_sha, raw_label = _HEAD.unpack(block[: _HEAD.size])
    if version != VERSION or t_off < SUPERBLOCK_SIZE or t_len > MAX_TABLE or v_len < t_off + t_len:
        return None
    return Superblock(version, flags, t_off, t_len, v_len, t_sha, raw_label.rstrip(b"\0").decode(errors="replace"))


def parse_table(superblock: Superblock, raw: bytes) -> FileTable:
    """The file table (bytes `raw` read at its offset); VolumeFormatError if it is damaged or inconsistent."""
    if hashlib.sha256(raw).digest() != superblock.table_sha256:
        raise VolumeFormatError("the file table does not match its SHA-256 in the superblock")
    try:
        doc: Any = json.loads(raw.decode())
        files = tuple(
            FileEntry(check_name(str(f["name"])), int(f["offset"]), int(f["length"]), str(f["sha256"]))
            for f in doc["files"]
        )
        mount_point = doc.get("mount_point")
    except (ValueError, KeyError, TypeError) as exc:
        raise VolumeFormatError(f"the file table is not valid: {exc}") from exc
    floor = superblock.table_offset + superblock.table_length
    for entry in files:
        if entry.offset < floor or entry.length < 0 or entry.offset + entry.length > superblock.volume_length:
            raise VolumeFormatError(f"file {entry.name!r} lies outside the volume's data area")
    return FileTable(files, str(mount_point) if mount_point else None)


def check_file(entry: FileEntry, data: bytes) -> bytes:
    if len(data) != entry.length or _sha(data) != entry.sha256:
        raise VolumeFormatError(f"file {entry.name!r} does not match its SHA-256 (the data is damaged)")
    return data


def next_volume_offset(offset: int, superblock: Superblock) -> int:
    """Where partition discovery looks for the volume after the one at `offset`."""
    return _align(offset + superblock.volume_length, VOLUME_ALIGN)


def write_simple_volume(
    workload: GuestWorkload,
    disk_index: int,
    files: dict[str, bytes],
    label: str = "",
    mount_point: str | None = None,
    offset: int = VOLUME_OFFSET,
) -> int:
    """Write a VDDKCFS1 volume with `files` onto the guest's disk `disk_index` (dd inside the guest); its length.

    The guest sees only bytes on its disk, so the same call runs on a lab VM, but only the simulated
    VixMntApi understands the result (see the module docstring for what a lab uses instead).
    """
    if offset % VOLUME_ALIGN:
        raise VolumeFormatError(f"volumes start on 1 MiB boundaries, not at byte {offset}")
    image = volume_image(files, label, mount_point)
    workload.write_disk(disk_index, offset, image)
    return len(image)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
