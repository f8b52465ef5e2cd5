"""D3: NFC memory of a host is finite.

Every NBD/NBDSSL request holds a buffer of its size (plus a small header) on the host's NFC server for as long
as it runs, and all sessions on one host share its budget (hostd config.xml nfcsvc maxMemory, 48 MB by default
on vSphere 6.x). Parallel sessions with large requests fail with "Failed to allocate the requested N bytes".

The probe measures, through the harness's own VixDiskLib, which parallelism (sessions, each its own Open and
NFC connection) and request size the target accepts, and attaches the table to the report; wherever a request
fails, it must fail as documented (that text, in the error or the library's log), never hang or return other
bytes. With the host's budget lowered (`nfc-memory-limit`), a request the budget cannot hold must be refused so,
and the backup application backing up several disks at once must stay inside the budget or recover: the
harness's own comparison of every disk's backup image with what the guest wrote proves nothing was lost.
Large variants (up to 8 sessions, 24 MiB requests, six disks, nbd too) run under --matrix full.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.lab.targets import NFC_MEMORY_LIMIT, Target
from conformance.plugin.fixtures import require
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up
from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.types import SECTOR_SIZE, OpenFlags
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession, disks_of
from conformance.workloads import Write, apply, expected

pytestmark = [pytest.mark.release_note("D3")]

MiB = 2**20
NFC_TEXT = "Failed to allocate the requested"
DATA_DISK = 64 * MiB
#: a probe read that has not answered after this long is a hang
HANG_SECONDS = 120.0
#: (sessions, request sizes) the probe crosses
DEFAULT_PROBE = ((1, 4), (2 * MiB, 16 * MiB))
FULL_PROBE = ((1, 2, 4, 8), (MiB, 2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 24 * MiB))
#: the host budget the backup test sets: three disks read at once in 1 MiB requests overrun it, and an 8 MiB
#: request never fits
LOWERED_BUDGET = 5 * MiB // 2


def probe_cases(matrix: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return FULL_PROBE if matrix == "full" else DEFAULT_PROBE


def documented(error: VixError, log_text: str) -> bool:
    """The failure NFC documents: its text in the error, or in the library's log (VDDK logs the NFC line)."""
    return NFC_TEXT in error.text or NFC_TEXT in log_text


@dataclass
class Outcome:
    """What the sessions of one (sessions, request size) cell saw."""

    sessions: int
    request: int
    ok: int = 0
    refused: int = 0
    problems: list[str] = field(default_factory=list)

    def cell(self) -> str:
        text = f"{self.ok} ok" + (f", {self.refused} refused" if self.refused else "")
        return text + (f", {len(self.problems)} wrong" if self.problems else "")


@dataclass
class ProbeDisk:
    vm: str
    data: bytes  # what the guest wrote at offset 0
    host: str


@pytest.fixture
def nfc_budget(vddk_target: Target) -> Iterator[Callable[[str, int], None]]:
    """nfc_budget(host, bytes): the host's NFC memory budget for this test (the default again afterwards). Needs
    NFC_MEMORY_LIMIT: a lab that cannot change hostd's configuration skips naming it."""
    require(vddk_target, NFC_MEMORY_LIMIT)
    changed: set[str] = set()

    def lower(host: str, max_bytes: int) -> None:
        changed.add(host)
        vddk_target.controls.nfc_max_memory(host, max_bytes)

    yield lower
    for host in changed:
        vddk_target.controls.nfc_max_memory(host, None)


@pytest.fixture
def probe_disk(
    request: pytest.FixtureRequest,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    vsphere: VsphereSession,
) -> ProbeDisk:
    """A fresh VM whose data disk starts with random data as long as the probe's largest request."""
    name = fresh_vm("VMFS", DATA_DISK)
    data = random.Random("d3-probe").randbytes(max(probe_cases(request.config.option.matrix)[1]))
    apply(guest(name), 1, [(0, data)])
    return ProbeDisk(name, data, str(vsphere.vm(name).runtime.host.name))


@pytest.fixture
def open_sessions(sequence: SequenceContext, probe_disk: ProbeDisk) -> Iterator[Callable[[int], list[Disk]]]:
    """open_sessions(n): n handles of the probe VM's data disk, as a snapshot of it holds it, over nbdssl."""
    vsphere, lib, resources = sequence.vsphere, sequence.lib, sequence.resources
    vm = vsphere.vm(probe_disk.vm)
    name = resources.name("d3-probe")
    snapshot = vsphere.create_snapshot(vm, name, quiesce=False)
    resources.add("snapshot", name, lambda: vsphere.remove_snapshot(snapshot, name))
    params = sequence.target.connect_params(vm._moId)
    connection = lib.connect_ex(params, True, snapshot._moId, "nbdssl")
    resources.add("connection", name, lambda: lib.disconnect(connection))
    path = disks_of(snapshot)[1].file_name
    handles: list[Disk] = []

    def make(count: int) -> list[Disk]:
        while len(handles) < count:  # opened on the test's thread, read on workers made after InitEx (C1, R1)
            handles.append(lib.open(connection, path, OpenFlags.READ_ONLY))
        return handles[:count]

    yield make
    for handle in handles:
        lib.close(handle)


def measure(lib: VixDiskLib, handles: list[Disk], request: int, want: bytes, log_text: Callable[[], str]) -> Outcome:
    """Every session reads [0, request) at the same moment; each answer is the data, or the documented refusal."""
    outcome = Outcome(len(handles), request)
    digest = hashlib.sha256(want[:request]).hexdigest()
    start = threading.Barrier(len(handles))

    def read(handle: Disk) -> bytes:
        start.wait(timeout=HANG_SECONDS)
        return lib.read(handle, 0, request // SECTOR_SIZE)

    with ThreadPoolExecutor(max_workers=len(handles), thread_name_prefix="d3-probe") as pool:
        futures = [pool.submit(read, handle) for handle in handles]
        for future in futures:
            try:
                data = future.result(timeout=HANG_SECONDS)
            except FutureTimeout:
                outcome.problems.append(f"a {request} byte read did not answer in {HANG_SECONDS:.0f} s")
            except VixError as exc:
                if documented(exc, log_text()):
                    outcome.refused += 1
                else:
                    outcome.problems.append(f"failed otherwise than documented: {exc}")
            else:
                if hashlib.sha256(data).hexdigest() == digest:
                    outcome.ok += 1
                else:
                    outcome.problems.append(f"a {request} byte read returned other bytes than the guest wrote")
    return outcome


def table(outcomes: list[Outcome], sizes: tuple[int, ...]) -> str:
    head = "sessions \\ request | " + " | ".join(f"{s // MiB} MiB" for s in sizes)
    rows = [head, "---|" + "---|" * len(sizes)]
    for sessions in sorted({o.sessions for o in outcomes}):
        cells = {o.request: o.cell() for o in outcomes if o.sessions == sessions}
        rows.append(f"{sessions} | " + " | ".join(cells.get(s, "-") for s in sizes))
    return "\n".join(rows)


def attach(name: str, text: str, data: Any) -> None:
    import allure

    allure.attach(text, name=f"{name} (table)", attachment_type=allure.attachment_type.TEXT)
    allure.attach(json.dumps(data, indent=2), name=name, attachment_type=allure.attachment_type.JSON)


def probe(
    lib: VixDiskLib,
    open_sessions: Callable[[int], list[Disk]],
    want: bytes,
    cases: tuple[tuple[int, ...], tuple[int, ...]],
    caplog: pytest.LogCaptureFixture,
) -> list[Outcome]:
    outcomes = []
    # WARNING: a C library has only log, warning and panic callbacks, so through ctypes the NFC line is a warning
    with caplog.at_level(logging.WARNING, logger="conformance.vixdisklib"):
        for sessions in cases[0]:
            handles = open_sessions(sessions)
            for request in cases[1]:
                outcomes.append(measure(lib, handles, request, want, lambda: caplog.text))
    return outcomes


@pytest.mark.test_id(
    "D3-001",
    uuid="b21f4c46-9992-4d90-8609-7fd106f41e0e",
    since="vddk-7.0.3-v2",
    description="Probe parallel sessions and request sizes fail only as documented",
)
def test_probe_parallel_sessions_and_request_sizes_fail_only_as_documented(
    request: pytest.FixtureRequest,
    sequence: SequenceContext,
    probe_disk: ProbeDisk,
    open_sessions: Callable[[int], list[Disk]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cases = probe_cases(request.config.option.matrix)
    outcomes = probe(sequence.lib, open_sessions, probe_disk.data, cases, caplog)
    text = table(outcomes, cases[1])
    attach(
        f"NFC parallelism x request size on {probe_disk.host}",
        text,
        [{"sessions": o.sessions, "request": o.request, "ok": o.ok, "refused": o.refused} for o in outcomes],
    )
    problems = [p for o in outcomes for p in o.problems]
    assert problems == [], f"{problems}\n{text}"
    assert any(o.ok for o in outcomes), text  # the smallest setting reads at all


@pytest.mark.test_id(
    "D3-002",
    uuid="f0f78a84-6362-4bd4-b386-1b77ea17a5ac",
    since="vddk-7.0.3-v2",
    description="A request over the lowered host budget is refused with the documented text",
)
def test_a_request_over_the_lowered_host_budget_is_refused_with_the_documented_text(
    nfc_budget: Callable[[str, int], None],
    sequence: SequenceContext,
    probe_disk: ProbeDisk,
    open_sessions: Callable[[int], list[Disk]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    nfc_budget(probe_disk.host, 3 * MiB)
    outcomes = probe(sequence.lib, open_sessions, probe_disk.data, ((1, 2), (MiB, 4 * MiB)), caplog)
    by_cell = {(o.sessions, o.request): o for o in outcomes}
    assert [p for o in outcomes for p in o.problems] == []
    assert (by_cell[1, MiB].ok, by_cell[2, MiB].ok) == (1, 2)  # 2 x (1 MiB + header) fits in 3 MiB
    assert (by_cell[1, 4 * MiB].refused, by_cell[2, 4 * MiB].refused) == (1, 2)  # one 4 MiB request never fits
    assert f"{NFC_TEXT} {4 * MiB + 24} bytes" in caplog.text  # N counts NFC's 24-byte header


# --- the backup application under a lowered budget ---


def disk_writes(index: int) -> list[Write]:
    """8 MiB of random data from 1 MiB on, and 1 MiB near the end: extents larger than the lowered budget."""
    rng = random.Random(f"d3-disk-{index}")
    return [(MiB, rng.randbytes(8 * MiB)), (DATA_DISK - 2 * MiB, rng.randbytes(MiB))]


def backup_cases(matrix: str) -> list[tuple[str, int]]:
    """(transport, data disks)."""
    return [(t, n) for t in ("nbd", "nbdssl") for n in (3, 6)] if matrix == "full" else [("nbdssl", 3)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"nfc_transport", "data_disks"} <= set(metafunc.fixturenames):
        cases = backup_cases(metafunc.config.option.matrix)
        metafunc.parametrize(("nfc_transport", "data_disks"), cases, ids=[f"{t}-{n}disks" for t, n in cases])


@pytest.mark.test_id(
    "D3-003",
    uuid="58973583-5db4-488b-9f95-e64913e68ff1",
    since="vddk-7.0.3-v2",
    description="Backup of several disks at once stays inside a lowered budget or recovers",
)
@pytest.mark.sequence("backup")
def test_backup_of_several_disks_at_once_stays_inside_a_lowered_budget_or_recovers(
    nfc_budget: Callable[[str, int], None],
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    tmp_path: Path,
    nfc_transport: str,
    data_disks: int,
) -> None:
    vsphere = sequence.vsphere
    name = fresh_vm("VMFS", DATA_DISK)
    vm = vsphere.vm(name)
    for _ in range(data_disks - 1):
        vsphere.add_disk(vm, DATA_DISK)
    workload = guest(name)
    for index in range(1, data_disks + 1):
        apply(workload, index, disk_writes(index))
    nfc_budget(str(vm.runtime.host.name), LOWERED_BUDGET)
    backup = backed_up(sequence, backup_app, name, nfc_transport)
    ordered = sorted(backup.disks, key=lambda d: d.key)
    assert len(ordered) == data_disks + 1
    problems = []
    for index in range(1, data_disks + 1):
        want = expected(tmp_path / f"expected-{index}.img", DATA_DISK, disk_writes(index))
        problems += image_problems(sequence, name, ordered[index], want)
    assert problems == []
