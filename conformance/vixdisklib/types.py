"""The VixDiskLib C API's data types and constants, in Python: shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum, IntFlag

SECTOR_SIZE = 512
MIN_CHUNK_SIZE = 128  # sectors (64 KiB)
MAX_CHUNK_SIZE = 131072  # sectors (64 MiB)
MAX_CHUNK_NUMBER = 524288  # chunks per QueryAllocatedBlocks call
DEFAULT_TRANSPORT_MODES = "file:san:hotadd:nbd"
TRANSPORTS = ("file", "san", "hotadd", "nbd", "nbdssl")
VIXDISKLIB_VERSION_MAJOR = 7
VIXDISKLIB_VERSION_MINOR = 0


class OpenFlags(IntFlag):
    UNBUFFERED = 1
    SINGLE_LINK = 2
    READ_ONLY = 4
    COMPRESSION_ZLIB = 16
    COMPRESSION_FASTLZ = 32
    COMPRESSION_SKIPZ = 64


class CredType(IntEnum):
    UID = 1
    SESSIONID = 2
    TICKETID = 3
    SSPI = 4
    UNKNOWN = 256


class SpecType(IntEnum):
    VMX = 0
    VSTORAGE_OBJECT = 1
    UNKNOWN = 256


class AdapterType(IntEnum):
    IDE = 1
    SCSI_BUSLOGIC = 2
    SCSI_LSILOGIC = 3
    UNKNOWN = 256


@dataclass(frozen=True)
class UidCredentials:
    user: str
    password: str = field(repr=False)

    @property
    def cred_type(self) -> CredType:
        return CredType.UID


@dataclass(frozen=True)
class SessionCredentials:
    cookie: str = field(repr=False)
    user: str = ""
    key: str = field(default="", repr=False)

    @property
    def cred_type(self) -> CredType:
        return CredType.SESSIONID


@dataclass(frozen=True)
class VStorageObjectSpec:
    """A First Class Disk: its id, the datastore moref it lives on, and optionally a snapshot id."""

    id: str
    datastore_moref: str
    ssid: str | None = None


@dataclass(frozen=True)
class ConnectParams:
    """VixDiskLibConnectParams. `vmx_spec` is `moref=vm-N` for a managed VM; None for local disks."""

    server_name: str | None = None
    credentials: UidCredentials | SessionCredentials | None = None
    vmx_spec: str | None = None
    thumbprint: str | None = None
    port: int = 443
    nfc_host_port: int = 902
    spec_type: SpecType = SpecType.VMX
    vstorage_object: VStorageObjectSpec | None = None

    def with_vm(self, moref: str) -> ConnectParams:
        return replace(self, vmx_spec=f"moref={moref}", spec_type=SpecType.VMX)

    def redacted(self) -> dict[str, object]:
        """What may appear in logs and call traces: never a password, cookie or key."""
        creds = self.credentials
        return {
            "serverName": self.server_name,
            "vmxSpec": self.vmx_spec,
            "thumbPrint": self.thumbprint,
            "port": self.port,
            "credType": creds.cred_type.name if creds else None,
            "userName": getattr(creds, "user", None),
            "specType": self.spec_type.name,
            "vStorageObject": self.vstorage_object.id if self.vstorage_object else None,
        }

    @property
    def vm_moref(self) -> str | None:
        if self.vmx_spec and self.vmx_spec.startswith("moref="):
            return self.vmx_spec.split("=", 1)[1]
        return None


@dataclass(frozen=True)
class Geometry:
    cylinders: int
    heads: int
    sectors: int


@dataclass(frozen=True)
class DiskInfo:
    """VixDiskLibInfo (capacity in sectors; the sector sizes exist from VDDK 7.0 on)."""

    capacity: int
    bios_geometry: Geometry = Geometry(0, 0, 0)
    phys_geometry: Geometry = Geometry(0, 0, 0)
    adapter_type: AdapterType = AdapterType.SCSI_LSILOGIC
    num_links: int = 1
    parent_file_name_hint: str | None = None
    uuid: str | None = None
    logical_sector_size: int | None = SECTOR_SIZE
    physical_sector_size: int | None = SECTOR_SIZE

    @property
    def capacity_bytes(self) -> int:
        return self.capacity * SECTOR_SIZE


@dataclass(frozen=True)
class Block:
    """One allocated extent from QueryAllocatedBlocks, in sectors."""

    offset: int
    length: int


def geometry_for(capacity_sectors: int) -> Geometry:
    """The BIOS geometry VMware reports for SCSI disks (255 heads, 63 sectors)."""
    cylinders = max(1, capacity_sectors // (255 * 63))
    return Geometry(min(cylinders, 65535), 255, 63)
