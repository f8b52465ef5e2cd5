"""VMDK text descriptor: the subset of the format that ESXi writes and qemu-img understands.

A descriptor names the extent files that hold the data, the content ID (CID) that children check
against their `parentCID`, the parent's file (`parentFileNameHint`) and the disk database (ddb).
Unknown header and ddb keys are kept, so rewriting a descriptor (re-parenting) loses nothing.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LINK_DDB_KEYS",
    "NO_PARENT_CID",
    "SECTOR",
    "Descriptor",
    "ExtentLine",
    "api_uuid",
    "base_ddb",
    "new_cid",
    "new_ddb_uuid",
    "parent_hint_for",
]

#: parentCID of a disk that has no parent
NO_PARENT_CID = "ffffffff"
SECTOR = 512
#: ddb keys that describe one link (provisioning, content), so deltas do not inherit them
LINK_DDB_KEYS = ("thinProvisioned", "sim.provisioning", "longContentID")

_EXTENT_RE = re.compile(
    r"^(?P<access>RW|RDONLY|NOACCESS)\s+(?P<sectors>\d+)\s+(?P<kind>[A-Z]+)"
    r'(?:\s+"(?P<file>[^"]*)"(?:\s+(?P<offset>\d+))?)?\s*$'
)
_KEY_RE = re.compile(r"^(?P<key>[A-Za-z0-9_.]+)\s*=\s*(?P<value>.*)$")
# Header keys with a fixed place in the rendered file; everything else is kept in `extra`.
_HEADER_KEYS = ("version", "encoding", "CID", "parentCID", "isNativeSnapshot", "createType", "parentFileNameHint")


def new_cid() -> str:
    """A random content ID (8 hex digits, never the reserved ffffffff / fffffffe)."""
    while True:
        cid = secrets.token_hex(4)
        if cid not in ("ffffffff", "fffffffe"):
            return cid


def new_ddb_uuid() -> str:
    """A ddb.uuid the way ESXi writes it: "60 00 C2 9x xx xx xx xx-xx xx xx xx xx xx xx xx"."""
    raw = bytearray(secrets.token_bytes(16))
    raw[0:3] = b"\x60\x00\xc2"
    raw[3] = 0x90 | (raw[3] & 0x0F)
    text = [f"{byte:02x}" for byte in raw]
    text[2] = "C2"
    return " ".join(text[:8]) + "-" + " ".join(text[8:])


def api_uuid(ddb_uuid: str) -> str:
    """The vSphere API form of a ddb.uuid ("6000C29x-xxxx-xxxx-xxxx-xxxxxxxxxxxx"); "" when the
    descriptor has none (or an unreadable one, which must not make the disk unopenable)."""
    digits = re.sub(r"[^0-9A-Fa-f]", "", ddb_uuid)
    if len(digits) != 32:
        return ""
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def base_ddb(capacity: int, provisioning: str, cid: str) -> dict[str, str]:
    """The disk database ESXi writes for a new lsilogic disk."""
    sectors = capacity // SECTOR
    ddb = {
        "adapterType": "lsilogic",
        "geometry.cylinders": str(max(1, min(65535, sectors // (255 * 63)))),
        "geometry.heads": "255",
        "geometry.sectors": "63",
        "longContentID": secrets.token_hex(12) + cid,
        "uuid": new_ddb_uuid(),
        "virtualHWVersion": "13",
    }
    if provisioning == "thin":
        ddb["thinProvisioned"] = "1"
    elif provisioning == "eagerZeroedThick":
        ddb["sim.provisioning"] = "eagerZeroedThick"  # VMFS keeps this in metadata, not ddb
    return ddb


def parent_hint_for(path: Path, parent_path: Path) -> str:
    """parentFileNameHint of a delta at `path`: the bare name in the same folder, else absolute."""
    if parent_path.parent.resolve() == path.parent.resolve():
        return parent_path.name
    return str(parent_path.resolve())


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@dataclass
class ExtentLine:
    """One extent: `RW <sectors> FLAT "file" <offset>` or `RW <sectors> SPARSE "file"`."""

    access: str
    sectors: int
    kind: str
    filename: str
    offset: int = 0

    def render(self) -> str:
        """The descriptor line; FLAT extents carry a start offset, SPARSE ones do not."""
        line = f'{self.access} {self.sectors} {self.kind} "{self.filename}"'
        return f"{line} {self.offset}" if self.kind == "FLAT" else line


@dataclass
class Descriptor:
    """Parsed descriptor; `render()` writes the layout ESXi uses (header, extents, ddb)."""

    cid: str
    create_type: str
    extents: list[ExtentLine]
    parent_cid: str = NO_PARENT_CID
    parent_hint: str | None = None
    ddb: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        """Disk size in bytes (sum of the extents)."""
        return sum(extent.sectors for extent in self.extents) * SECTOR

    @classmethod
    def parse(cls, text: str, source: str = "descriptor") -> Descriptor:
        """Parse descriptor text; a malformed or incomplete file is a ValueError naming `source`."""
        header: dict[str, str] = {}
        ddb: dict[str, str] = {}
        extents: list[ExtentLine] = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            extent = _EXTENT_RE.match(line)
            if extent:
                extents.append(
                    ExtentLine(
                        access=extent["access"],
                        sectors=int(extent["sectors"]),
                        kind=extent["kind"],
                        filename=extent["file"] or "",
                        offset=int(extent["offset"] or 0),
                    )
                )
                continue
            pair = _KEY_RE.match(line)
            if not pair:
                raise ValueError(f"{source}: line {number} is not a descriptor entry: {raw!r}")
            key, value = pair["key"], _unquote(pair["value"])
            if key.startswith("ddb."):
                ddb[key[4:]] = value
            else:
                header[key] = value
        if "CID" not in header or "createType" not in header:
            raise ValueError(f"{source}: not a VMDK descriptor (CID or createType missing)")
        if not extents:
            raise ValueError(f"{source}: descriptor has no extent lines")
        extra = {k: v for k, v in header.items() if k not in _HEADER_KEYS}
        for key in ("version", "encoding", "isNativeSnapshot"):
            if key in header:
                extra[key] = header[key]
        return cls(
            cid=header["CID"].lower(),
            create_type=header["createType"],
            extents=extents,
            parent_cid=header.get("parentCID", NO_PARENT_CID).lower(),
            parent_hint=header.get("parentFileNameHint"),
            ddb=ddb,
            extra=extra,
        )

    def render(self) -> str:
        """Descriptor text in ESXi's layout (CID before parentCID: qemu finds them by search)."""
        lines = [
            "# Disk DescriptorFile",
            f"version={self.extra.get('version', '1')}",
            f'encoding="{self.extra.get("encoding", "UTF-8")}"',
            f"CID={self.cid}",
            f"parentCID={self.parent_cid}",
        ]
        if "isNativeSnapshot" in self.extra:
            lines.append(f'isNativeSnapshot="{self.extra["isNativeSnapshot"]}"')
        lines.append(f'createType="{self.create_type}"')
        if self.parent_hint is not None:
            lines.append(f'parentFileNameHint="{self.parent_hint}"')
        for key, value in self.extra.items():
            if key not in ("version", "encoding", "isNativeSnapshot"):
                lines.append(f'{key}="{value}"')
        lines += ["", "# Extent description"]
        lines += [extent.render() for extent in self.extents]
        lines += ["", "# The Disk Data Base", "#DDB", ""]
        lines += [f'ddb.{key} = "{value}"' for key, value in sorted(self.ddb.items())]
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, path: Path) -> Descriptor:
        """Read and parse a descriptor file (a binary file is refused with a clear message)."""
        raw = path.read_bytes()
        if raw[:4] in (b"KDMV", b"COWD"):
            raise ValueError(f"{path}: is a sparse extent, not a descriptor file")
        return cls.parse(raw.decode("utf-8"), str(path))

    def create(self, path: Path) -> None:
        """Write a new descriptor; refuses to overwrite an existing file."""
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(self.render())
            handle.flush()
            os.fsync(handle.fileno())

    def replace(self, path: Path) -> None:
        """Rewrite an existing descriptor atomically (a reader never sees half a file)."""
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(self.render())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
