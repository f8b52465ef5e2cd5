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

from conformance.knowledge.proxy_support import find_os
from conformance.lab.targets import Target
from conformance.sequences.context import SequenceContext
from conformance.verdicts.image import image_problems
from conformance.vixdisklib.api import VixDiskLib
from fixtures.jobs import BackUp
from fixtures.workloads import DATA_DISK, PatternedVmFactory

pytestmark = [pytest.mark.release_note("F2")]
NEW_PROXY_OS = ("Red Hat Enterprise Linux 8.3", "CentOS 8.3", "SUSE Linux Enterprise Server 15.1")


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
    through_proxy: SequenceContext, back_up: BackUp, patterned_vm: PatternedVmFactory, tmp_path: Path
) -> None:
    source = patterned_vm("VMFS", "random")
    job = back_up(source.vm, "hotadd", ctx=through_proxy)
    disk = job.backup.disk(sorted(job.backup.disks, key=lambda d: d.key)[DATA_DISK].key)
    assert job.transports == {"hotadd"}
    assert image_problems(through_proxy, source.vm, disk, source.expected(tmp_path)) == []
