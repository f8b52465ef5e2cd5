"""Fixtures for the shim agent: an embedded simulator in this process, agents as subprocesses that reach it over
loopback HTTPS (as the simulated library does), and a small client that speaks wire.py as the C library would.

Every agent started here is stopped at teardown (SIGTERM, then SIGKILL); its stderr goes to a file the tests read.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.vixdisklib.shim import wire
from conformance.vixdisklib.shim.wire import Op, Value
from conformance.vixdisklib.types import ConnectParams, SessionCredentials, UidCredentials
from conformance.vsphere.connection import Endpoint, connect, disconnect
from conformance.vsphere.guest import GuestCredentials, GuestWorkload

REPO = Path(__file__).resolve().parents[2]
PROXY_VM = "proxy-rhel83"
ABI = 7  # the C library's ABI major for the default build (7.0.3)
KiB, MiB = 1024, 1024 * 1024
#: written by the guest (dd) into target-vmfs before the backup snapshot: byte offset -> data
PATTERNS = {1 * MiB: os.urandom(64 * KiB), 3 * MiB: os.urandom(128 * KiB)}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as instance:
        yield instance


@pytest.fixture(scope="module")
def content(sim: Simulator) -> Iterator[Any]:
    service_instance = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
    yield service_instance.RetrieveContent()
    disconnect(service_instance)


def connect_params(sim: Simulator) -> ConnectParams:
    """ConnectParams for the simulator, without a VM (add one with `.with_vm(moref)`)."""
    return ConnectParams(
        server_name=sim.host,
        port=sim.port,
        credentials=UidCredentials(sim.user, sim.password),
        thumbprint=sim.thumbprint,
    )


def find_vm(content: Any, name: str) -> Any:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return next(vm for vm in view.view if vm.name == name)
    finally:
        view.DestroyView()


def disks_of(owner: Any) -> list[Any]:
    found = [d for d in owner.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    return sorted(found, key=lambda d: (d.controllerKey, d.unitNumber))


@dataclass(frozen=True)
class Backup:
    params: ConnectParams  # with the VM
    snapshot: str  # moref
    path: str  # the disk as the snapshot records it


@pytest.fixture(scope="module")
def backup(sim: Simulator, content: Any) -> Backup:
    """target-vmfs with PATTERNS written by dd in the guest, then snapshotted."""
    vm = find_vm(content, "target-vmfs")
    context = ssl.create_default_context(cafile=str(sim.cert_file))
    workload = GuestWorkload(content, vm, GuestCredentials("root", "guest-password"), context)
    for offset, data in PATTERNS.items():
        workload.write_disk(0, offset, data)
    task = vm.CreateSnapshot_Task("shim-backup", None, False, False)
    WaitForTask(task)
    snap = task.info.result
    return Backup(connect_params(sim).with_vm(vm._moId), snap._moId, str(disks_of(snap)[0].backing.fileName))


def params_values(params: ConnectParams) -> list[Value]:
    """PARAMS (wire.py): the 17 values the C library sends for a VixDiskLibConnectParams."""
    creds = params.credentials
    fcd = params.vstorage_object
    return [
        params.vmx_spec, params.server_name, params.thumbprint, int(creds.cred_type) if creds else 0,
        getattr(creds, "user", None), creds.password if isinstance(creds, UidCredentials) else None,
        creds.cookie if isinstance(creds, SessionCredentials) else None,
        creds.key if isinstance(creds, SessionCredentials) else None, params.port, params.nfc_host_port, None,
        int(params.spec_type), fcd.id if fcd else None, fcd.datastore_moref if fcd else None,
        fcd.ssid if fcd else None, 0, 128,
    ]  # fmt: skip


@dataclass(frozen=True)
class Reply:
    error: int
    text: str | None
    logs: list[str]
    results: list[Value]


class ShimClient:
    """One connection to an agent, as one product thread's connection of the C library."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self.token: str | None = None

    def call(self, op: Op, *args: Value | wire.Bytes) -> Reply:
        wire.send(self.sock, [int(op), *args])
        return Reply(*wire.split_response(wire.receive(self.sock)))

    def ok(self, op: Op, *args: Value | wire.Bytes) -> list[Value]:
        """The results of a call that must succeed."""
        reply = self.call(op, *args)
        assert reply.error == 0, f"{op.name}: {reply.error} {reply.text}"
        return reply.results

    def hello(self, token: str | None = None, pid: int | None = None, tid: int | None = None, abi: int = ABI) -> Reply:
        reply = self.call(Op.HELLO, pid or os.getpid(), tid or threading.get_native_id(), token, abi)
        if reply.error == 0:
            self.token = str(reply.results[0])
        return reply

    def closed_by_peer(self) -> bool:
        """True when the agent hung up on this connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    socket: Path
    log: Path

    def client(self, hello: bool = True, **kwargs: Any) -> ShimClient:
        client = ShimClient(self.socket)
        if hello:
            reply = client.hello(**kwargs)
            assert reply.error == 0, reply
        return client

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log_text())
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"the agent never logged {pattern!r}:\n{self.log_text()[-3000:]}")

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


StartAgent = Callable[..., Agent]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    """`start_agent(*options)`: an agent subprocess (proxy VM proxy-rhel83 unless options say otherwise),
    listening once this returns; its TMPDIR is this test's, so VDDK's default temporary folder lands there."""
    started: list[Agent] = []
    folder = Path(tempfile.mkdtemp(prefix="shim-"))  # short: a Unix socket path has at most 107 bytes
    (tmp_path / "TMPDIR").mkdir()

    def start(*options: str, proxy_vm: str | None = PROXY_VM) -> Agent:
        path, log = folder / f"agent-{len(started)}.sock", tmp_path / f"agent-{len(started)}.log"
        command = [sys.executable, "-m", "conformance.vixdisklib.shim.agent", "--socket", str(path), *options]
        command += ["--proxy-vm", proxy_vm] if proxy_vm else []
        env = {**os.environ, "TMPDIR": str(tmp_path / "TMPDIR")}
        with log.open("wb") as stderr:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=stderr, cwd=REPO, env=env)
        agent = Agent(process, path, log)
        started.append(agent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the agent exited at start:\n{agent.log_text()}"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if path.exists() and probe.connect_ex(str(path)) == 0:
                    return agent
            time.sleep(0.02)
        raise AssertionError(f"the agent did not listen within 30 s:\n{agent.log_text()}")

    yield start
    for agent in started:
        agent.stop()
    for leftover in folder.iterdir():
        leftover.unlink()
    folder.rmdir()
