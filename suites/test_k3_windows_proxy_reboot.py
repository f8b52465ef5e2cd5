"""K3: a HotAdd backup through a Windows Server 2019 proxy must not flag the target VM for a reboot.

With VDDK 6.7 and vSphere 6.x every target VM is flagged for a (needless) reboot after backup, because the
library opens the disk adapter in the proxy rather than the disk; VDDK 7.0 opens the disk. The flag shows as
a configuration issue of the target VM (``vm.configIssue``). The reproducer backs up over HotAdd through the
target's Windows Server 2019 proxy and asserts the backup used HotAdd and left no reboot flag. The workaround
(upgrade to VDDK 7.0) repeats it with a library of the selected build or 7.0.0, whichever is newer; it needs a
target that can load another VDDK build than the run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from conformance.knowledge.proxy_support import find_os
from conformance.knowledge.symptoms import symptom
from conformance.knowledge.versions import VddkBuild
from conformance.lab.targets import Target
from conformance.plugin.settings import RunSettings
from conformance.sequences.context import SequenceContext
from conformance.vixdisklib.api import VixDiskLib
from conformance.vsphere.session import VsphereSession
from fixtures.jobs import BackUp

pytestmark = [pytest.mark.sequence("backup")]
PROXY_OS = "Windows Server 2019"
FIXED_IN = "7.0.0"


@pytest.fixture
def windows_proxy(vddk_target: Target) -> str:
    """The target's HotAdd proxy VM running Windows Server 2019 (skip when it has none)."""
    for guest_text, vm in vddk_target.proxies.items():
        entry = find_os(guest_text)
        if entry is not None and entry.label == PROXY_OS:
            return vm
    pytest.skip(f"target {vddk_target.name} has no HotAdd proxy VM running {PROXY_OS}")


def reboot_flags(vm: Any) -> list[str]:
    """The target VM's configuration issues that ask for a restart."""
    return [
        str(issue.fullFormattedMessage)
        for issue in vm.configIssue or []
        if "restart" in str(issue.fullFormattedMessage).lower() or "reboot" in str(issue.fullFormattedMessage).lower()
    ]


@pytest.fixture
def upgraded_library(
    vddk_settings: RunSettings, vixdisklib_factory: Callable[..., VixDiskLib], windows_proxy: str
) -> VixDiskLib:
    """A library of the run's behaviour build or 7.0.0, whichever is newer, running in the Windows proxy (the
    target must offer LIBRARY_BUILDS: load a build other than the run's)."""
    build = max(VddkBuild.parse(vddk_settings.sim_behaviour), VddkBuild.parse(FIXED_IN)).name
    return vixdisklib_factory(proxy_vm=windows_proxy, build=build)


@pytest.mark.release_note("K3", platform="windows")
@pytest.mark.test_id(
    "K3-001",
    uuid="e57f2804-b939-43b9-b0f6-a57631d4bb68",
    since="vddk-7.0.3-v2",
    description="Hotadd backup through a windows server 2019 proxy flags no reboot",
)
def test_hotadd_backup_through_a_windows_server_2019_proxy_flags_no_reboot(
    sequence: SequenceContext,
    back_up: BackUp,
    vsphere: VsphereSession,
    vixdisklib_factory: Callable[..., VixDiskLib],
    windows_proxy: str,
    fresh_vm: Callable[..., str],
) -> None:
    through_proxy = dataclasses.replace(
        sequence, lib=vixdisklib_factory(proxy_vm=windows_proxy), proxy_vm=windows_proxy
    )
    vm_name = fresh_vm("VMFS")
    used = back_up(vm_name, "hotadd", ctx=through_proxy).transports
    flags = reboot_flags(vsphere.vm(vm_name))
    if flags:
        symptom("K3", "the HotAdd backup flagged the target VM for a reboot", observed=flags)
    assert used == {"hotadd"}


@pytest.mark.release_note("K3", workaround="upgrade-to-7.0", platform="windows")
@pytest.mark.test_id(
    "K3-002",
    uuid="b30a2aa4-bfb4-4870-b965-8d800ce5b1c6",
    since="vddk-7.0.3-v2",
    description="Vddk 7 0 backs up through the windows proxy without a reboot flag",
)
def test_vddk_7_0_backs_up_through_the_windows_proxy_without_a_reboot_flag(
    sequence: SequenceContext,
    back_up: BackUp,
    vsphere: VsphereSession,
    upgraded_library: VixDiskLib,
    windows_proxy: str,
    fresh_vm: Callable[..., str],
) -> None:
    through_proxy = dataclasses.replace(sequence, lib=upgraded_library, proxy_vm=windows_proxy)
    vm_name = fresh_vm("VMFS")
    assert back_up(vm_name, "hotadd", ctx=through_proxy).transports == {"hotadd"}
    assert reboot_flags(vsphere.vm(vm_name)) == []
