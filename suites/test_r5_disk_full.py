"""R5: a full datastore during VixDiskLib_Write.

A restore writes onto a fresh VM's data disk on a VMFS datastore over each write transport that can reach
it; after a first write succeeds, the target's fault injection leaves the datastore too little free space
and the next, larger Write must fail with VIX_E_DISK_FULL (8) and a message that says so — never VIX_E_FAIL
(1, "Unknown error"), what builds before 7.0.3 return. The data written before the failure reads back
intact, and the reference application's restore onto a datastore that is too small reports the failure
(it raises, naming the full disk) instead of success.

Each test asserts one consequence of the fixed behaviour; the aftermath tests first establish that the
failure was reported as disk full, so that every test here detects the affected builds (strict xfail).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.knowledge.transports import WRITE_TRANSPORTS, reach
from conformance.lab.targets import PHYSICAL_PROXY, Target
from conformance.plugin.fixtures import require
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.verdicts.job import backed_up
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import SECTOR_SIZE
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession, disks_of
from conformance.workloads import apply

pytestmark = [pytest.mark.release_note("R5")]

KiB, MiB = 1024, 2**20
DATASTORE_TYPE = "VMFS"
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds
BEFORE = os.urandom(256 * KiB)  # written at sector 0 while there is room
TOO_BIG = os.urandom(4 * MiB)  # written at 1 MiB once only FREE_SPACE is left
FREE_SPACE = 128 * KiB
#: guest-written data the restore tests back up (more than FREE_SPACE_FOR_RESTORE)
GUEST_WRITES = [(0, os.urandom(2 * MiB)), (8 * MiB, os.urandom(2 * MiB))]
FREE_SPACE_FOR_RESTORE = 1 * MiB
TRANSPORTS = [t for t in WRITE_TRANSPORTS if reach(t, DATASTORE_TYPE).allowed]


@dataclass
class FullWrite:
    transport: str  # what GetTransportMode said
    error: VixError | None  # what the Write on the full datastore raised
    read_back: bytes  # the BEFORE region, read after the failure


def reachable(target: Target, transport: str) -> None:
    """Skip what the target cannot do: SAN needs a SAN-attached proxy, HotAdd a proxy VM."""
    if transport == "san":
        require(target, PHYSICAL_PROXY)
    if transport == "hotadd" and target.default_proxy is None:
        pytest.skip(f"target {target.name} has no HotAdd proxy VM")


@pytest.fixture
def datastore(vddk_target: Target) -> str:
    name = vddk_target.datastore_of_type(DATASTORE_TYPE)
    if name is None:
        pytest.skip(f"target {vddk_target.name} has no {DATASTORE_TYPE} datastore")
    return name


@pytest.fixture
def full_write(
    vddk_target: Target,
    vsphere: VsphereSession,
    vixdisklib: VixDiskLib,
    fresh_vm: Callable[..., str],
    controls: Any,
    datastore: str,
    transport: str,
) -> FullWrite:
    """BEFORE written to a powered-off fresh VM's data disk, then TOO_BIG with only FREE_SPACE left."""
    reachable(vddk_target, transport)
    vm = vsphere.vm(fresh_vm(DATASTORE_TYPE, 64 * MiB))
    vsphere.power_off(vm)
    target = disks_of(vm)[DATA_DISK]
    lib = vixdisklib
    error = None
    with (
        lib.connected(vddk_target.connect_params(vm._moId), False, None, transport) as connection,
        lib.opened(connection, target.file_name, 0) as disk,
    ):
        lib.write(disk, 0, BEFORE)
        controls.datastore_free_space(datastore, FREE_SPACE)
        try:
            lib.write(disk, MiB // SECTOR_SIZE, TOO_BIG)
        except VixError as exc:
            error = exc
        finally:
            controls.datastore_free_space(datastore, None)
        read_back = lib.read(disk, 0, len(BEFORE) // SECTOR_SIZE)
        return FullWrite(lib.get_transport_mode(disk), error, read_back)


def disk_full(error: VixError | None) -> VixError:
    """The Write's error, which must be VIX_E_DISK_FULL (not VIX_E_FAIL, not a success)."""
    assert error is not None, "Write on a full datastore succeeded"
    unknown_error(error)
    assert error.code == VixCode.DISK_FULL, f"expected VIX_E_DISK_FULL (8), got {error}"
    return error


def unknown_error(error: VixError) -> None:
    """R5's documented symptom: the full datastore came back as VIX_E_FAIL (1), not VIX_E_DISK_FULL (8)."""
    if error.code == VixCode.FAIL:
        symptom(
            "R5", "Write on a full datastore failed with VIX_E_FAIL instead of VIX_E_DISK_FULL", observed=str(error)
        )


@pytest.mark.test_id(
    "R5-001",
    uuid="3d0e35c3-f546-4314-8f65-0bcc54d63a5d",
    since="vddk-7.0.3-v1",
    description="Write on a full datastore fails with vix e disk full",
)
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_write_on_a_full_datastore_fails_with_vix_e_disk_full(full_write: FullWrite, transport: str) -> None:
    assert full_write.transport == transport
    error = disk_full(full_write.error)
    assert (error.code, error.call) == (VixCode.DISK_FULL, "VixDiskLib_Write")


@pytest.mark.test_id(
    "R5-002",
    uuid="474352b4-dea2-426a-969e-070a9dc1c496",
    since="vddk-7.0.3-v1",
    description="The disk full error says so",
)
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_disk_full_error_says_so(full_write: FullWrite, transport: str) -> None:
    error = full_write.error
    assert error is not None, "Write on a full datastore succeeded"
    unknown_error(error)
    assert "VIX_E_DISK_FULL (8)" in str(error)
    assert error.text != "Unknown error" and ("full" in error.text.lower() or "space" in error.text.lower())


@pytest.mark.test_id(
    "R5-003",
    uuid="2cd93709-6369-4220-bed1-774f1161895e",
    since="vddk-7.0.3-v1",
    description="Data written before the disk full failure is intact",
)
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_data_written_before_the_disk_full_failure_is_intact(full_write: FullWrite, transport: str) -> None:
    disk_full(full_write.error)
    assert full_write.read_back == BEFORE


def vix_errors(exc: BaseException | None) -> list[VixError]:
    """Every VixError in an exception's cause/context chain (a partner app may wrap the library's error)."""
    found: list[VixError] = []
    while exc is not None and len(found) < 32:
        if isinstance(exc, VixError):
            found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


@pytest.mark.test_id(
    "R5-004",
    uuid="3f87026a-1806-477d-beb7-eb02b9238ca2",
    since="vddk-7.0.3-v1",
    description="A restore onto a full datastore reports failure not success",
)
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_restore_onto_a_full_datastore_reports_failure_not_success(
    vddk_target: Target,
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    controls: Any,
    datastore: str,
    transport: str,
) -> None:
    reachable(vddk_target, transport)
    source = fresh_vm(DATASTORE_TYPE, 64 * MiB)
    apply(guest(source), DATA_DISK, GUEST_WRITES)
    backup = backed_up(sequence, backup_app, source, transport)
    controls.datastore_free_space(datastore, FREE_SPACE_FOR_RESTORE)
    with pytest.raises(Exception) as caught:  # any failure will do, as long as it is no success
        backup_app.restore(sequence, backup, transport, vm_name=sequence.resources.name("restored"))
    errors = vix_errors(caught.value)
    codes = [e.code for e in errors]
    if VixCode.DISK_FULL not in codes and VixCode.FAIL in codes:
        unknown_error(next(e for e in errors if e.code == VixCode.FAIL))
    assert VixCode.DISK_FULL in codes, f"the restore failed without naming the full disk: {caught.value!r}"
    assert VixCode.FAIL not in codes
