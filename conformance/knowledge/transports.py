"""Which transport can reach a disk on which datastore, as data (VDDK programming guide and release notes)."""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("nbd", "nbdssl", "hotadd", "san")
DATASTORE_TYPES = ("VMFS", "NFS", "NFS41", "vsan", "VVOL")
WRITE_TRANSPORTS = ("nbd", "nbdssl", "hotadd", "san")


@dataclass(frozen=True)
class Reach:
    allowed: bool
    reason: str = ""


def reach(transport: str, datastore_type: str, proxy_datastore_type: str | None = "VMFS") -> Reach:
    """Whether `transport` can open a disk on `datastore_type` (the proxy's home datastore matters for HotAdd)."""
    if transport in ("nbd", "nbdssl"):
        return Reach(True)
    if transport == "san":
        if datastore_type == "VMFS":
            return Reach(True)
        return Reach(False, f"SAN transport needs block storage (VMFS LUNs); {datastore_type} is not (C2)")
    if transport == "hotadd":
        if datastore_type == "vsan" and proxy_datastore_type != "vsan":
            return Reach(False, "HotAdd of a vSAN disk needs the proxy on vSAN too (K4)")
        return Reach(True)
    return Reach(False, f"unknown transport {transport}")
