"""R4: "Could not unmount" after connect, open, read, close, disconnect.

A backup process (`conformance.sequences.backup_process`, a real OS process) connects to a snapshot, opens its
disk over HotAdd, reads and closes it; its session's unmount info file (unmount.dat) then goes missing while the
session folder under tmpDirectory still exists, and the process ends before its Disconnect has removed the folder. A new
library with the same tmpDirectory calls Cleanup. Fixed behaviour (7.0.3): the folder is removed anyway, so
Cleanup reports nothing remaining, no "Could not unmount" error, and nothing is left in tmpDirectory.
Affected behaviour: the error and the leftover folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import Target
from conformance.sequences.backup_process import child_env, crashed_backup
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import KEY_TMP_DIRECTORY, render_config
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.factory import LibrarySpec
from conformance.vsphere.session import VsphereSession, disks_of

pytestmark = [pytest.mark.release_note("R4"), pytest.mark.sequence("cleanup")]
UNMOUNT_INFO = "unmount.dat"  # the file name the release note gives


@dataclass
class CleanupOutcome:
    remaining: int | None  # numRemaining, from the result or the error
    error: str  # the error's text, "" when Cleanup succeeded
    tmp_directory: Path


def leftovers(tmp_directory: Path) -> list[str]:
    """Files and non-empty folders under tmpDirectory (an empty folder is nothing left)."""
    return sorted(
        str(p.relative_to(tmp_directory)) for p in tmp_directory.rglob("*") if not p.is_dir() or any(p.iterdir())
    )


@pytest.fixture
def cleanup_outcome(
    vixdisklib_factory: Callable[..., VixDiskLib],
    vixdisklib_spec: Callable[..., LibrarySpec],
    vddk_target: Target,
    vsphere: VsphereSession,
    resources: ResourceTracker,
    tmp_path: Path,
) -> CleanupOutcome:
    vm_name, proxy = vddk_target.target_vms.get("VMFS"), vddk_target.default_proxy
    if vm_name is None or proxy is None:
        pytest.skip(f"target {vddk_target.name} has no VMFS target VM or no HotAdd proxy VM")
    vm = vsphere.vm(vm_name)
    tmp_directory = tmp_path / "vddk-tmp"
    config = tmp_path / "vddk.conf"
    config.write_text(render_config({KEY_TMP_DIRECTORY: str(tmp_directory)}))
    name = resources.name("r4-backup")
    snapshot = vsphere.create_snapshot(vm, name, "R4: connect, open, read, close, disconnect")
    resources.add("snapshot", name, lambda: vsphere.remove_snapshot(snapshot, name))
    disk = disks_of(snapshot)[0].file_name
    params = vddk_target.connect_params()
    env = child_env(
        "hotadd-closed",
        params,
        vixdisklib_spec(proxy),  # the run's library (backend, libdir, build) in the proxy VM
        config,
        vm=vm._moId,
        snapshot=snapshot._moId,
        disk=disk,
    )
    crashed_backup(env)  # connect, open, read, close; the process is gone before Disconnect cleans up
    infos = list(tmp_directory.rglob(UNMOUNT_INFO))
    assert len(infos) == 1, f"expected one session with {UNMOUNT_INFO}, found {infos}"
    infos[0].unlink()  # the unmount info goes missing; its folder stays
    assert leftovers(tmp_directory), "the session folder should still be there"
    lib = vixdisklib_factory(config={KEY_TMP_DIRECTORY: str(tmp_directory)})
    try:
        _, remaining = lib.cleanup(params)
    except VixError as exc:
        return CleanupOutcome(getattr(exc, "remaining", None), exc.text, tmp_directory)
    return CleanupOutcome(remaining, "", tmp_directory)


def could_not_unmount(outcome: CleanupOutcome) -> None:
    """R4's documented symptom: Cleanup failed with "Could not unmount"."""
    if "Could not unmount" in outcome.error:
        symptom("R4", "Cleanup failed with 'Could not unmount'", observed=outcome.error)


@pytest.mark.test_id(
    "R4-001",
    uuid="afa1da5e-8fb6-4a80-a9f1-74e245e69499",
    since="vddk-7.0.3-v1",
    description="Cleanup raises no could not unmount error",
)
def test_cleanup_raises_no_could_not_unmount_error(cleanup_outcome: CleanupOutcome) -> None:
    could_not_unmount(cleanup_outcome)
    assert cleanup_outcome.error == ""


@pytest.mark.test_id(
    "R4-002",
    uuid="0adf9e1f-1089-4fb8-8e62-3204b7a3238e",
    since="vddk-7.0.3-v1",
    description="Cleanup reports nothing remaining",
)
def test_cleanup_reports_nothing_remaining(cleanup_outcome: CleanupOutcome) -> None:
    could_not_unmount(cleanup_outcome)
    assert cleanup_outcome.remaining == 0


@pytest.mark.test_id(
    "R4-003",
    uuid="d21d77fb-c76f-4d05-aff3-6025c4b6f01b",
    since="vddk-7.0.3-v1",
    description="Nothing is left in tmp directory after cleanup",
)
def test_nothing_is_left_in_tmp_directory_after_cleanup(cleanup_outcome: CleanupOutcome) -> None:
    left = leftovers(cleanup_outcome.tmp_directory)
    if left:
        symptom("R4", "the session folder was left in tmpDirectory", observed=[str(p) for p in left])
