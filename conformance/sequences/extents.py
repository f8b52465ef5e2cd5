"""Where a disk holds data, asked through VixDiskLib and vSphere: shared by the reference application (what to
write, what to zero) and the harness's own read-back (what to read of a disk too large to read in full)."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import SECTOR_SIZE
from conformance.vsphere.session import DiskRef


def changed_areas(vm: Any, snapshot: Any, disk: DiskRef, change_id: str) -> list[tuple[int, int]]:
    """QueryChangedDiskAreas over the whole disk, page by page: (offset, length) in bytes."""
    areas, offset = [], 0
    while offset < disk.capacity:
        page = vm.QueryChangedDiskAreas(snapshot, disk.key, offset, change_id)
        areas += [(int(a.start), int(a.length)) for a in page.changedArea]
        offset = int(page.startOffset) + int(page.length)
    return areas


def allocated_extents(
    lib: VixDiskLib, chunk_sectors: int, handle: Disk, capacity_sectors: int, vm: Any, snapshot: Any, disk: DiskRef
) -> list[tuple[int, int]]:
    """(start, end) byte ranges holding data: QueryAllocatedBlocks, or before VDDK 6.7 CBT's areas since "*",
    or the whole disk when the VM does not track changes."""
    try:
        blocks = lib.allocated_blocks(handle, capacity_sectors, chunk_sectors)
        return [(b.offset * SECTOR_SIZE, (b.offset + b.length) * SECTOR_SIZE) for b in blocks]
    except VixError as exc:
        if exc.code != VixCode.NOT_SUPPORTED:
            raise
    try:
        return [(start, start + length) for start, length in changed_areas(vm, snapshot, disk, "*")]
    except vim.fault.FileFault:
        return [(0, capacity_sectors * SECTOR_SIZE)]
