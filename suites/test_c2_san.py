"""C2: no SAN transport on vSAN or vVol datastores.

Matrix: datastore type {VMFS, NFS, vsan, VVOL} x transport list {"san", "san:nbdssl"}, each cell on a snapshot
of the target's VM on that datastore type, opened read-only from the target's SAN-attached (physical) proxy.
Since VDDK 6.7 "san" alone is refused at Open on vSAN and vVol with a clear error, and "san:nbdssl" falls
back: GetTransportMode says nbdssl and the disk reads. Builds before 6.7 accept SAN there at Open and fail
at the first I/O (affected behaviour).

The VMFS and NFS cells are controls (SAN works on VMFS block storage; NFS is not block storage and never
offered SAN): they behave the same on every build, so they are linked to C4 (a supported build and server
pair works) rather than to C2, whose cells are strict expected failures on the builds before 6.7.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.knowledge.transports import reach
from conformance.lab.targets import PHYSICAL_PROXY, Target
from conformance.plugin.fixtures import require
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.types import ConnectParams, OpenFlags
from conformance.vsphere.session import VsphereSession, disks_of

pytestmark = [pytest.mark.release_note("C2")]

SAN_REFUSED = ("vsan", "VVOL")  # what C2 is about
CONTROL = [pytest.mark.release_note("C4")]  # same outcome on every build


def cells(datastore_types: tuple[str, ...]) -> list[object]:
    return [pytest.param(d, marks=CONTROL if d not in SAN_REFUSED else (), id=d) for d in datastore_types]


@dataclass(frozen=True)
class SnapshotDisk:
    params: ConnectParams
    snapshot: str  # moref
    path: str


@pytest.fixture(scope="module")
def snapshot_disks(vddk_target: Target, vsphere: VsphereSession) -> Iterator[Callable[[str], SnapshotDisk]]:
    """`of(datastore_type)`: the first disk of the target's VM on that datastore type, through a snapshot taken
    once for this module (removed at the end)."""
    made: dict[str, tuple[object, SnapshotDisk]] = {}

    def of(datastore_type: str) -> SnapshotDisk:
        if datastore_type not in made:
            name = vddk_target.target_vms.get(datastore_type)
            if name is None:
                pytest.skip(f"target {vddk_target.name} has no VM on a {datastore_type} datastore")
            vm = vsphere.vm(name)
            snapshot = vsphere.create_snapshot(vm, "vddk-conformance-c2", quiesce=False)
            disk = SnapshotDisk(vddk_target.connect_params(vm._moId), snapshot._moId, disks_of(snapshot)[0].file_name)
            made[datastore_type] = (snapshot, disk)
        return made[datastore_type][1]

    yield of
    for datastore_type, (snapshot, _) in made.items():
        vsphere.remove_snapshot(snapshot, f"vddk-conformance-c2 on {datastore_type}")


@pytest.fixture
def san_disk(vddk_target: Target, snapshot_disks: Callable[[str], SnapshotDisk], datastore_type: str) -> SnapshotDisk:
    """The cell's disk; SAN is only meaningful from a SAN-attached proxy."""
    require(vddk_target, PHYSICAL_PROXY)
    return snapshot_disks(datastore_type)


@pytest.mark.test_id(
    "C2-001",
    uuid="5437e4a8-3487-4b09-bea0-1524f72725a6",
    since="vddk-7.0.3-v1",
    description="San alone fails at open with a clear error where san cannot reach",
)
@pytest.mark.parametrize("datastore_type", cells(("vsan", "VVOL", "NFS")))
def test_san_alone_fails_at_open_with_a_clear_error_where_san_cannot_reach(
    vixdisklib: VixDiskLib, san_disk: SnapshotDisk, datastore_type: str
) -> None:
    assert not reach("san", datastore_type).allowed
    with vixdisklib.connected(san_disk.params, True, san_disk.snapshot, "san") as connection:
        try:
            vixdisklib.close(vixdisklib.open(connection, san_disk.path, OpenFlags.READ_ONLY))
        except VixError as exc:
            caught = exc
        else:
            symptom("C2", f"Open over SAN alone succeeded on {datastore_type}: not rejected up front")
    assert caught.call == "VixDiskLib_Open"
    text = caught.text
    assert "SAN" in text and datastore_type in text  # the message names the refused transport and the datastore


@pytest.mark.test_id(
    "C2-002",
    uuid="19abea10-b911-45b2-a31a-4100373d81a1",
    since="vddk-7.0.3-v1",
    description="San then nbdssl falls back to nbdssl and reads",
)
@pytest.mark.parametrize("datastore_type", cells(("vsan", "VVOL", "NFS")))
def test_san_then_nbdssl_falls_back_to_nbdssl_and_reads(
    vixdisklib: VixDiskLib, san_disk: SnapshotDisk, datastore_type: str
) -> None:
    with (
        vixdisklib.connected(san_disk.params, True, san_disk.snapshot, "san:nbdssl") as connection,
        vixdisklib.opened(connection, san_disk.path, OpenFlags.READ_ONLY) as disk,
    ):
        mode = vixdisklib.get_transport_mode(disk)
        if mode == "san" and datastore_type in SAN_REFUSED:
            symptom("C2", f"Open over san:nbdssl chose SAN on {datastore_type}: not rejected up front", observed=mode)
        assert mode == "nbdssl"
        vixdisklib.read(disk, 0, 8)


@pytest.mark.test_id(
    "C2-003",
    uuid="4bee171b-bffe-4ed1-8417-1ce58c44f047",
    since="vddk-7.0.3-v1",
    description="San works on vmfs",
)
@pytest.mark.parametrize("modes", ["san", "san:nbdssl"])
@pytest.mark.parametrize("datastore_type", cells(("VMFS",)))
def test_san_works_on_vmfs(vixdisklib: VixDiskLib, san_disk: SnapshotDisk, datastore_type: str, modes: str) -> None:
    assert reach("san", datastore_type).allowed
    with (
        vixdisklib.connected(san_disk.params, True, san_disk.snapshot, modes) as connection,
        vixdisklib.opened(connection, san_disk.path, OpenFlags.READ_ONLY) as disk,
    ):
        assert vixdisklib.get_transport_mode(disk) == "san"
        vixdisklib.read(disk, 0, 8)
