"""C3: the parent handle after VixDiskLib_Attach.

A hosted (local) chain — a base disk and a child delta made in the test's folder — is opened on a local
connection (no server), the parent is attached to the child, and then the parent handle is closed. From
VDDK 6.7.3 on that Close is harmless (the library marked the parent as owned by the child), reads through
the child still see the parent's data, and closing the child releases both handles. Before 6.7.3 closing the
parent after a successful Attach is an error: every test here closes the parent, so each one detects it.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.vixdisklib.api import Connection, Disk, VixDiskLib
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.types import SECTOR_SIZE, ConnectParams, OpenFlags

pytestmark = [pytest.mark.release_note("C3")]

KiB, MiB = 1024, 2**20
PARENT_DATA = b"\x11" * 64 * KiB  # at 0, written into the base disk only
CHILD_DATA = b"\x22" * 64 * KiB  # at 64 KiB, written into the delta only
OVERWRITE = b"\x33" * 64 * KiB  # at 128 KiB: the base holds PARENT_DATA there, the delta this
#: byte offset -> what a read through the child must return there
THROUGH_CHILD = {
    "parent-only": (0, PARENT_DATA),
    "child-only": (64 * KiB, CHILD_DATA),
    "child-over-parent": (128 * KiB, OVERWRITE),
    "never-written": (1 * MiB, bytes(64 * KiB)),
}


@dataclass
class Attached:
    lib: VixDiskLib
    connection: Connection
    parent: Disk
    child: Disk


GRAIN = 64 * KiB  # the delta's grain: CHILD_DATA and OVERWRITE are one grain each, grain aligned
CAPACITY = 4 * MiB
DESCRIPTOR = """# Disk DescriptorFile
version=1
CID={cid:08x}
parentCID={parent_cid:08x}
createType="{create_type}"
{hint}
# Extent description
RW {sectors} {kind} "{extent}"{offset}
"""


def _descriptor(path: Path, cid: int, parent_cid: int, create_type: str, kind: str, extent: str, hint: str) -> None:
    offset = " 0" if kind == "FLAT" else ""
    text = DESCRIPTOR.format(
        cid=cid, parent_cid=parent_cid, create_type=create_type, hint=hint, sectors=CAPACITY // SECTOR_SIZE,
        kind=kind, extent=extent, offset=offset,
    )  # fmt: skip
    path.write_text(text)


def _sparse_extent(path: Path, grains: dict[int, bytes]) -> None:
    """A hosted sparse extent (version 1, one grain table) holding `grains` (byte offset -> one grain)."""
    grain_sectors, gtes = GRAIN // SECTOR_SIZE, 512
    overhead = grain_sectors  # header, grain directory (sector 1) and the one grain table (sectors 2-5)
    header = struct.pack(
        "<4sIIQQQQIQQQB4sH", b"KDMV", 1, 1, CAPACITY // SECTOR_SIZE, grain_sectors, 0, 0, gtes, 0, 1, overhead,
        0, b"\n \r\n", 0,
    )  # fmt: skip
    table = [0] * gtes
    data = bytearray()
    for index, offset in enumerate(sorted(grains)):
        table[offset // GRAIN] = overhead + index * grain_sectors
        data += grains[offset]
    image = bytearray(overhead * SECTOR_SIZE)
    image[: len(header)] = header
    image[SECTOR_SIZE : SECTOR_SIZE + 4] = struct.pack("<I", 2)
    image[2 * SECTOR_SIZE : 2 * SECTOR_SIZE + 4 * gtes] = struct.pack(f"<{gtes}I", *table)
    path.write_bytes(bytes(image) + bytes(data))


def hosted_chain(folder: Path) -> tuple[Path, Path]:
    """(base, delta): a flat base holding PARENT_DATA at 0 and 128 KiB, a sparse delta holding CHILD_DATA at
    64 KiB and OVERWRITE at 128 KiB (what a hosted snapshot of the base would hold after those writes)."""
    base, delta = folder / "parent.vmdk", folder / "parent-000001.vmdk"
    flat = bytearray(CAPACITY)
    flat[0 : len(PARENT_DATA)] = PARENT_DATA
    flat[128 * KiB : 128 * KiB + len(PARENT_DATA)] = PARENT_DATA
    (folder / "parent-flat.vmdk").write_bytes(bytes(flat))
    _descriptor(base, 0x1234ABCD, 0xFFFFFFFF, "monolithicFlat", "FLAT", "parent-flat.vmdk", "")
    _sparse_extent(folder / "parent-000001-delta.vmdk", {64 * KiB: CHILD_DATA, 128 * KiB: OVERWRITE})
    hint = f'parentFileNameHint="{base.name}"'
    _descriptor(delta, 0x5678EF01, 0x1234ABCD, "twoGbMaxExtentSparse", "SPARSE", "parent-000001-delta.vmdk", hint)
    return base, delta


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path]:
    return hosted_chain(tmp_path)


@pytest.fixture
def attached(vixdisklib: VixDiskLib, chain: tuple[Path, Path]) -> Iterator[Attached]:
    """Parent and child open read-only on a local connection, the parent attached to the child."""
    lib = vixdisklib
    connection = lib.connect_ex(ConnectParams(), True)
    opened: list[Disk] = []
    try:
        for path in chain:
            opened.append(lib.open(connection, str(path), OpenFlags.READ_ONLY))
        parent, child = opened
        lib.attach(parent, child)
        yield Attached(lib, connection, parent, child)
    finally:
        for disk in reversed(opened):  # child first: that releases an attached parent too
            if not disk.closed:
                # the affected builds refuse the parent after Attach (closing the child released it)
                with contextlib.suppress(VixError):
                    lib.close(disk)
        lib.disconnect(connection)


def close_parent(attached: Attached) -> None:
    """Close the parent after Attach; C3's documented symptom (builds before 6.7.3): that Close is an error."""
    try:
        attached.lib.close(attached.parent)
    except VixError as exc:
        if exc.call == "VixDiskLib_Close":
            symptom("C3", "closing the parent after Attach is an error", observed=str(exc))
        raise


@pytest.mark.test_id(
    "C3-001",
    uuid="ad4a5f19-db14-40ba-804d-501af553d396",
    since="vddk-7.0.3-v1",
    description="Closing the parent after attach is harmless",
)
def test_closing_the_parent_after_attach_is_harmless(attached: Attached) -> None:
    close_parent(attached)


@pytest.mark.test_id(
    "C3-002",
    uuid="03478f39-45f9-4b08-b28d-d00868829236",
    since="vddk-7.0.3-v1",
    description="Reads through the child see the chain after the parent is closed",
)
@pytest.mark.parametrize("region", list(THROUGH_CHILD))
def test_reads_through_the_child_see_the_chain_after_the_parent_is_closed(attached: Attached, region: str) -> None:
    offset, data = THROUGH_CHILD[region]
    close_parent(attached)
    assert attached.lib.read(attached.child, offset // SECTOR_SIZE, len(data) // SECTOR_SIZE) == data


@pytest.mark.test_id(
    "C3-003",
    uuid="493fd79b-bae3-45e6-bdc6-522507fe63dd",
    since="vddk-7.0.3-v1",
    description="Closing the child releases both handles",
)
@pytest.mark.parametrize("released", ["parent", "child"])
def test_closing_the_child_releases_both_handles(attached: Attached, chain: tuple[Path, Path], released: str) -> None:
    """Closing the child gives both files back: each opens again for writing (a handle still holding it would
    keep it locked), and a write through the new handle reads back. No call touches a closed handle."""
    lib = attached.lib
    close_parent(attached)
    lib.close(attached.child)
    path = chain[0] if released == "parent" else chain[1]
    writer = lib.connect_ex(ConnectParams(), False)
    try:
        with lib.opened(writer, str(path), OpenFlags(0)) as disk:
            lib.write(disk, 2 * MiB // SECTOR_SIZE, b"\x44" * SECTOR_SIZE)
            assert lib.read(disk, 2 * MiB // SECTOR_SIZE, 1) == b"\x44" * SECTOR_SIZE
    finally:
        lib.disconnect(writer)
