"""Build- and server-dependent behaviours of the simulated library behind K1, K3, K5 and K6.

Each test starts a simulator of the vSphere version the item needs, drives the simulated library of the
builds on both sides of the item, and checks what the server shows (proxy validity, a reboot flag, the
phone-home setting it recorded) through pyVmomi or the server's own records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.dataplane.client import discover
from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import KEY_NO_NFC_SESSION, KEY_PHONE_HOME, render_config
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.simulated.control import declared_parents_with_k1
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import ConnectParams
from conformance.vsphere.connection import Endpoint, connect, disconnect
from tests.sim.conftest import find
from tests.vixdisklib.conftest import connect_params, disk_path, snapshot, wait

LINKED = "createNewChildDiskBacking"
K1_PROXY = "proxy-rhel79"  # a proxy OS both 7.0.2 and 7.0.3 support (F2)
K6_PROXY = "proxy-win2019"  # the inventory's only proxy OS 6.7.x supports (F2)


@contextmanager
def simulator(vsphere: str) -> Iterator[tuple[Simulator, Any]]:
    with Simulator(vsphere=vsphere) as sim:
        si = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
        try:
            yield sim, si.RetrieveContent()
        finally:
            disconnect(si)


@contextmanager
def library(build: str, tmp_path: Path, proxy: str, config: dict[str, str | int] | None = None) -> Iterator[VixDiskLib]:
    path = tmp_path / f"vddk-{build}-{proxy}.conf"
    path.write_text(render_config({"tmpDirectory": str(tmp_path / f"tmp-{build}"), **(config or {})}))
    lib = VixDiskLib(SimulatedVixDiskLib(build, proxy_vm=proxy))
    lib.init_ex(path)
    try:
        yield lib
    finally:
        lib.exit()


def params(sim: Simulator, vm: Any) -> ConnectParams:
    return connect_params(sim).with_vm(vm._moId)


def hotadd_read(lib: VixDiskLib, sim: Simulator, vm: Any, path: str | None = None) -> str:
    """Open the VM's first disk (or ``path``) over HotAdd, read a sector, close; the transport used."""
    with (
        lib.connected(params(sim, vm), True, None, "hotadd") as connection,
        lib.opened(connection, path or disk_path(vm)) as disk,
    ):
        lib.read(disk, 0, 1)
        return lib.get_transport_mode(disk)


def clone(vm: Any, name: str, linked: bool = False) -> Any:
    spec = vim.vm.CloneSpec(powerOn=False, location=vim.vm.RelocateSpec())
    if linked:
        spec.snapshot = snapshot(vm, f"base-of-{name}")
        spec.location.diskMoveType = LINKED
    return wait(vm.CloneVM_Task(vm.parent, name, spec))


# --- K1 ---


def test_k1_declaration_keeps_the_first_foreign_folder_only() -> None:
    chain = ["[v] lc1/lc1.vmdk", "[v] src/src.vmdk"]
    assert declared_parents_with_k1("[v] lc2/lc2.vmdk", chain) == ["[v] lc1/lc1.vmdk"]
    assert declared_parents_with_k1("[v] lc1/lc1.vmdk", chain[1:]) == ["[v] src/src.vmdk"]
    own = ["[v] a/a-000001.vmdk", "[v] a/a.vmdk"]
    assert declared_parents_with_k1("[v] a/a-000002.vmdk", own) == own


@pytest.mark.parametrize(("build", "datastore_vm", "breaks"), [
    ("7.0.3", "target-vvol", True), ("7.0.2", "target-vvol", False), ("7.0.3", "target-vmfs", False),
])  # fmt: skip
def test_k1_hotadd_of_a_linked_clone_of_a_linked_clone(
    tmp_path: Path, build: str, datastore_vm: str, breaks: bool
) -> None:
    with simulator("7.0U3") as (sim, content), library(build, tmp_path, K1_PROXY) as lib:
        source = find(content, vim.VirtualMachine, datastore_vm)
        second = clone(clone(source, "lc-1", linked=True), "lc-2", linked=True)
        proxy = find(content, vim.VirtualMachine, K1_PROXY)
        if breaks:
            with pytest.raises(VixError) as caught:
                hotadd_read(lib, sim, second)
            assert caught.value.code == VixCode.FAIL and "cannot be bound" in caught.value.text
            assert proxy.runtime.connectionState == "invalid"
            with pytest.raises(vim.fault.InvalidState):
                wait(proxy.ReconfigVM_Task(vim.vm.ConfigSpec(annotation="x")))
            proxy.Reload()
        else:
            assert hotadd_read(lib, sim, second) == "hotadd"
        assert proxy.runtime.connectionState == "connected"


# --- K3 ---


@pytest.mark.parametrize(("vsphere", "build", "proxy", "flags"), [
    ("6.7U3", "6.7.3", "proxy-win2019", 1),
    ("6.7U3", "7.0.0", "proxy-win2019", 0),
    ("7.0U3", "6.7.3", "proxy-win2019", 0),
])  # fmt: skip
def test_k3_reboot_flag_needs_6_7_a_windows_2019_proxy_and_vsphere_6(
    tmp_path: Path, vsphere: str, build: str, proxy: str, flags: int
) -> None:
    with simulator(vsphere) as (sim, content), library(build, tmp_path, proxy) as lib:
        vm = find(content, vim.VirtualMachine, "target-vmfs")
        assert hotadd_read(lib, sim, vm) == "hotadd"
        issues = [str(i.fullFormattedMessage) for i in vm.configIssue or []]
        assert len(issues) == flags
        assert all(proxy in text and "restart" in text for text in issues)


# --- K5 ---


@pytest.mark.parametrize(("vsphere", "build", "recorded"), [
    ("7.0U2", "7.0.3", False), ("7.0U3", "7.0.3", False), ("6.7U3", "7.0.3", True), ("7.0U2", "6.7.3", True),
])  # fmt: skip
def test_k5_enable_phone_home_reaches_the_server_unless_vsphere_7_ignores_it(
    tmp_path: Path, vsphere: str, build: str, recorded: bool
) -> None:
    with simulator(vsphere) as (sim, content), library(build, tmp_path, "", {KEY_PHONE_HOME: 1}) as lib:
        vm = find(content, vim.VirtualMachine, "target-vmfs")
        with (
            lib.connected(params(sim, vm), True, None, "nbdssl") as connection,
            lib.opened(connection, disk_path(vm)) as disk,
        ):
            lib.read(disk, 0, 1)
        cookie = content.sessionManager._stub.cookie
        clients = discover(sim.host, sim.port, cookie, sim.thumbprint)["clients"]
        assert [c["phone_home"] for c in clients] == [recorded]


# --- K6 ---


@pytest.mark.parametrize(("vsphere", "build", "no_nfc_session", "opens"), [
    ("6.7U1", "6.7.1", 1, False),
    ("6.7U1", "6.7.1", 0, True),
    ("6.7U1", "6.7.2", 1, True),
    ("6.7U2", "6.7.1", 1, True),
])  # fmt: skip
def test_k6_hotadd_without_nfc_session_fails_on_a_percent_name_with_6_7_1_against_6_7u1(
    tmp_path: Path, vsphere: str, build: str, no_nfc_session: int, opens: bool
) -> None:
    config: dict[str, str | int] = {KEY_NO_NFC_SESSION: no_nfc_session}
    with simulator(vsphere) as (sim, content), library(build, tmp_path, K6_PROXY, config) as lib:
        vm = clone(find(content, vim.VirtualMachine, "target-vmfs"), "k6 a%41 100%")
        assert "%41" in disk_path(vm)
        if opens:
            assert hotadd_read(lib, sim, vm) == "hotadd"
        else:
            with pytest.raises(VixError) as caught:
                hotadd_read(lib, sim, vm)
            assert caught.value.code == VixCode.FILE_NOT_FOUND
