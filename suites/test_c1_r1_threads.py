"""C1 and R1: which threads call VixDiskLib, checked by the usage-rule checker on the recorded call trace.

C1: QueryAllocatedBlocks (and Close) run on the thread that opened the disk, never on read/write workers.
R1: every thread that calls VixDiskLib is created after InitEx (a Windows requirement since VDDK 7.0; the
checker holds every backup application to it). The reference backup's own trace must have no violation, and
deliberately wrong sequences must be reported naming the rule and its release-note item: the checker is
tested both ways.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from conformance.lab.targets import Target
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.verdicts.job import backed_up
from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.rules import Violation, check
from conformance.vsphere.session import VsphereSession, disks_of

CHUNK = 128  # sectors: 64 KiB, the smallest QueryAllocatedBlocks chunk


def reference_backup_violations(sequence: SequenceContext, app: BackupApplication, vm_name: str) -> list[Violation]:
    """Violations in the library's InitEx and the calls of one full backup and its cleanup (the session library
    records other tests' calls too)."""
    lib = sequence.lib
    since = max((r.seq for r in lib.recorder.records()), default=0)
    backed_up(sequence, app, vm_name, "nbdssl")
    trace = [r for r in lib.recorder.records() if r.seq > since or r.call == "VixDiskLib_InitEx"]
    return check(trace, lib.recorder.threads_before_init)


def in_thread(call: Callable[[], object], name: str) -> None:
    """Run `call` on a new worker thread and wait for it; its exception, if any, is raised here."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed back to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run, name=name)
    worker.start()
    worker.join(60)
    if errors:
        raise errors[0]


@dataclass
class OpenDisk:
    lib: VixDiskLib
    disk: Disk


@pytest.fixture
def open_disk(vixdisklib_factory: Callable[..., VixDiskLib], vddk_target: Target, vsphere: VsphereSession) -> OpenDisk:
    """A fresh library with a target VM's first disk open read-only (over NBDSSL) on this thread."""
    vm_name = vddk_target.target_vms.get("VMFS")
    if vm_name is None:
        pytest.skip(f"target {vddk_target.name} has no VM on a VMFS datastore")
    vm = vsphere.vm(vm_name)
    lib = vixdisklib_factory()
    connection = lib.connect_ex(vddk_target.connect_params(vm._moId), True, None, "nbdssl")
    return OpenDisk(lib, lib.open(connection, disks_of(vm)[0].file_name))


@pytest.mark.release_note("C1")
@pytest.mark.test_id(
    "C1-001",
    uuid="37347200-6f60-42ff-a03a-c95a7d07e13c",
    since="vddk-7.0.3-v1",
    description="Reference backup queries allocated blocks on the opening thread",
)
@pytest.mark.sequence("backup")
def test_reference_backup_queries_allocated_blocks_on_the_opening_thread(
    sequence: SequenceContext, backup_app: BackupApplication, fresh_vm: Callable[..., str]
) -> None:
    violations = reference_backup_violations(sequence, backup_app, fresh_vm("VMFS"))
    assert [str(v) for v in violations if v.item == "C1"] == []


@pytest.mark.release_note("C1")
@pytest.mark.test_id(
    "C1-002",
    uuid="b25777a4-a0be-45e4-a757-9bf9484883cb",
    since="vddk-7.0.3-v1",
    description="Checker reports disk calls off the opening thread as c1",
)
@pytest.mark.parametrize(
    ("worker_call", "rules"),
    [
        pytest.param(None, [], id="all-on-the-opening-thread"),
        pytest.param("query-allocated-blocks", ["qab-thread"], id="query-allocated-blocks-on-a-worker"),
        pytest.param("close", ["open-close-thread"], id="close-on-a-worker"),
    ],
)
def test_checker_reports_disk_calls_off_the_opening_thread_as_c1(
    open_disk: OpenDisk, worker_call: str | None, rules: list[str]
) -> None:
    lib, disk = open_disk.lib, open_disk.disk

    def query() -> object:
        return lib.query_allocated_blocks(disk, 0, CHUNK * 16, CHUNK)

    if worker_call == "query-allocated-blocks":
        in_thread(query, "backup-reader-0")
    else:
        query()
    if worker_call == "close":
        in_thread(lambda: lib.close(disk), "backup-reader-0")
    else:
        lib.close(disk)
    assert [(v.item, v.rule) for v in lib.violations() if v.item == "C1"] == [("C1", r) for r in rules]


@pytest.mark.release_note("R1", platform="windows")
@pytest.mark.test_id(
    "R1-001",
    uuid="f8482d62-a542-4bb3-9586-c7a6688732a0",
    since="vddk-7.0.3-v1",
    description="Reference backup creates its threads after init ex",
)
@pytest.mark.sequence("backup")
def test_reference_backup_creates_its_threads_after_init_ex(
    sequence: SequenceContext, backup_app: BackupApplication, fresh_vm: Callable[..., str]
) -> None:
    violations = reference_backup_violations(sequence, backup_app, fresh_vm("VMFS"))
    assert [str(v) for v in violations if v.item == "R1"] == []


@pytest.mark.release_note("R1", platform="windows")
@pytest.mark.test_id(
    "R1-002",
    uuid="63967c28-d035-436f-aac9-4ff777036228",
    since="vddk-7.0.3-v1",
    description="Checker reports a thread created before init ex as r1",
)
@pytest.mark.parametrize(
    ("created", "rules"),
    [
        pytest.param("before-init-ex", ["threads-after-init"], id="created-before-init-ex"),
        pytest.param("after-init-ex", [], id="created-after-init-ex"),
    ],
)
def test_checker_reports_a_thread_created_before_init_ex_as_r1(
    vixdisklib_factory: Callable[..., VixDiskLib], created: str, rules: list[str]
) -> None:
    made: list[VixDiskLib] = []
    go = threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        go.wait(60)
        try:
            made[0].list_transport_modes()
        except BaseException as exc:  # handed back to the test thread
            errors.append(exc)

    thread = threading.Thread(target=worker, name="backup-reader-0")
    if created == "before-init-ex":
        thread.start()
    made.append(vixdisklib_factory())  # InitEx
    if created == "after-init-ex":
        thread.start()
    go.set()
    thread.join(60)
    assert errors == []
    assert [(v.item, v.rule) for v in made[0].violations() if v.item == "R1"] == [("R1", r) for r in rules]
