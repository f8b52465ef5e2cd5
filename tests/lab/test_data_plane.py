"""D4 through a target file: the preflight checks the data plane (the hosts' NFC port) after login, and says in one
line which host and port cannot be reached and how to fix it; a healthy server has no such line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import SimServer, run_cli, start_server, stop_server, write_target


@pytest.fixture
def closed_nfc_server() -> Iterator[SimServer]:
    server = start_server("Lab-Pa55w0rd-" + os.urandom(6).hex(), "--sim-fault", "nfc-port-closed")
    try:
        yield server
    finally:
        stop_server(server)


def test_preflight_names_the_host_and_port_when_the_nfc_port_is_closed(
    tmp_path: Path, closed_nfc_server: SimServer
) -> None:
    path = write_target(tmp_path / "lab.toml", closed_nfc_server.info)
    result = run_cli("preflight", str(path), env=closed_nfc_server.env, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith(f"{path}: lab problem: data plane unreachable: cannot connect to ESXi hosts esx-01"), line
    assert "Connection refused" in line and "(fix: open TCP " in line and "from the proxy to ESXi hosts" in line


def test_preflight_of_a_healthy_server_finds_the_data_plane(tmp_path: Path, sim_server: SimServer) -> None:
    path = write_target(tmp_path / "lab.toml", sim_server.info)
    result = run_cli("preflight", str(path), env=sim_server.env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"preflight: target {path}: no problem found"


def test_the_nfc_port_of_a_target_file_is_a_port_number(tmp_path: Path, sim_server: SimServer) -> None:
    path = write_target(tmp_path / "lab.toml", sim_server.info)
    path.write_text(path.read_text().replace("[server]\n", '[server]\nnfc_port = "nine-oh-two"\n'))
    result = run_cli("preflight", str(path), env=sim_server.env, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr + result.stdout
    assert "server.nfc_port: must be a port number" in result.stdout + result.stderr
