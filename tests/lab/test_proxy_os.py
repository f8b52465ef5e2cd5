"""A target file without vms.proxy_os: the run takes the proxy's OS from the server, and preflight judges it.

Before, such a file keyed its proxy as "proxy": F2 found no proxy of any new OS and skipped every case, so a lab
certification could not pass, while preflight found nothing wrong. Now the proxy's OS is what the server reports
(`guest.guestFullName`, else `config.guestFullName`); a declared one still wins (a generic guest id); a proxy the
server reports no OS for is one line, from preflight and from the run alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from conformance.knowledge.proxy_support import find_os
from conformance.lab.target_file import TargetFileError
from conformance.lab.targets import file_target
from tests.cli import run_cli
from tests.lab.conftest import SimServer, start_server, stop_server, target_text, write_target


def _use_env(monkeypatch: pytest.MonkeyPatch, server: SimServer) -> None:
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)


def test_without_proxy_os_the_proxy_is_keyed_by_the_os_the_server_reports(
    sim_server: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_env(monkeypatch, sim_server)
    target = file_target(write_target(tmp_path / "lab.toml", sim_server.info))
    (guest_text, vm), *_ = target.proxies.items()
    assert vm == "proxy-rhel83" and guest_text == "Red Hat Enterprise Linux 8.3 (Ootpa)"
    entry = find_os(guest_text)  # how F2 finds the proxy of each new OS
    assert entry is not None and entry.label == "Red Hat Enterprise Linux 8.3"


def test_a_declared_proxy_os_wins(sim_server: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_env(monkeypatch, sim_server)
    text = target_text(sim_server.info).replace(
        'proxy = "proxy-rhel83"\n', 'proxy = "proxy-rhel83"\nproxy_os = "CentOS 8.3"\n'
    )
    path = tmp_path / "lab.toml"
    path.write_text(text)
    assert file_target(path).proxies == {"CentOS 8.3": "proxy-rhel83"}


def test_preflight_judges_the_reported_os_against_the_build(sim_server: SimServer, tmp_path: Path) -> None:
    """RHEL 8.3 is a HotAdd proxy from 7.0.3 on: a 7.0.2 target with that proxy and no proxy_os gets the line a
    declared OS would get (before: none)."""
    vddk = '[vddk]\nbuild = "7.0.2"\nbackend = "simulated"\ntransports = ["nbd", "nbdssl", "hotadd"]\n'
    path = write_target(tmp_path / "lab.toml", sim_server.info, vddk=vddk)
    result = run_cli("preflight", str(path), env=sim_server.env, timeout=120)
    lines = [line for line in result.stdout.splitlines() if "HotAdd proxy OS not supported" in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(lines) == 1 and "as the server reports it" in lines[0] and "proxy-rhel83" in lines[0], result.stdout


@pytest.fixture
def server_without_proxy_os(tmp_path: Path) -> Iterator[SimServer]:
    """A simulator whose proxy-rhel83 reports no guest OS (an OS-less guest id, VMware Tools not running)."""
    text = resources.files("conformance.data").joinpath("default_inventory.toml").read_text()
    reported = (
        'guest_full_name = "Red Hat Enterprise Linux 8 (64-bit)"\nguest_detail = "Red Hat Enterprise Linux 8.3 (Ootpa)"'
    )
    assert reported in text
    text = text.replace(reported, 'guest_full_name = ""\nguest_detail = ""')
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(text)
    server = start_server("Lab-Pa55w0rd-" + os.urandom(6).hex(), "--inventory", str(inventory))
    try:
        yield server
    finally:
        stop_server(server)


def test_a_proxy_the_server_reports_no_os_for_is_one_line(
    server_without_proxy_os: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_without_proxy_os
    path = write_target(tmp_path / "lab.toml", server.info)
    result = run_cli("preflight", str(path), env=server.env, timeout=120)
    lines = [line for line in result.stdout.splitlines() if "vms.proxy_os" in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(lines) == 1 and "reports no guest OS for proxy VM 'proxy-rhel83'" in lines[0], result.stdout
    _use_env(monkeypatch, server)
    with pytest.raises(TargetFileError, match=r"vms\.proxy_os: the server reports no guest OS") as caught:
        file_target(path)
    assert "\n" not in str(caught.value)
