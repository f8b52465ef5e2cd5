"""Everything a sequence needs: the target, a vSphere session, the VixDiskLib facade, the resource tracker."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import Target
from conformance.vixdisklib.api import VixDiskLib
from conformance.vsphere.session import VsphereSession


@dataclass
class SequenceContext:
    target: Target
    vsphere: VsphereSession
    lib: VixDiskLib
    resources: ResourceTracker
    repository: Path  # where backup images go
    tmp_directory: Path | None = None  # the InitEx tmpDirectory, checked empty after cleanup
    identity: str = "vddk-conformance"
    #: bytes per Read/Write call of the reference application
    io_size: int = 1024 * 1024
    #: QueryAllocatedBlocks chunk size in sectors (128 = 64 KiB .. 131072 = 64 MiB)
    chunk_sectors: int = 2048
    proxy_vm: str | None = None
    notes: list[str] = field(default_factory=list)
    #: where a partner product's VixDiskLib traces are kept for the reports and bundles (None: not kept)
    trace_dir: Path | None = None
    #: every content comparison a sequence made: {"vm", "disk", "expected", "actual", "match"} (reports attach it)
    digests: list[dict[str, object]] = field(default_factory=list)
