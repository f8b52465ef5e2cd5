"""C4: version compatibility — VDDK supports vSphere N-2 to N+1, and the VMC milestone table.

For the run's own pair (``--vddk-build`` / ``--vsphere``) the preflight (``conformance.lab.preflight``) either
reports nothing about compatibility — and then a full backup and a restore of a fresh VM work — or refuses the
pair with one "unsupported" line (a refused pair is never run silently, it is skipped naming that line). The
verdict is the backup and restore themselves: a library whose build the server's own release does not support
fails them (the policy tables are the harness's own, tested in tests/test_preflight.py). The catalog makes C4
pass on every pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.lab.preflight import preflight
from conformance.plugin.settings import RunSettings
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.verdicts.restored import restored_problems
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import apply, expected
from fixtures.jobs import BackUp

pytestmark = [pytest.mark.release_note("C4")]

MiB = 2**20
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds
WRITES = [(0, os.urandom(MiB)), (5 * MiB, os.urandom(512 * 1024))]


def compatibility_lines(build: str, vsphere: str) -> list[str]:
    return [line for line in preflight(build, vsphere) if line.startswith("unsupported:")]


@pytest.fixture
def run_pair_supported(vddk_settings: RunSettings) -> None:
    """The run's pair as the preflight sees it: skip (with its one line) when it refuses the pair."""
    lines = compatibility_lines(vddk_settings.build, vddk_settings.vsphere)
    assert len(lines) <= 1, lines
    if lines:
        pytest.skip(f"the preflight refuses the run's pair, so it is not run: {lines[0]}")


@pytest.mark.test_id(
    "C4-002",
    uuid="e9c2a30a-b5c8-47a6-9ddb-5b0ca0335753",
    since="vddk-7.0.3-v1",
    description="A supported pair backs up and restores",
)
@pytest.mark.sequence("restore")
@pytest.mark.parametrize("transport", ["nbdssl", "hotadd"])
def test_a_supported_pair_backs_up_and_restores(
    back_up: BackUp,
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
    job = back_up(vm, transport)
    assert job.transports == {transport}
    backup = job.backup
    apply(guest(vm), DATA_DISK, [(0, os.urandom(MiB))])  # diverge after the backup
    backup_app.restore(sequence, backup, transport)
    want = expected(tmp_path / "expected.img", 16 * MiB, WRITES)
    assert restored_problems(sequence, vm, transport, {DATA_DISK: want}) == []
