"""F2 and C4 in the simulated library: what a build refuses because VMware does not support it.

F2: a library whose build does not support its proxy VM's guest OS (the server's own report of it) cannot use
HotAdd there: "hotadd" alone fails, "hotadd:nbdssl" falls back to nbdssl, and the proxy keeps no disk. C4: a
library of a build the server's release (its ``content.about``) does not support is refused at ConnectEx.
Each behaviour is shown on both sides: the supported build or server works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from conformance.lab.targets import simulator_target
from conformance.sim.instance import Simulator
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.simulated.support import hotadd_refusal
from tests.sim.conftest import find
from tests.vixdisklib.conftest import disk_path, disks_of
from tests.vixdisklib.test_build_behaviours import library, params, simulator


def open_transport(lib: Any, sim: Simulator, vm: Any, modes: str) -> str:
    with lib.connected(params(sim, vm), True, None, modes) as connection, lib.opened(connection, disk_path(vm)) as d:
        lib.read(d, 0, 1)
        return str(lib.get_transport_mode(d))


@pytest.mark.parametrize(("build", "proxy", "usable"), [
    ("7.0.2", "proxy-rhel83", False),
    ("7.0.2", "proxy-centos83", False),
    ("7.0.2", "proxy-sles151", False),
    ("7.0.3", "proxy-rhel83", True),
    ("7.0.3", "proxy-sles151", True),
    ("7.0.2", "proxy-rhel79", True),
])  # fmt: skip
def test_f2_hotadd_needs_a_build_that_supports_the_proxy_os(
    tmp_path: Path, build: str, proxy: str, usable: bool
) -> None:
    with simulator("7.0U3") as (sim, content), library(build, tmp_path, proxy) as lib:
        vm, proxy_vm = find(content, vim.VirtualMachine, "target-vmfs"), find(content, vim.VirtualMachine, proxy)
        before = len(disks_of(proxy_vm))
        assert open_transport(lib, sim, vm, "hotadd:nbdssl") == ("hotadd" if usable else "nbdssl")
        if usable:
            assert open_transport(lib, sim, vm, "hotadd") == "hotadd"
        else:
            with pytest.raises(VixError) as caught:
                open_transport(lib, sim, vm, "hotadd")
            assert caught.value.code == VixCode.NOT_SUPPORTED and proxy in caught.value.text
        assert len(disks_of(proxy_vm)) == before  # nothing left hot-added either way


class _Proxy:
    """A proxy VM as pyVmomi shows it, for the decision alone."""

    def __init__(self, running: str | None, configured: str) -> None:
        self.name = "p"
        self.guest = type("Guest", (), {"guestFullName": running})()
        self.config = type("Config", (), {"guestFullName": configured})()


@pytest.mark.parametrize(("running", "configured", "refused"), [
    ("CentOS Linux 8.3.2011", "CentOS 8 (64-bit)", True),  # the running guest's detail decides
    (None, "SUSE Linux Enterprise Server 15 SP1", True),  # powered off: the configured OS
    ("Debian GNU/Linux 12", "Debian 12", False),  # not in the matrix: no knowledge, no refusal
])  # fmt: skip
def test_f2_the_refusal_reads_the_guest_os_the_server_reports(
    running: str | None, configured: str, refused: bool
) -> None:
    reason = hotadd_refusal("7.0.2", _Proxy(running, configured))
    assert (reason is not None) == refused
    assert hotadd_refusal("7.0.3", _Proxy(running, configured)) is None


@pytest.mark.parametrize(("vsphere", "build", "refused"), [
    ("M16", "6.5.3", True),  # VMC M16 lists 6.7.x and 7.0.x only
    ("7.0U3", "6.5.4", True),  # 6.5 supports 5.5 .. 6.7
    ("M16", "7.0.3", False),
    ("6.7U3", "6.5.4", False),
])  # fmt: skip
def test_c4_connect_ex_refuses_a_server_release_the_build_does_not_support(
    tmp_path: Path, vsphere: str, build: str, refused: bool
) -> None:
    with simulator(vsphere) as (sim, content), library(build, tmp_path, "") as lib:
        vm = find(content, vim.VirtualMachine, "target-vmfs")
        if refused:
            with pytest.raises(VixError) as caught:
                open_transport(lib, sim, vm, "nbdssl")
            assert caught.value.code == VixCode.NOT_SUPPORTED and caught.value.call == "VixDiskLib_ConnectEx"
            assert build in caught.value.text and vsphere in caught.value.text
        else:
            assert open_transport(lib, sim, vm, "nbdssl") == "nbdssl"


@pytest.mark.parametrize(("build", "proxy"), [
    ("7.0.3", "proxy-rhel83"),  # the inventory's first proxy
    ("7.0.2", "proxy-rhel79"),  # the first Linux proxy 7.0.2 supports
    ("6.7.3", "proxy-rhel73"),  # Linux before Windows Server 2019, which 6.7 supports too
    ("6.5.4", "proxy-rhel73"),  # the only proxy OS of the inventory 6.5 supports
])  # fmt: skip
def test_f2_the_simulator_targets_default_proxy_is_one_the_build_supports(build: str, proxy: str) -> None:
    with Simulator() as sim:
        assert simulator_target(sim, build).default_proxy == proxy
