"""C3: the parent handle after VixDiskLib_Attach.

A hosted (local) chain — a base disk and a child delta made in the test's folder — is opened on a local
connection (no server), the parent is attached to the child, and then the parent handle is closed. From
VDDK 6.7.3 on that Close is harmless (the library marked the parent as owned by the child), reads through
the child still see the parent's data, and closing the child releases both handles. Before 6.7.3 closing the
parent after a successful Attach is an error: every test here closes the parent, so each one detects it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.sim.storage.vmdk import VirtualDiskFile
from conformance.symptoms import symptom
from conformance.vixdisklib.api import Connection, Disk, VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
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


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Path, Path]:
    """(base, delta) hosted disks: the base holds PARENT_DATA at 0 and 128 KiB, the delta CHILD_DATA and
    OVERWRITE."""
    base = VirtualDiskFile.create(tmp_path / "parent.vmdk", 4 * MiB)
    base.write(0, PARENT_DATA)
    base.write(128 * KiB, PARENT_DATA)
    child = VirtualDiskFile.create_delta(tmp_path / "parent-000001.vmdk", base)
    child.write(64 * KiB, CHILD_DATA)
    child.write(128 * KiB, OVERWRITE)
    child.close()
    base.close()
    return base.path, child.path


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


@pytest.mark.test_id("C3-001")
def test_closing_the_parent_after_attach_is_harmless(attached: Attached) -> None:
    close_parent(attached)


@pytest.mark.test_id("C3-002")
@pytest.mark.parametrize("region", list(THROUGH_CHILD))
def test_reads_through_the_child_see_the_chain_after_the_parent_is_closed(attached: Attached, region: str) -> None:
    offset, data = THROUGH_CHILD[region]
    close_parent(attached)
    assert attached.lib.read(attached.child, offset // SECTOR_SIZE, len(data) // SECTOR_SIZE) == data


@pytest.mark.test_id("C3-003")
@pytest.mark.parametrize("handle", ["parent", "child"])
def test_closing_the_child_releases_both_handles(attached: Attached, handle: str) -> None:
    lib = attached.lib
    close_parent(attached)
    lib.close(attached.child)
    released = attached.parent if handle == "parent" else attached.child
    with pytest.raises(VixError) as caught:
        lib.read(released, 0, 1)
    assert caught.value.code == VixCode.INVALID_HANDLE
