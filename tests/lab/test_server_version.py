"""The vSphere release comes from the server (``content.about``), for target files and the simulator alike.

A target file without ``server.vsphere`` gets the server's own release (no silent default); a declared one is
kept when the server's release agrees (VMC milestones track an on-prem release and speak its API version) and
is a one-line error when it does not. The simulator's ``about`` reports its profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from conformance.knowledge.versions import all_vsphere
from conformance.lab.target_file import TargetFileError
from conformance.lab.targets import file_target, simulator_target
from conformance.sim.instance import Simulator
from conformance.vsphere.about import ServerVersionError, server_version
from tests.lab.conftest import GUEST_ENV, PASSWORD_ENV, write_target


def about_of(name: str) -> SimpleNamespace:
    profile = next(v for v in all_vsphere() if v.name == name).facts
    return SimpleNamespace(
        fullName=profile.full_name, version=profile.version, build=profile.build, apiVersion=profile.api_version
    )


@pytest.mark.parametrize("name", [v.name for v in all_vsphere()])
def test_every_release_is_told_from_what_its_server_reports(name: str) -> None:
    assert server_version(about_of(name)).name == name


@pytest.mark.parametrize(("declared", "server", "kept"), [
    ("M16", "7.0U3", True),  # same release: a milestone cannot be told from the version
    ("7.0U3", "M16", True),
    ("M8", "6.7U1", True),
    ("6.7U3", "7.0U3", False),
    ("M16", "7.0U2", False),
])  # fmt: skip
def test_a_declared_release_is_kept_only_when_the_servers_release_agrees(
    declared: str, server: str, kept: bool
) -> None:
    if kept:
        assert server_version(about_of(server), declared).name == declared
        return
    with pytest.raises(ServerVersionError) as caught:
        server_version(about_of(server), declared)
    message = str(caught.value)
    assert "\n" not in message and f"the file says {declared}, the server is {server}" in message


def test_an_unknown_server_is_one_line_asking_for_a_declared_release() -> None:
    about = SimpleNamespace(fullName="VMware vCenter Server 9.1.0 build-1", build="1", apiVersion="9.1.0.0")
    with pytest.raises(ServerVersionError, match=r"no known vSphere release matches .* set server\.vsphere"):
        server_version(about)
    with pytest.raises(ServerVersionError, match=r"the file says 7\.0U3"):
        server_version(about, "7.0U3")


@pytest.fixture(scope="module")
def m16() -> Iterator[Simulator]:
    with Simulator(vsphere="M16") as sim:
        yield sim


def _file(tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch, declared: str | None) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, sim.password)
    monkeypatch.setenv(GUEST_ENV, "simulated-guest")
    line = f'vsphere = "{declared}"\n' if declared else ""
    server = f'[server]\nhost = "{sim.host}"\nport = {sim.port}\nthumbprint = "{sim.thumbprint}"\ndatacenter = "dc1"\n'
    info = {"host": sim.host, "port": sim.port, "thumbprint": sim.thumbprint, "user": sim.user, "vsphere": ""}
    return write_target(tmp_path / "lab.toml", info, server=server + line)


@pytest.mark.parametrize(("declared", "expected"), [(None, "M16"), ("M16", "M16"), ("7.0U3", "7.0U3")])
def test_a_target_files_release_comes_from_its_server(
    m16: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, declared: str | None, expected: str
) -> None:
    assert file_target(_file(tmp_path, m16, monkeypatch, declared)).vsphere == expected


def test_a_target_file_contradicting_its_server_is_one_line(
    m16: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TargetFileError) as caught:
        file_target(_file(tmp_path, m16, monkeypatch, "6.7U3"))
    message = str(caught.value)
    assert "\n" not in message and "the file says 6.7U3, the server is M16" in message
    assert m16.password not in message


def test_the_simulators_about_reports_its_profile(m16: Simulator) -> None:
    assert simulator_target(m16).vsphere == "M16"
