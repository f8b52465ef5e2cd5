"""What sequences produce: backups (per disk images with their change ids) and restores, as the application
reports them. Verdicts never come from here: the harness checks images, disks and the server itself
(`conformance.verdicts`)."""

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
    transport: str
    bytes_read: int  # as the application counts it (reports, benchmarks); the harness counts from the trace
    extents: int
    #: the application's own digest of its image, shown next to the harness's in the report, never a verdict
    digest: str | None = None


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
    vm_name: str  # the VM restored into: the harness reads its disks back itself
    transport: str
    seconds: float = 0.0
    bytes_written: int = 0
