"""Server fault nfc-port-closed (D4): the data plane's ports refuse connections while the API port works, so login,
snapshots, metadata and PrepareForAccess succeed and disk Open fails as VDDK reports it; the data-plane check sees
it in one line, and sees nothing on a healthy simulator."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.lab.dataplane_check import LAB_PROBLEM, data_plane_problems
from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import ConnectParams, UidCredentials
from conformance.vsphere.connection import Endpoint
from conformance.vsphere.session import VsphereSession, disks_of


def session_of(sim: Simulator) -> VsphereSession:
    return VsphereSession(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password, "dc1")


@pytest.fixture
def closed() -> Iterator[Simulator]:
    with Simulator(sim_faults=("nfc-port-closed",)) as sim:
        yield sim


def test_the_data_plane_refuses_while_the_api_port_answers(closed: Simulator) -> None:
    info = closed.connection_info()
    for port in (info["nbd_port"], info["nbdssl_port"]):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((closed.host, port), timeout=5).close()
    session = session_of(closed)
    try:
        assert session.vm("target-vmfs").name == "target-vmfs"  # login and metadata over the API port
    finally:
        session.close()


def test_open_fails_as_vddk_reports_it_and_prepare_for_access_still_works(closed: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "vddk.conf"
    config.write_text(render_config({"tmpDirectory": str(tmp_path / "tmp")}))
    session = session_of(closed)
    lib = VixDiskLib(SimulatedVixDiskLib("7.0.3"))
    lib.init_ex(config)
    try:
        vm = session.vm("target-vmfs")
        snapshot = session.create_snapshot(vm, "backup", "D4")
        params = ConnectParams(
            server_name=closed.host,
            port=closed.port,
            credentials=UidCredentials(closed.user, closed.password),
            thumbprint=closed.thumbprint,
        ).with_vm(vm._moId)
        lib.prepare_for_access(params, "d4")  # DisableMethods: the API port, not NFC
        assert "RelocateVM_Task" in vm.disabledMethod
        lib.end_access(params, "d4")
        with lib.connected(params, True, snapshot._moId, "nbdssl") as connection, pytest.raises(VixError) as failed:
            lib.open(connection, disks_of(snapshot)[0].file_name)
        # every modelled build (up to 7.0.3) reports a network failure at Open as 13; 7.0.3.3 reports 14009
        assert failed.value.code == VixCode.FILE_ACCESS_ERROR
        assert "cannot connect to the NFC port" in str(failed.value)
    finally:
        lib.exit()
        session.close()


def test_the_check_says_it_in_one_line_naming_hosts_port_and_fix(closed: Simulator) -> None:
    session = session_of(closed)
    try:
        (line,) = data_plane_problems(session, "simulated")
    finally:
        session.close()
    info = closed.connection_info()
    assert line.startswith(f"{LAB_PROBLEM}: cannot connect to ESXi hosts esx-01") and "\n" not in line
    assert f"TCP {info['nbdssl_port']} and {info['nbd_port']}" in line
    assert f"(fix: open TCP {info['nbdssl_port']} and {info['nbd_port']} from the proxy to ESXi hosts" in line


def test_the_check_finds_nothing_on_a_healthy_simulator() -> None:
    with Simulator() as sim:
        session = session_of(sim)
        try:
            assert data_plane_problems(session, "simulated") == []
        finally:
            session.close()
