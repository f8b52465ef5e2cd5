"""Virtual disks of the simulated ESXi, stored as real VMDK files that qemu-img can read.

A base disk is a text descriptor NAME.vmdk (createType "monolithicFlat") plus the raw data file
NAME-flat.vmdk. A snapshot gives a disk a delta: descriptor NAME.vmdk naming its parent
(parentFileNameHint, parentCID) plus a hosted sparse extent NAME-delta.vmdk holding only the grains
written since. Reads fall through the chain; writes go to the top link only.

Space: each link charges its new allocation against the `DatastoreSpace` of its datastore. `open()`
charges nothing (files that already exist are the datastore owner's to account, e.g. with
`space.reserve(disk.accounted_bytes())`); `delete()` gives back what the link accounts for.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from .cbt import ChangeTracker
from .space import DatastoreSpace, DiskFullError
from .vmdk_descriptor import (
    LINK_DDB_KEYS,
    SECTOR,
    Descriptor,
    ExtentLine,
    api_uuid,
    base_ddb,
    new_cid,
    parent_hint_for,
)
from .vmdk_flat import BLOCK, FlatExtent, merge_extents
from .vmdk_sparse import SparseExtent

__all__ = ["PROVISIONING", "DatastoreSpace", "DiskFullError", "VirtualDiskFile"]

#: provisioning types of base disks (deltas are always "thin")
PROVISIONING = ("thin", "thick", "eagerZeroedThick")
_COPY_CHUNK = 8 * 1024 * 1024


#: every link not yet garbage-collected, so a stopping simulator can close what is still open under its state
#: folder (deleted files included: their descriptors would otherwise stay open for the life of the process)
_LIVE: weakref.WeakSet[VirtualDiskFile] = weakref.WeakSet()


def close_all_under(root: Path) -> int:
    """Close every live link whose file lies under ``root``; how many were open."""
    root = root.resolve()
    found = [f for f in list(_LIVE) if not f._closed and (f.path.resolve() == root or root in f.path.resolve().parents)]
    for link in found:
        link.close()
    return len(found)


class VirtualDiskFile:
    """One link of a disk chain: a descriptor plus its flat or sparse extent (thread-safe)."""

    def __init__(
        self,
        path: Path,
        descriptor: Descriptor,
        extent: FlatExtent | SparseExtent,
        parent: VirtualDiskFile | None,
        space: DatastoreSpace | None,
        owns_parent: bool = False,
    ) -> None:
        self.path = path
        self.capacity = descriptor.capacity
        self.parent = parent
        self.space = space
        self.cid = descriptor.cid
        #: vSphere API form of ddb.uuid ("6000C29x-xxxx-..."); a delta keeps its base disk's
        self.uuid = api_uuid(descriptor.ddb.get("uuid", ""))
        if isinstance(extent, SparseExtent) or descriptor.ddb.get("thinProvisioned") == "1":
            self.provisioning = "thin"
        elif descriptor.ddb.get("sim.provisioning") == "eagerZeroedThick":
            self.provisioning = "eagerZeroedThick"
        else:
            self.provisioning = "thick"
        #: changed block tracker fed by every write() while set (CBT on)
        self.tracker: ChangeTracker | None = None
        self._descriptor = descriptor
        self._extent = extent
        self._owns_parent = owns_parent
        self._lock = threading.RLock()
        self._closed = False
        self._deleted = False
        self._accounted_at_close = 0
        _LIVE.add(self)

    def __repr__(self) -> str:
        kind = "delta" if self.is_delta else self.provisioning
        return f"VirtualDiskFile({str(self.path)!r}, {kind}, capacity={self.capacity})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def is_delta(self) -> bool:
        """Whether this link is a sparse delta (it has or had a parent)."""
        return isinstance(self._extent, SparseExtent)

    @property
    def parent_cid(self) -> str:
        """The parentCID recorded in the descriptor (ffffffff for a base disk)."""
        return self._descriptor.parent_cid

    # -- creation and opening -------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: Path, capacity: int, provisioning: str = "thin", space: DatastoreSpace | None = None
    ) -> VirtualDiskFile:
        """Create a base disk; thick ones reserve (and fallocate) their whole capacity up front."""
        path = Path(path)
        if provisioning not in PROVISIONING:
            raise ValueError(f"provisioning must be one of {', '.join(PROVISIONING)}, got {provisioning!r}")
        if capacity <= 0 or capacity % SECTOR:
            raise ValueError(f"capacity must be a positive multiple of {SECTOR}, got {capacity}")
        extent_path = path.with_name(f"{path.stem}-flat.vmdk")
        for existing in (path, extent_path):
            if existing.exists():
                raise FileExistsError(f"{existing} already exists")
        thick = provisioning != "thin"
        reserved = 0
        if thick and space is not None:
            reserved = space.reserve(capacity)
            if reserved < capacity:
                space.release(reserved)
                raise DiskFullError(
                    f"datastore full: a {provisioning} disk of {capacity} bytes does not fit ({reserved} bytes free)",
                    bytes_written=0,
                )
        try:
            extent = FlatExtent.create(extent_path, capacity, thick)
        except BaseException:
            if space is not None:
                space.release(reserved)
            raise
        cid = new_cid()
        descriptor = Descriptor(
            cid=cid,
            create_type="monolithicFlat",
            extents=[ExtentLine("RW", capacity // SECTOR, "FLAT", extent_path.name, 0)],
            ddb=base_ddb(capacity, provisioning, cid),
        )
        try:
            descriptor.create(path)
        except BaseException:
            extent.close()
            extent_path.unlink(missing_ok=True)
            if space is not None:
                space.release(reserved)
            raise
        return cls(path, descriptor, extent, None, space)

    @classmethod
    def create_delta(cls, path: Path, parent: VirtualDiskFile, space: DatastoreSpace | None = None) -> VirtualDiskFile:
        """Create a delta over `parent` (a snapshot): the parent is frozen from now on."""
        path = Path(path)
        parent._check_open()
        extent_path = path.with_name(f"{path.stem}-delta.vmdk")
        for existing in (path, extent_path):
            if existing.exists():
                raise FileExistsError(f"{existing} already exists")
        parent.flush()
        extent = SparseExtent.create(extent_path, parent.capacity)
        cid = new_cid()
        ddb = {k: v for k, v in parent._descriptor.ddb.items() if k not in LINK_DDB_KEYS}
        ddb["longContentID"] = secrets.token_hex(12) + cid
        descriptor = Descriptor(
            cid=cid,
            create_type="twoGbMaxExtentSparse",
            parent_cid=parent.cid,
            parent_hint=parent_hint_for(path, parent.path),
            extents=[ExtentLine("RW", parent.capacity // SECTOR, "SPARSE", extent_path.name)],
            ddb=ddb,
            extra={"isNativeSnapshot": "no"},
        )
        try:
            descriptor.create(path)
        except BaseException:
            extent.close()
            extent_path.unlink(missing_ok=True)
            raise
        return cls(path, descriptor, extent, parent, space)

    @classmethod
    def open(
        cls,
        path: Path,
        space_for: Callable[[Path], DatastoreSpace | None] | None = None,
    ) -> VirtualDiskFile:
        """Open a disk and, through parentFileNameHint, its whole chain (checking parentCIDs)."""
        return cls._open_link(Path(path), space_for, [])

    @classmethod
    def _open_link(
        cls, path: Path, space_for: Callable[[Path], DatastoreSpace | None] | None, seen: list[Path]
    ) -> VirtualDiskFile:
        resolved = path.resolve()
        if resolved in seen:
            raise ValueError(f"{path}: the parent chain loops back to this disk")
        seen.append(resolved)
        descriptor = Descriptor.load(path)
        if len(descriptor.extents) != 1:
            raise ValueError(f"{path}: only single-extent disks are supported, found {len(descriptor.extents)} extents")
        line = descriptor.extents[0]
        parent = None
        if descriptor.parent_hint:
            hint = Path(descriptor.parent_hint)
            parent = cls._open_link(hint if hint.is_absolute() else path.parent / hint, space_for, seen)
        try:
            if parent is not None and parent.cid != descriptor.parent_cid:
                raise ValueError(
                    f"{path}: parentCID {descriptor.parent_cid} does not match CID "
                    f"{parent.cid} of its parent {parent.path}: the parent changed "
                    "after the delta was created"
                )
            extent: FlatExtent | SparseExtent
            if line.kind in ("FLAT", "VMFS") and line.offset == 0:
                extent = FlatExtent.open(
                    path.parent / line.filename, descriptor.capacity, thick=descriptor.ddb.get("thinProvisioned") != "1"
                )
            elif line.kind == "SPARSE":
                extent = SparseExtent.open(path.parent / line.filename)
                if extent.capacity != descriptor.capacity:
                    extent.close()
                    raise ValueError(
                        f"{path}: extent holds {extent.capacity} bytes but the descriptor says {descriptor.capacity}"
                    )
            else:
                raise ValueError(f"{path}: unsupported extent {line.render()!r}")
        except BaseException:
            if parent is not None:
                parent.close()
            raise
        space = space_for(path) if space_for is not None else None
        return cls(path, descriptor, extent, parent, space, owns_parent=parent is not None)

    # -- data -----------------------------------------------------------------------------------

    def _check_range(self, operation: str, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.capacity:
            raise ValueError(
                f"{operation} of {length} bytes at offset {offset} is outside the "
                f"disk {self.path.name} (capacity {self.capacity} bytes)"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"disk {self.path} is {'deleted' if self._deleted else 'closed'}")

    def _from_parent(self, offset: int, view: memoryview) -> None:
        """Fill `view` (already zeros) with what the chain below this link holds."""
        parent = self.parent
        if parent is not None and offset < parent.capacity:
            parent._readinto(offset, view[: parent.capacity - offset])

    def _readinto(self, offset: int, view: memoryview) -> None:
        with self._lock:
            self._check_open()
            self._extent.readinto(offset, view, self._from_parent)

    def read(self, offset: int, length: int) -> bytes:
        """Read through the chain; unallocated everywhere reads as zeros."""
        self._check_range("read", offset, length)
        if not length:
            return b""
        buffer = bytearray(length)
        self._readinto(offset, memoryview(buffer))
        return bytes(buffer)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write to this (top) link; DiskFullError says how much persisted when space runs out."""
        view = memoryview(data).cast("B")
        self._check_range("write", offset, len(view))
        if not view:
            return
        with self._lock:
            self._write_locked(offset, view, track=True)

    def _write_locked(self, offset: int, view: memoryview, track: bool) -> None:
        self._check_open()
        tracker = self.tracker if track else None
        try:
            self._extent.write(offset, view, self._from_parent, self.space)
        except DiskFullError as exc:
            if tracker is not None and exc.bytes_written:
                tracker.record(offset, exc.bytes_written)
            raise
        if tracker is not None:
            tracker.record(offset, len(view))

    def allocated_extents(self, top_only: bool = False) -> list[tuple[int, int]]:
        """Allocated (offset, length) byte extents, 64 KiB aligned and merged; the union over
        the chain unless `top_only` (flat links report their host data regions)."""
        with self._lock:
            self._check_open()
            own = self._extent.allocated_runs()
        if top_only or self.parent is None:
            return own
        below = [
            (offset, min(length, self.capacity - offset))
            for offset, length in self.parent.allocated_extents()
            if offset < self.capacity
        ]
        return merge_extents(own + below)

    def extend(self, capacity: int) -> None:
        """Grow a base disk (no delta above or below it) to `capacity` bytes; the descriptor follows."""
        if capacity <= self.capacity or capacity % SECTOR:
            raise ValueError(
                f"{self.path.name}: a disk grows to a larger multiple of {SECTOR} bytes "
                f"(now {self.capacity}, asked {capacity})"
            )
        with self._lock:
            self._check_open()
            if self.parent is not None or not isinstance(self._extent, FlatExtent):
                raise ValueError(f"{self.path.name} is a snapshot delta: only a base disk grows")
            self._extent.extend(capacity, self.provisioning != "thin", self.space)
            self._descriptor.extents[0].sectors = capacity // SECTOR
            sectors = capacity // SECTOR
            self._descriptor.ddb["geometry.cylinders"] = str(max(1, min(65535, sectors // (255 * 63))))
            self._descriptor.replace(self.path)
            self.capacity = capacity

    # -- files and chain ------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Descriptor and extent of this link only."""
        return [self.path, self.path.parent / self._descriptor.extents[0].filename]

    def chain(self) -> list[VirtualDiskFile]:
        """This link and its ancestors, top first."""
        links: list[VirtualDiskFile] = []
        link: VirtualDiskFile | None = self
        while link is not None:
            links.append(link)
            link = link.parent
        return links

    def host_bytes(self) -> int:
        """Host space really used by this link's files (st_blocks)."""
        return sum(os.stat(p).st_blocks * 512 for p in self.files() if p.exists())

    def accounted_bytes(self) -> int:
        """Bytes this link counts against its datastore (what delete() releases)."""
        with self._lock:
            if self._closed:
                return self._accounted_at_close
            return self._extent.accounted_bytes()

    def metadata(self) -> dict[str, str]:
        """The disk database (ddb.* entries without the prefix), as VixDiskLib_ReadMetadata."""
        with self._lock:
            return dict(self._descriptor.ddb)

    def write_metadata(self, key: str, value: str) -> None:
        """Set one ddb entry and rewrite the descriptor, as VixDiskLib_WriteMetadata."""
        if not key or any(c in key + value for c in '"\n\r'):
            raise ValueError(
                f"metadata key and value must be non-empty single-line text without quotes: {key!r} = {value!r}"
            )
        with self._lock:
            self._check_open()
            self._descriptor.ddb[key] = value
            self._descriptor.replace(self.path)

    def set_parent(self, parent: VirtualDiskFile) -> None:
        """Re-point this delta at `parent` (its old parent was consolidated into `parent`)."""
        if not self.is_delta:
            raise ValueError(f"{self.path} is a base disk and has no parent to replace")
        if parent.capacity != self.capacity:
            raise ValueError(f"parent capacity {parent.capacity} differs from {self.capacity}")
        with self._lock:
            self._check_open()
            self._descriptor.parent_cid = parent.cid
            self._descriptor.parent_hint = parent_hint_for(self.path, parent.path)
            self._descriptor.replace(self.path)
            self.parent = parent
            self._owns_parent = False

    # -- chain operations -----------------------------------------------------------------------

    def consolidate_into_parent(self) -> VirtualDiskFile:
        """Commit this delta's grains into its parent, delete the delta's files, return the parent.

        If the parent's datastore fills up, DiskFullError propagates and the delta stays in place
        (the chain still reads the same data, since what was copied is identical).
        """
        with self._lock:
            self._check_open()
            parent = self.parent
            if parent is None:
                raise ValueError(f"{self.path} has no parent to consolidate into")
            for offset, length in self.allocated_extents(top_only=True):
                for position in range(offset, offset + length, _COPY_CHUNK):
                    count = min(_COPY_CHUNK, offset + length - position)
                    data = memoryview(bytearray(count))
                    self._extent.readinto(position, data, self._from_parent)
                    with parent._lock:
                        parent._write_locked(position, data, track=False)
            parent.flush()
            self._owns_parent = False
            self.delete()
            return parent

    def copy_to(self, path: Path, provisioning: str = "thin", space: DatastoreSpace | None = None) -> VirtualDiskFile:
        """Flatten the chain into a new base disk, copying only allocated, non-zero blocks.

        On failure (e.g. DiskFullError) the partial copy is deleted and the error propagates.
        """
        target = VirtualDiskFile.create(path, self.capacity, provisioning, space)
        try:
            for offset, length in self.allocated_extents():
                for position in range(offset, offset + length, _COPY_CHUNK):
                    data = self.read(position, min(_COPY_CHUNK, offset + length - position))
                    self._copy_nonzero(target, position, data)
            target.flush()
        except BaseException:
            target.delete()
            raise
        return target

    @staticmethod
    def _copy_nonzero(target: VirtualDiskFile, offset: int, data: bytes) -> None:
        """Write the runs of non-zero 64 KiB blocks of `data` (zeros stay holes in the copy)."""
        view = memoryview(data)
        start = -1
        for block in range(0, len(data), BLOCK):
            end = min(block + BLOCK, len(data))
            zero = data.count(0, block, end) == end - block
            if zero and start >= 0:
                target._write_locked(offset + start, view[start:block], track=False)
                start = -1
            elif not zero and start < 0:
                start = block
        if start >= 0:
            target._write_locked(offset + start, view[start:], track=False)

    def delete(self) -> None:
        """Delete this link's files (never its parents') and release its space."""
        with self._lock:
            if self._deleted:
                return
            self._owns_parent = False  # the parents live on; closing them is their user's job
            self.close()
            for file in self.files():
                file.unlink(missing_ok=True)
            self._deleted = True
            if self.space is not None:
                self.space.release(self._accounted_at_close)

    def flush(self) -> None:
        """fsync the data of this link."""
        with self._lock:
            if not self._closed:
                self._extent.flush()

    def close(self) -> None:
        """Close this link and the parents that open() opened for it; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._accounted_at_close = self._extent.accounted_bytes()
            self._extent.close()
            self._closed = True
        if self._owns_parent and self.parent is not None:
            self.parent.close()
