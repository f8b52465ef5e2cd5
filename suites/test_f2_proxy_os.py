"""F2: HotAdd backups through proxies running RHEL 8.3, CentOS 8.3 and SLES 15.1 (new in VDDK 7.0.3).

For each new proxy OS the target's proxy VM with that guest OS (matched by prefix through the support matrix,
``conformance/data/proxy_support.toml``) runs a library of its own; a HotAdd backup of a fresh VM through it
uses transport hotadd and holds exactly what the guest wrote. A library whose build does not support the
proxy's OS (7.0.2) cannot use HotAdd there, so the test fails for it: the verdict is the backup's transport and
bytes, not a support table (the harness's own tables are tested in tests/test_proxy_support.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.proxy_support import find_os
from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.targets import Target
from conformance.verdicts.image import image_problems
from conformance.verdicts.job import backed_up
from conformance.vixdisklib.api import VixDiskLib
from conformance.vsphere.guest import GuestWorkload
from conformance.workloads import apply, expected, pattern

pytestmark = [pytest.mark.release_note("F2")]
NEW_PROXY_OS = ("Red Hat Enterprise Linux 8.3", "CentOS 8.3", "SUSE Linux Enterprise Server 15.1")
DATA_DISK = 1  # /dev/sdb: the data disk fresh_vm adds


@dataclasses.dataclass(frozen=True)
class Proxy:
    os_label: str
    guest_text: str  # the guest OS text the target reports for the proxy VM
    vm: str


@pytest.fixture(params=NEW_PROXY_OS)
def proxy(request: pytest.FixtureRequest, vddk_target: Target) -> Proxy:
    """The target's proxy VM whose guest OS is the parameter (skip when the target has none)."""
    os_label = str(request.param)
    for guest_text, vm in vddk_target.proxies.items():
        entry = find_os(guest_text)
        if entry is not None and entry.label == os_label:
            return Proxy(os_label, guest_text, vm)
    pytest.skip(f"target {vddk_target.name} has no HotAdd proxy VM running {os_label}")


@pytest.fixture
def through_proxy(
    sequence: SequenceContext, vixdisklib_factory: Callable[..., VixDiskLib], proxy: Proxy
) -> SequenceContext:
    """The test's sequence context, with a library running in the proxy VM."""
    return dataclasses.replace(sequence, lib=vixdisklib_factory(proxy_vm=proxy.vm), proxy_vm=proxy.vm)


@pytest.mark.test_id(
    "F2-001",
    uuid="d5e98d10-47d5-4a4e-9f42-d3e7c953f1d6",
    since="vddk-7.0.3-v1",
    description="Hotadd backup through the new proxy os holds what the guest wrote",
)
@pytest.mark.sequence("backup")
def test_hotadd_backup_through_the_new_proxy_os_holds_what_the_guest_wrote(
    through_proxy: SequenceContext,
    backup_app: BackupApplication,
    fresh_vm: Callable[..., str],
    guest: Callable[[str], GuestWorkload],
    tmp_path: Path,
) -> None:
    disk_pattern = pattern("random")
    vm = fresh_vm("VMFS", disk_pattern.disk_size)
    writes = disk_pattern.writes()
    apply(guest(vm), DATA_DISK, writes)
    backup = backed_up(through_proxy, backup_app, vm, "hotadd")
    disk = backup.disk(sorted(backup.disks, key=lambda d: d.key)[DATA_DISK].key)
    assert {d.transport for d in backup.disks} == {"hotadd"}
    want = expected(tmp_path / "expected.img", disk_pattern.disk_size, writes)
    assert image_problems(through_proxy, vm, disk, want) == []
