"""`vddk-conformance sim serve --vddk-agent`: the served simulator with the simulated library's agent beside it,
for a partner's product on the same machine. Its JSON line says what a product needs (library folder, agent
socket); a product using that socket reads the served VM's disk; stopping the server stops the agent and removes
its socket.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.types import ConnectParams, OpenFlags, UidCredentials
from conformance.vsphere.connection import Endpoint, connect, disconnect
from tests.lab.conftest import start_server, stop_server
from tests.shim.conftest import disks_of, find_vm


def agent_running(socket: str) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:
            continue
        if b"conformance.vixdisklib.shim.agent" in cmdline and socket.encode() in cmdline:
            return True
    return False


def test_a_product_reads_the_served_vm_through_the_served_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the simulated library cannot be built")
    password = "Serve-Pa55-" + os.urandom(4).hex()
    server = start_server(
        password, "--vddk-agent", "--proxy-vm", "proxy-rhel83", "--vddk-libdir", str(tmp_path / "lib")
    )
    try:
        info = server.info
        vddk = info["vddk"]
        socket = vddk["env"]["VDDKC_SHIM_AGENT"]
        assert Path(vddk["libdir"], "libvixDiskLib.so.7").is_file() and Path(socket).exists()
        assert vddk["env"]["LD_LIBRARY_PATH"] == vddk["libdir"] and password not in str(vddk)
        kit = tmp_path / "kit"  # a copy: this test's process loads its own instance of the library
        kit.mkdir()
        shutil.copy2(Path(vddk["libdir"]) / "libvixDiskLib.so.7", kit)
        monkeypatch.setenv("VDDKC_SHIM_AGENT", socket)
        endpoint = Endpoint(info["host"], info["port"], info["thumbprint"])
        instance = connect(endpoint, info["user"], password)
        try:
            vm = find_vm(instance.RetrieveContent(), "target-vmfs")
            path = str(disks_of(vm)[0].backing.fileName)
            moref = vm._moId
        finally:
            disconnect(instance)
        params = ConnectParams(
            server_name=info["host"], port=info["port"], credentials=UidCredentials(info["user"], password),
            thumbprint=info["thumbprint"],
        ).with_vm(moref)  # fmt: skip
        lib = VixDiskLib(NativeVixDiskLib("7.0.3", kit, 7))
        lib.init_ex(None)
        try:
            with (
                lib.connected(params, True, None, "nbdssl") as connection,
                lib.opened(connection, path, OpenFlags.READ_ONLY) as disk,
            ):
                data = lib.read(disk, 0, 2048)
                assert lib.get_transport_mode(disk) == "nbdssl"
        finally:
            lib.exit()
        assert len(data) == 2048 * 512 and hashlib.sha256(data).hexdigest()
        assert agent_running(socket), "the served agent must outlive one product's session"
    finally:
        stop_server(server)
    deadline = time.monotonic() + 10
    while (agent_running(socket) or Path(socket).exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not agent_running(socket) and not Path(socket).exists()
