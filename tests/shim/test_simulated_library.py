"""The simulated libvixDiskLib.so: a product (here the ctypes backend, which calls it exactly as a C product would)
loads it and gets the simulated library of the harness behind the C ABI, through a private agent it starts itself.

What must hold: the bytes read through the C library over each transport are those the simulated library reads
in-process; the agent it started is gone after Exit (nothing is left running); a killed agent turns into VIX errors
in the product, not a hang.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.shim.build import build
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import OpenFlags
from tests.shim.conftest import PROXY_VM, Backup

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def shim_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the simulated library cannot be built")
    return build(tmp_path_factory.mktemp("shim"), majors=(7,))[7]


@pytest.fixture
def kit(shim_build: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the library (its own backend choice), its agent playing 7.0.3 in the proxy VM."""
    folder = tmp_path / "kit"
    folder.mkdir()
    shutil.copy2(shim_build, folder / shim_build.name)
    for name in [n for n in os.environ if n.startswith("VDDKC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VDDKC_SIM_PROXY_VM", PROXY_VM)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    return folder


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "vddk.conf"
    path.write_text(render_config({"tmpDirectory": str(tmp_path / "vddk-tmp")}))
    return path


def read_whole(lib: VixDiskLib, backup: Backup, transports: str) -> tuple[bytes, str]:
    connection = lib.connect_ex(backup.params, True, backup.snapshot, transports)
    try:
        disk = lib.open(connection, backup.path, OpenFlags.READ_ONLY)
        try:
            capacity = lib.get_info(disk).capacity
            data = b"".join(lib.read(disk, s, min(2048, capacity - s)) for s in range(0, capacity, 2048))
            return data, lib.get_transport_mode(disk)
        finally:
            lib.close(disk)
    finally:
        lib.disconnect(connection)
        lib.cleanup(backup.params)


def agents(tmp_path: Path) -> list[Path]:
    """The private agents' folders of this process (under its TMPDIR, or /tmp when that is too deep for a socket)."""
    pattern = f"vddkc-shim-{os.getpid()}-*"
    return sorted([*tmp_path.glob(pattern), *Path("/tmp").glob(pattern)])


def agent_pids(tmp_path: Path) -> list[int]:
    """This process's private agents (started with --parent-pid of this process), from /proc."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if b"conformance.vixdisklib.shim.agent" in cmdline and str(os.getpid()).encode() in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("transports", ["nbd", "nbdssl", "hotadd"])
def test_the_c_library_reads_what_the_simulated_library_reads(
    transports: str, kit: Path, config: Path, backup: Backup, sim: Simulator, tmp_path: Path
) -> None:
    expected_lib = VixDiskLib(SimulatedVixDiskLib("7.0.3", proxy_vm=PROXY_VM))
    expected_lib.init_ex(config)
    try:
        expected, _ = read_whole(expected_lib, backup, transports)
    finally:
        expected_lib.exit()
    lib = VixDiskLib(NativeVixDiskLib("7.0.3", kit, 7))
    lib.init_ex(config)
    try:
        assert agents(tmp_path), "the library started no private agent"
        data, mode = read_whole(lib, backup, transports)
    finally:
        lib.exit()
    assert mode == transports
    assert agent_pids(tmp_path) == [], "the private agent still runs after Exit"
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert agents(tmp_path) == [], "the private agent's folder is left after Exit"


def test_a_killed_agent_turns_into_vix_errors_not_a_hang(
    kit: Path, config: Path, backup: Backup, tmp_path: Path
) -> None:
    lib = VixDiskLib(NativeVixDiskLib("7.0.3", kit, 7))
    lib.init_ex(config)
    connection = lib.connect_ex(backup.params, True, backup.snapshot, "nbdssl")
    disk = lib.open(connection, backup.path, OpenFlags.READ_ONLY)
    pids = agent_pids(tmp_path)
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(VixError) as caught:
        lib.read(disk, 0, 8)
    assert time.monotonic() - started < 30
    assert caught.value.code == 36  # VIX_E_HOST_CONNECTION_LOST
    lib.exit()
    assert agents(tmp_path) == []
