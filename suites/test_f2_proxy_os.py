"""F2: HotAdd backups through proxies running RHEL 8.3, CentOS 8.3 and SLES 15.1 (new in VDDK 7.0.3).

For each new proxy OS the target's proxy VM with that guest OS (matched by prefix through the support matrix,
``conformance/data/proxy_support.toml``) runs a library of its own; a HotAdd backup of a fresh VM through it
uses transport hotadd and holds exactly what the guest wrote. The preflight's support check accepts these
proxies on the selected build and reports, as one line, a build that does not support them (7.0.2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.plugin.settings import RunSettings
from conformance.proxy_support import check_proxy, find_os
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
UNSUPPORTING_BUILD = "7.0.2"  # the build before the one that added these operating systems
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


@pytest.mark.test_id("F2-001")
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


@pytest.mark.test_id("F2-002")
def test_support_check_accepts_the_new_proxy_os_on_the_selected_build(proxy: Proxy, vddk_settings: RunSettings) -> None:
    assert check_proxy(proxy.guest_text, vddk_settings.build) == []


@pytest.mark.test_id("F2-003")
def test_support_check_reports_a_build_without_the_new_proxy_os_in_one_line(proxy: Proxy) -> None:
    problems = check_proxy(proxy.guest_text, UNSUPPORTING_BUILD)
    assert len(problems) == 1 and "\n" not in problems[0]
    assert proxy.os_label in problems[0] and UNSUPPORTING_BUILD in problems[0]


@pytest.mark.test_id("F2-004")
def test_the_loaded_library_supports_the_proxy_os_it_runs_in(proxy: Proxy, vixdisklib: VixDiskLib) -> None:
    """The build that matters is the library actually loaded: a proxy whose libdir holds a build without the
    new operating systems (7.0.2) is caught here, not only by the run's --vddk-build."""
    assert check_proxy(proxy.guest_text, vixdisklib.backend.build) == []
