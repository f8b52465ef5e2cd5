"""Safety rail: destructive steps only on allow-listed VMs or on what the run created; refusals are errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import simulator_target
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
from conformance.sequences.reference import ReferenceBackupApp
from conformance.sim.instance import Simulator
from conformance.vsphere.safety import SafetyGuard, UnsafeOperationError
from conformance.vsphere.session import RUN_FIELD, RUN_TAG, VsphereSession

ALLOWED = "target-vmfs"
FORBIDDEN = "target-nfs"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def session(sim: Simulator) -> Iterator[VsphereSession]:
    guard = SafetyGuard("lab-a", [ALLOWED])
    endpoint = simulator_target(sim).endpoint
    s = VsphereSession(endpoint, sim.user, sim.password, "dc1", guard=guard, run_id="20260101-000000-abcdef")
    yield s
    s.close()


@pytest.mark.parametrize(
    ("action", "call"),
    [
        ("snapshot", lambda s, vm: s.create_snapshot(vm, "vddkc-x", quiesce=False)),
        ("clone", lambda s, vm: s.clone_vm(vm, "vddkc-x-clone")),
        ("delete", lambda s, vm: s.destroy_vm(vm)),
        ("power off", lambda s, vm: s.power_off(vm)),
        ("add a disk to", lambda s, vm: s.add_disk(vm, 2**20)),
        ("enable CBT on", lambda s, vm: s.enable_cbt(vm)),
    ],
)
def test_a_destructive_step_on_a_vm_outside_the_allow_list_is_refused(
    session: VsphereSession, action: str, call: Any
) -> None:
    vm = session.vm(FORBIDDEN)
    before = (vm.runtime.powerState, len(session.snapshots(vm)), len(vm.config.hardware.device))
    with pytest.raises(UnsafeOperationError) as caught:
        call(session, vm)
    assert str(caught.value) == (
        f"{action} {FORBIDDEN!r} refused: not in the allow_vms of target lab-a and not created by this run"
    )
    assert (vm.runtime.powerState, len(session.snapshots(vm)), len(vm.config.hardware.device)) == before
    assert session.vm(FORBIDDEN) is not None


def test_revert_outside_the_allow_list_is_refused(sim: Simulator, session: VsphereSession) -> None:
    plain = VsphereSession(session.endpoint, sim.user, sim.password, "dc1")  # no guard: a tool's own session
    try:
        snapshot = plain.create_snapshot(plain.vm(FORBIDDEN), "pre-existing", quiesce=False)
        with pytest.raises(UnsafeOperationError, match=f"revert '{FORBIDDEN}' refused"):
            session.revert_snapshot(snapshot, "pre-existing")
        with pytest.raises(UnsafeOperationError, match=f"remove a snapshot of '{FORBIDDEN}' refused"):
            session.remove_snapshot(snapshot, "pre-existing")
        plain.remove_snapshot(snapshot, "pre-existing")
    finally:
        plain.close()


def test_allowed_vms_and_the_runs_own_clones_may_be_changed_and_the_clone_carries_the_run_id(
    session: VsphereSession,
) -> None:
    source = session.vm(ALLOWED)
    clone = session.clone_vm(source, "vddkc-20260101-000000-abcdef-gw0-clone-1")
    try:
        assert session.guard is not None and session.guard.is_own(clone.name)
        assert clone.config.annotation == f"{RUN_TAG}20260101-000000-abcdef"
        field = next(f for f in session.content.customFieldsManager.field if f.name == RUN_FIELD)
        assert [v.value for v in clone.customValue if v.key == field.key] == ["20260101-000000-abcdef"]
        snapshot = session.create_snapshot(clone, "vddkc-snap", quiesce=False)
        [node] = session.snapshots(clone)
        assert node.description.endswith(f"[{RUN_TAG}20260101-000000-abcdef]")
        session.revert_snapshot(snapshot, "vddkc-snap")
        session.remove_snapshot(snapshot, "vddkc-snap")
    finally:
        session.destroy_vm(clone)
    assert not session.guard.is_own("vddkc-20260101-000000-abcdef-gw0-clone-1")


def test_restore_into_a_vm_outside_the_allow_list_is_refused_before_anything_changes(
    sim: Simulator, session: VsphereSession, tmp_path: Path
) -> None:
    target = simulator_target(sim)
    tracker = ResourceTracker("20260101-000000-abcdef")
    ctx = SequenceContext(target, session, lib=None, resources=tracker, repository=tmp_path)  # type: ignore[arg-type]
    vm = session.vm(FORBIDDEN)
    backup = Backup(FORBIDDEN, vm._moId, "full", "vddkc-b", "snapshot-1")
    with pytest.raises(UnsafeOperationError, match=f"restore into '{FORBIDDEN}' refused"):
        ReferenceBackupApp().restore(ctx, backup, "nbdssl")
    assert session.vm(FORBIDDEN).runtime.powerState == "poweredOn"
    assert tracker.pending() == []


def test_the_simulator_target_allows_its_whole_inventory(sim: Simulator) -> None:
    assert simulator_target(sim).allow_vms == {spec.name for spec in sim.inventory.vms}
