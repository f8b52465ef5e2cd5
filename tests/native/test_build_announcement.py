"""The native backend's build is the one the loaded library announces at InitEx ("VMware VixDiskLib (x.y.z)
Release build-n" through the log callback), not the configured string; another release than the configured
one refuses the run in one line, with InitEx undone. Shown on the C double, whose announced version is set by
VIXDOUBLE_VERSION."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.native.library import LibraryBuildMismatchError, NativeVixDiskLib
from tests.cli import run_cli
from tests.lab.conftest import start_server, stop_server, write_target
from tests.native.conftest import BUILDS, MAJORS, Kits, MakeNative, double_state


@pytest.mark.parametrize("major", MAJORS)
def test_the_build_is_what_the_library_announces(make_native: MakeNative, major: int) -> None:
    backend = make_native(major).backend
    assert isinstance(backend, NativeVixDiskLib)
    assert backend.build == BUILDS[major] and backend.announced == (BUILDS[major], f"{major}000000")


@pytest.mark.parametrize(("configured", "announced"), [("7.0.3", "7.0.2"), ("7.0.2", "7.0.3")])
def test_another_release_than_configured_refuses_in_one_line_and_undoes_init_ex(
    kits: Kits, vddk_conf: Path, monkeypatch: pytest.MonkeyPatch, configured: str, announced: str
) -> None:
    monkeypatch.setenv("VIXDOUBLE_VERSION", announced)
    lib = VixDiskLib(NativeVixDiskLib(configured, kits.flat, 7))
    with pytest.raises(LibraryBuildMismatchError) as caught:
        lib.init_ex(vddk_conf)
    message = str(caught.value)
    assert "\n" not in message and f"announces VDDK {announced}" in message and configured in message
    assert not lib.initialised and double_state(lib)["initialised"] == "0"


def test_a_library_that_announces_nothing_keeps_the_configured_build_and_says_so(
    kits: Kits, vddk_conf: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("VIXDOUBLE_VERSION", "")
    lib = VixDiskLib(NativeVixDiskLib("7.0.3", kits.flat, 7))
    with caplog.at_level(logging.WARNING, logger="conformance.vixdisklib.native"):
        lib.init_ex(vddk_conf)
    try:
        assert isinstance(lib.backend, NativeVixDiskLib) and lib.backend.announced is None
        assert lib.backend.build == "7.0.3" and "announced no version" in caplog.text
    finally:
        lib.exit()


def test_a_run_over_a_library_of_another_release_stops_in_one_line(kits: Kits, tmp_path: Path) -> None:
    """The run refuses: the vixdisklib fixture turns the mismatch into one line and exit status 2."""
    server = start_server("Lab-Pa55w0rd-" + os.urandom(6).hex())
    try:
        vddk = f'[vddk]\nbuild = "7.0.3"\nbackend = "native"\nlibdir = "{kits.lib64}"\n'
        path = write_target(tmp_path / "lab.toml", server.info, vddk=vddk)
        result = run_cli(
            "run", "--target", str(path), "--reports", str(tmp_path / "r"), "-n", "0", "--release-note", "C4",
            env={**server.env, "VIXDOUBLE_VERSION": "7.0.2"},
        )  # fmt: skip
    finally:
        stop_server(server)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output[-2000:]
    assert "announces VDDK 7.0.2" in output and "configured for 7.0.3" in output
