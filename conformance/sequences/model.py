"""What sequences produce: backups (per disk images with their change ids and digests) and restores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DiskBackup:
    key: int
    path: str  # "[ds] dir/disk.vmdk" as recorded in the snapshot
    capacity: int
    change_id: str | None
    image: Path
    digest: str
    transport: str
    bytes_read: int
    extents: int


@dataclass
class Backup:
    vm_name: str
    vm_moref: str
    kind: str  # "full" | "incremental"
    snapshot_name: str
    snapshot_moref: str
    disks: list[DiskBackup] = field(default_factory=list)
    seconds: float = 0.0
    parent: Backup | None = None

    def disk(self, key: int) -> DiskBackup:
        return next(d for d in self.disks if d.key == key)

    @property
    def bytes_read(self) -> int:
        return sum(d.bytes_read for d in self.disks)


@dataclass
class Restore:
    vm_name: str
    transport: str
    digests: dict[int, str]  # disk key -> digest of what was read back after the restore
    expected: dict[int, str]
    seconds: float = 0.0
    bytes_written: int = 0

    @property
    def verified(self) -> bool:
        return self.digests == self.expected
