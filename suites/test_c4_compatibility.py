"""C4: version compatibility — VDDK supports vSphere N-2 to N+1, and the VMC milestone table.

For the run's own pair (``--vddk-build`` / ``--vsphere``) the preflight (``conformance.preflight``) either
reports nothing about compatibility — and then a full backup and a restore of a fresh VM work — or refuses the
pair with one "unsupported" line (a refused pair is never run silently). A table of pairs on both sides of the
policy, taken from the release notes, checks that the preflight reports exactly the unsupported ones. The
catalog makes C4 pass on every pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.plugin.settings import RunSettings
from conformance.preflight import preflight
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.targets import Target
from conformance.verdicts.job import backed_up
from conformance.verdicts.restored import restored_problems
from conformance.vixdisklib.api import VixDiskLib
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import apply, expected

pytestmark = [pytest.mark.release_note("C4")]

MiB = 2**20
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds
WRITES = [(0, os.urandom(MiB)), (5 * MiB, os.urandom(512 * 1024))]
#: (VDDK build, vSphere version or VMC milestone) the release notes rule out
UNSUPPORTED = [
    ("6.5.0", "M8"),  # M8/M9 list 6.5.2 .. 6.5.4, 6.7.x and 7.0.x only
    ("6.5.0", "M9"),
    ("6.5.4", "M10"),  # M10 .. M16: 6.7.x and 7.0.x only
    ("6.5.3", "M16"),
    ("6.7.3", "8.0"),  # 6.7 supports 6.0 .. 7.0 (N-2 .. N+1)
    ("6.5.4", "7.0U3"),  # 6.5 supports 5.5 .. 6.7
]
#: pairs at the edges of the policy that it allows
SUPPORTED = [
    ("6.5.2", "M8"),
    ("6.5.2 EP1", "M9"),
    ("6.5.4", "M9"),
    ("6.7.0", "M10"),
    ("7.0.3", "M16"),
    ("7.0.3", "6.5"),  # N-2
    ("7.0.3", "8.0"),  # N+1
    ("6.7.3", "7.0U3"),
    ("6.5.0", "6.7U3"),
]


def compatibility_lines(build: str, vsphere: str) -> list[str]:
    return [line for line in preflight(build, vsphere) if line.startswith("unsupported:")]


@pytest.fixture
def run_pair_supported(vddk_settings: RunSettings) -> None:
    """The run's pair as the preflight sees it: skip (with its one line) when it refuses the pair."""
    lines = compatibility_lines(vddk_settings.build, vddk_settings.vsphere)
    assert len(lines) <= 1, lines
    if lines:
        pytest.skip(f"the preflight refuses the run's pair, so it is not run: {lines[0]}")


@pytest.mark.test_id("C4-001")
def test_the_preflight_reports_at_most_one_line_for_the_runs_pair_and_only_on_refusal(
    vddk_settings: RunSettings,
) -> None:
    lines = preflight(vddk_settings.build, vddk_settings.vsphere)
    assert all(line.startswith("unsupported:") and "\n" not in line for line in lines)
    assert len(lines) <= 1


@pytest.mark.test_id("C4-002")
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("transport", ["nbdssl", "hotadd"])
def test_a_supported_pair_backs_up_and_restores(
    run_pair_supported: None,
    sequence: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    transport: str,
    tmp_path: Path,
) -> None:
    if transport == "hotadd" and sequence.proxy_vm is None:
        pytest.skip(f"target {sequence.target.name} has no HotAdd proxy VM")
    vm = fresh_vm("VMFS", 16 * MiB)
    apply(guest(vm), DATA_DISK, WRITES)
    backup = backed_up(sequence, backup_app, vm, transport)
    assert {d.transport for d in backup.disks} == {transport}
    apply(guest(vm), DATA_DISK, [(0, os.urandom(MiB))])  # diverge after the backup
    backup_app.restore(sequence, backup, transport)
    want = expected(tmp_path / "expected.img", 16 * MiB, WRITES)
    assert restored_problems(sequence, vm, transport, {DATA_DISK: want}) == []


@pytest.mark.test_id("C4-003")
@pytest.mark.parametrize(("build", "vsphere"), UNSUPPORTED)
def test_the_preflight_reports_an_unsupported_pair(build: str, vsphere: str) -> None:
    (line,) = compatibility_lines(build, vsphere)
    assert build in line and vsphere in line


@pytest.mark.test_id("C4-004")
@pytest.mark.parametrize(("build", "vsphere"), SUPPORTED)
def test_the_preflight_accepts_a_supported_pair(build: str, vsphere: str) -> None:
    assert compatibility_lines(build, vsphere) == []


@pytest.mark.test_id("C4-005")
def test_the_loaded_library_is_supported_by_the_targets_server(
    run_pair_supported: None, vixdisklib: VixDiskLib, vddk_target: Target
) -> None:
    """The pair that matters is the library actually loaded and the server actually there: a lab whose libdir
    holds another build than the one it certifies, or whose server is another release, is caught here."""
    assert compatibility_lines(vixdisklib.backend.build, vddk_target.vsphere) == []
