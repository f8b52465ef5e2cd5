"""Virtual disks of simulated VMs: device state, disk chains, and the merge rules of consolidation.

A VM disk is a chain of VMDK links (base, then one delta per snapshot). The VM's current state writes to
the top link; each snapshot freezes the link that was on top when it was taken. Consolidation merges
links that nothing needs any more, never touching a link that is frozen by a snapshot, shared with
another VM (linked clones, hot-added disks) or open elsewhere.
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.sim.storage.cbt import ChangeTracker
from conformance.sim.storage.space import DiskFullError
from conformance.sim.storage.vmdk import VirtualDiskFile

if TYPE_CHECKING:
    from conformance.sim.objects.datastore import DatastoreImpl
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

SCSI_CONTROLLER_KEY = 1000
FIRST_DISK_KEY = 2000


@dataclass
class DiskState:
    """One VirtualDisk device of a VM."""

    key: int
    unit_number: int
    file: VirtualDiskFile  # the link the VM reads and writes now
    datastore: DatastoreImpl  # where `file` lives
    cbt_enabled: bool = False
    tracker: ChangeTracker | None = None
    disk_mode: str = "persistent"
    #: set when the disk belongs to another VM and is only attached here (HotAdd)
    attached_from: tuple[VirtualMachineImpl, int] | None = None
    #: First Class Disk id when the disk is an FCD
    fcd_id: str | None = None
    controller_key: int = SCSI_CONTROLLER_KEY

    @property
    def capacity(self) -> int:
        return self.file.capacity

    def enable_tracking(self, enabled: bool) -> None:
        if enabled and self.tracker is None:
            self.tracker = ChangeTracker.load_or_create(ctk_path(self.file.chain()[-1].path), self.capacity)
        if enabled and not self.cbt_enabled and self.tracker is not None:
            self.tracker.reset()
            self.tracker.save()
        self.cbt_enabled = enabled

    def write(self, offset: int, data: bytes) -> None:
        """Guest or restore write: lands in the top link and, with CBT on, in the change log."""
        try:
            self.file.write(offset, data)
        finally:
            if self.cbt_enabled and self.tracker is not None:
                self.tracker.record(offset, len(data))

    def change_id(self) -> str | None:
        return self.tracker.current_change_id() if self.cbt_enabled and self.tracker is not None else None


def ctk_path(base_descriptor: Path) -> Path:
    return base_descriptor.with_name(base_descriptor.stem + "-ctk.json")


def backing_info(
    file: VirtualDiskFile,
    datastore_of: Any,
    change_id: str | None = None,
    disk_mode: str = "persistent",
    thin: bool | None = None,
) -> Any:
    """FlatVer2BackingInfo for a link, with the parent chain as nested backings."""
    ds: DatastoreImpl = datastore_of(file.path)
    parent = backing_info(file.parent, datastore_of, None, disk_mode) if file.parent is not None else None
    return vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
        fileName=ds.datastore_path(file.path),
        datastore=ds.ref,
        diskMode=disk_mode,
        thinProvisioned=(file.provisioning == "thin") if thin is None else thin,
        eagerlyScrub=file.provisioning == "eagerZeroedThick",
        uuid=file.uuid,
        contentId=file.cid,
        changeId=change_id,
        parent=parent,
        split=False,
        writeThrough=False,
        digestEnabled=False,
    )


def disk_device(disk: DiskState, datastore_of: Any, label_index: int, vm_moid: str) -> Any:
    capacity = disk.capacity
    device = vim.vm.device.VirtualDisk(
        key=disk.key,
        controllerKey=disk.controller_key,
        unitNumber=disk.unit_number,
        capacityInKB=capacity // 1024,
        capacityInBytes=capacity,
        backing=backing_info(disk.file, datastore_of, disk.change_id(), disk.disk_mode),
        deviceInfo=vim.Description(label=f"Hard disk {label_index}", summary=f"{capacity // 1024:,} KB"),
        diskObjectId=f"{vm_moid.split('-')[-1]}-{disk.key}",
        shares=vim.SharesInfo(shares=1000, level="normal"),
        storageIOAllocation=vim.StorageResourceManager.IOAllocationInfo(
            limit=-1, shares=vim.SharesInfo(shares=1000, level="normal")
        ),
    )
    if disk.fcd_id:
        device.vDiskId = vim.vslm.ID(id=disk.fcd_id)
    return device


def next_delta_path(file: VirtualDiskFile) -> Path:
    """`<disk>-00000N.vmdk` beside `file`, the first N not taken (as ESXi names snapshot deltas)."""
    stem = re.sub(r"-\d{6}$", "", file.path.stem)
    for n in itertools.count(1):
        candidate = file.path.with_name(f"{stem}-{n:06d}.vmdk")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


def unique_disk_path(folder: Path, name: str) -> Path:
    """`name.vmdk`, then `name_1.vmdk`, ... in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(0):
        candidate = folder / (f"{name}.vmdk" if n == 0 else f"{name}_{n}.vmdk")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


@dataclass
class ChainGraph:
    """Which links exist for one disk of one VM, and what ties them down.

    frozen: links a snapshot of this VM froze. pinned: links another VM's own chain or an FCD shares (a
    linked clone's parent): never merged or deleted. locked: links hot-added to another VM right now:
    merging them must wait until they are released.
    """

    heads: list[VirtualDiskFile]
    frozen: set[Path] = field(default_factory=set)
    pinned: set[Path] = field(default_factory=set)
    locked: set[Path] = field(default_factory=set)

    def links(self) -> dict[Path, VirtualDiskFile]:
        found: dict[Path, VirtualDiskFile] = {}
        for head in self.heads:
            for link in head.chain():
                found.setdefault(link.path, link)
        return found

    def children(self, link: VirtualDiskFile) -> list[VirtualDiskFile]:
        return [c for c in self.links().values() if c.parent is not None and c.parent.path == link.path]


def redundant_links(top: VirtualDiskFile, graph: ChainGraph) -> list[tuple[VirtualDiskFile, VirtualDiskFile]]:
    """(parent, child) pairs consolidation should merge: the child's data into the parent.

    A link is redundant when nothing needs it on its own: it is not the VM's current disk, no snapshot
    froze it, nothing else shares it, and exactly one link sits on it. Its only child is then merged
    into it. Locked pairs are still returned: they make consolidation needed, but must wait.
    """
    pairs = []
    for path, link in graph.links().items():
        if path == top.path or path in graph.frozen or path in graph.pinned:
            continue
        children = graph.children(link)
        if len(children) == 1 and children[0].path not in graph.pinned:
            pairs.append((link, children[0]))
    return pairs


def new_disk_uuid() -> str:
    return str(uuid.uuid4())


__all__ = [
    "FIRST_DISK_KEY",
    "SCSI_CONTROLLER_KEY",
    "ChainGraph",
    "DiskFullError",
    "DiskState",
    "backing_info",
    "ctk_path",
    "disk_device",
    "next_delta_path",
    "redundant_links",
    "unique_disk_path",
]
