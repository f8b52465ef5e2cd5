"""R2: HotRemove of the backup snapshot versus the host entering maintenance mode (EMM).

During a HotAdd backup of a fresh VM, the first read on a worker thread starts EnterMaintenanceMode_Task on the
VM's host (through pyVmomi, from another thread) while the backup's disks are hot-added to the proxy; the test
waits (bounded) until the host reports the running task before the backup goes on. Fixed behaviour (7.0.3):
the backup side notices the host entering maintenance, stops cleanly, releases the hot-added disks and, once
the host allows it (the VM migrated off, or the host left maintenance), deletes every snapshot disk of the VM —
no delta disk, no consolidation needed, no hot-added disk on the proxy. Builds before 7.0.3 keep the hot-added
disk while the host is entering maintenance, so the snapshot's delta cannot be consolidated (strict xfail).

A backup that starts while the host is in maintenance mode waits (bounded) and runs once another thread has
taken the host out of maintenance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pyVmomi import vim

from conformance.knowledge.symptoms import symptom
from conformance.lab.targets import MAINTENANCE_MODE, Target
from conformance.plugin.fixtures import require
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession, disks_of
from conformance.vsphere.tasks import wait_for_task, wait_until
from conformance.workloads import apply

pytestmark = [pytest.mark.release_note("R2"), pytest.mark.sequence("backup")]

MiB = 2**20
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds
WRITES = [(0, b"r2-maintenance" * 4096), (8 * MiB, b"\x5a" * MiB)]
ENTERING_SECONDS = 1.0  # the simulated host's entering phase
EMM_TIMEOUT = 5  # seconds: EnterMaintenanceMode_Task gives up (and the host returns to normal) after this
WAIT = 30.0  # seconds: every other bounded wait here


def entering(host: Any) -> bool:
    """The host signals EMM: a queued or running EnterMaintenanceMode task."""
    return any(
        t.info.state in ("queued", "running")
        and t.info.name is not None
        and t.info.name.info.name == "EnterMaintenanceMode"
        for t in host.recentTask
    )


def back_to_normal(host: Any) -> None:
    """Bounded: let a running EMM task end, then take the host out of maintenance if it got there."""
    wait_until(f"{host.name}: EnterMaintenanceMode to end", lambda: True if not entering(host) else None, WAIT)
    if host.runtime.inMaintenanceMode:
        wait_for_task(host.ExitMaintenanceMode_Task(0), f"{host.name} exit maintenance mode", WAIT)


def foreign_disks(vsphere: VsphereSession, proxy_vm: str) -> list[str]:
    """Disks attached to the proxy that are not its own: hot-added disks."""
    proxy = vsphere.vm(proxy_vm)
    return [d.file_name for d in disks_of(proxy) if not d.file_name.split("] ", 1)[-1].startswith(f"{proxy_vm}/")]


class EmmOnFirstRead:
    """The sequence's library, except that the first Read starts EMM on a host (from another thread) and waits
    until the host signals it; everything else is passed through. A backup application that reads in process
    calls `read`; a product in a process of its own (CommandLineApp) reaches `on_product_first_read` through the
    harness's library, which holds the product at its first Read meanwhile."""

    def __init__(self, lib: Any, vsphere: VsphereSession, host: Any, proxy_vm: str | None) -> None:
        self._lib, self._vsphere, self._host, self._proxy_vm = lib, vsphere, host, proxy_vm
        self._once = threading.Lock()
        self.started = False
        self.hot_added_at_start: list[str] = []
        self.error: BaseException | None = None
        #: the product's report of its first Read ({"pid", "tid", "transport", "path"}), when a product read
        self.product_first_read: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def read(self, handle: Any, start: int, count: int) -> bytes:
        self._first_read()
        return self._lib.read(handle, start, count)

    def on_product_first_read(self, info: dict[str, Any]) -> None:
        """A product's first Read, in its own process (held there until this returns): what `read` does."""
        if self.product_first_read is None:
            self.product_first_read = info
        self._first_read()

    def _first_read(self) -> None:
        with self._once:
            if not self.started:
                self.started = True
                self._start_emm()

    def _start_emm(self) -> None:
        if self._proxy_vm:
            self.hot_added_at_start = foreign_disks(self._vsphere, self._proxy_vm)
        host = self._host

        def start() -> None:
            try:
                host.EnterMaintenanceMode_Task(EMM_TIMEOUT)
            except Exception as exc:  # reported by the fixture
                self.error = exc

        thread = threading.Thread(target=start, name="r2-enter-maintenance")
        thread.start()
        thread.join(WAIT)
        if self.error is None:
            wait_until(f"{host.name} to signal maintenance mode", lambda: True if entering(host) else None, WAIT)


@pytest.fixture
def maintenance_host(vddk_target: Target) -> None:
    require(vddk_target, MAINTENANCE_MODE)


@pytest.fixture
def source_vm(
    maintenance_host: None, fresh_vm: Callable[..., str], guest: Callable[[str], GuestWorkload], controls: Any
) -> str:
    controls.set(maintenance_entering_seconds=ENTERING_SECONDS)
    vm = fresh_vm("VMFS", 16 * MiB)
    apply(guest(vm), DATA_DISK, WRITES)
    return vm


def move(vsphere: VsphereSession, vm_name: str, host: Any) -> None:
    vm = vsphere.vm(vm_name)
    if vm.runtime.host != host:
        wait_for_task(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=host)), f"move {vm_name} to {host.name}", WAIT)


@pytest.fixture
def host_restored(sequence: SequenceContext, vsphere: VsphereSession, source_vm: str) -> Iterator[Any]:
    """The HotAdd proxy's host, with the source VM moved there; after the test the host is out of maintenance
    mode and the proxy back on it, whatever happened."""
    if sequence.proxy_vm is None:
        pytest.skip(f"target {sequence.target.name} has no HotAdd proxy VM")
    host = vsphere.vm(sequence.proxy_vm).runtime.host
    move(vsphere, source_vm, host)
    yield host
    back_to_normal(host)
    move(vsphere, sequence.proxy_vm, host)


@dataclass
class Interrupted:
    """A HotAdd backup during which the VM's host started entering maintenance mode (not yet cleaned up)."""

    context: SequenceContext
    backup: Backup
    host: Any
    powered_on: bool
    #: disks hot-added to the proxy when EnterMaintenanceMode_Task started
    hot_added_at_start: list[str]
    #: hot-added disks still on the proxy once the backup had closed its disks (the fixed library releases them)
    left_after_close: list[str]


@pytest.fixture(params=[True, False], ids=["vm-migrates-off", "host-must-exit"])
def interrupted(
    request: pytest.FixtureRequest,
    sequence: SequenceContext,
    backup_app: BackupApplication,
    vsphere: VsphereSession,
    vddk_target: Target,
    source_vm: str,
    host_restored: Any,
) -> Interrupted:
    """Powered on, the VM migrates off the host while it enters maintenance; powered off, it stays there and
    its snapshot can only go once the host has left maintenance mode."""
    assert sequence.proxy_vm is not None
    if not request.param:
        vsphere.power_off(vsphere.vm(source_vm))
    hook = EmmOnFirstRead(sequence.lib, vsphere, host_restored, sequence.proxy_vm)
    context = SequenceContext(**{**vars(sequence), "lib": hook})
    backup = backup_app.backup(context, source_vm, "hotadd")
    left = foreign_disks(vsphere, sequence.proxy_vm)
    assert hook.error is None, f"EnterMaintenanceMode_Task could not start: {hook.error!r}"
    assert hook.started and hook.hot_added_at_start, "maintenance mode did not start while disks were hot-added"
    return Interrupted(context, backup, host_restored, request.param, hook.hot_added_at_start, left)


def released(state: Interrupted) -> None:
    """The fixed library's part: closing the disks released them although the host was entering maintenance.
    R2's symptom, as the server sees the proxy: hot-added disks stayed on it."""
    if state.left_after_close:
        symptom(
            "R2",
            "hot-added disks stayed on the proxy while the host entered maintenance",
            observed=state.left_after_close,
        )
    assert state.left_after_close == [], (
        f"hot-added disk(s) stayed on the proxy while the host entered maintenance: {state.left_after_close}"
    )


def exit_maintenance_later(host: Any, delay: float) -> threading.Thread:
    """From another thread: once the host is in maintenance mode (bounded wait), exit it after `delay` s."""

    def run() -> None:
        wait_until(f"{host.name} in maintenance mode", lambda: True if host.runtime.inMaintenanceMode else None, WAIT)
        threading.Event().wait(delay)
        wait_for_task(host.ExitMaintenanceMode_Task(0), f"{host.name} exit maintenance mode", WAIT)

    thread = threading.Thread(target=run, name="r2-exit-maintenance", daemon=True)
    thread.start()
    return thread


@pytest.mark.test_id(
    "R2-001",
    uuid="761a7c9f-189f-4490-bbfe-eaa60b3c479a",
    since="vddk-7.0.3-v1",
    description="Closing disks while the host enters maintenance releases them",
)
def test_closing_disks_while_the_host_enters_maintenance_releases_them(interrupted: Interrupted) -> None:
    released(interrupted)
    assert interrupted.hot_added_at_start  # the disks were hot-added when EMM started


@pytest.mark.test_id(
    "R2-002",
    uuid="53babe5a-afda-444c-ad34-63a8f0ee7cd1",
    since="vddk-7.0.3-v1",
    description="Cleanup after emm deletes every snapshot disk once the host allows it",
)
def test_cleanup_after_emm_deletes_every_snapshot_disk_once_the_host_allows_it(
    interrupted: Interrupted, backup_app: BackupApplication, vsphere: VsphereSession, source_vm: str
) -> None:
    released(interrupted)
    exiter = None if interrupted.powered_on else exit_maintenance_later(interrupted.host, 0.5)
    backup_app.cleanup(interrupted.context, interrupted.backup)  # retries snapshot removal (bounded)
    if exiter is not None:
        exiter.join(WAIT)
    vm = vsphere.vm(source_vm)
    assert vsphere.snapshots(vm) == []
    assert [d.file_name for d in disks_of(vm) if d.has_parent] == []
    assert vm.runtime.consolidationNeeded is False
    assert foreign_disks(vsphere, interrupted.context.proxy_vm or "") == []


@pytest.mark.test_id(
    "R2-003",
    uuid="3b11d96c-e211-4a1d-8841-c77cc374a9ce",
    since="vddk-7.0.3-v1",
    description="A backup started while the host signals emm waits and runs after it exits",
)
@pytest.mark.parametrize("interrupted", [False], ids=["host-must-exit"], indirect=True)
def test_a_backup_started_while_the_host_signals_emm_waits_and_runs_after_it_exits(
    interrupted: Interrupted,
    sequence: SequenceContext,
    backup_app: BackupApplication,
    vsphere: VsphereSession,
    source_vm: str,
) -> None:
    released(interrupted)
    host = interrupted.host
    assert entering(host) or host.runtime.inMaintenanceMode, "the host no longer signals maintenance mode"
    exiter = exit_maintenance_later(host, 1.0)
    backup = backup_app.backup(sequence, source_vm, "hotadd")  # waits (bounded) for the host to leave
    exiter.join(WAIT)
    assert not host.runtime.inMaintenanceMode
    assert {d.transport for d in backup.disks} == {"hotadd"}
    backup_app.cleanup(interrupted.context, interrupted.backup)  # the interrupted backup's job, then this one's
    assert vsphere.snapshots(vsphere.vm(source_vm)) == []
