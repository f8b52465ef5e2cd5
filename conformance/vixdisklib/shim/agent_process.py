"""Start and stop a shared agent of the simulated libvixDiskLib.so (the process `agent.py` runs).

Whoever starts an agent stops it: `vddk-conformance sim serve --vddk-agent` runs one beside its simulator for
the products a partner points at it (they find it through VDDKC_SHIM_AGENT), and the harness's tests run their
own. A product that finds no VDDKC_SHIM_AGENT starts a private agent itself (see c/agent_session.c).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError


class AgentStartError(InputError):
    """The agent did not come up: the one-line message says why (its own error is on its stderr)."""


@dataclass
class AgentOptions:
    """What the agent plays: a VDDK build, the proxy VM it runs in, known issues fixed, integrity faults."""

    build: str = "7.0.3"
    proxy_vm: str | None = None
    physical_proxy: str | None = None
    fixed: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    witness: Path | None = None  # record each call served here (witness.py)
    parent_pid: int | None = None  # the agent stops when this process is gone (a killed harness leaves none)

    def arguments(self) -> list[str]:
        out = ["--build", self.build]
        if self.proxy_vm:
            out += ["--proxy-vm", self.proxy_vm]
        if self.physical_proxy:
            out += ["--physical-proxy", self.physical_proxy]
        if self.fixed:
            out += ["--sim-fixed", ",".join(self.fixed)]
        if self.faults:
            out += ["--sim-fault", ",".join(self.faults)]
        if self.witness is not None:
            out += ["--witness", str(self.witness)]
        if self.parent_pid is not None:
            out += ["--parent-pid", str(self.parent_pid)]
        return out


@dataclass
class AgentProcess:
    socket_path: Path
    process: subprocess.Popen[bytes]
    folder: Path | None = None  # a temporary folder this object created for the socket (removed at stop)
    stopped: bool = field(default=False)

    def environment(self) -> dict[str, str]:
        """What a product needs in its environment to use this agent."""
        return {"VDDKC_SHIM_AGENT": str(self.socket_path)}

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; the socket and a folder made for it are removed."""
        if self.stopped:
            return
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.socket_path.unlink(missing_ok=True)
        if self.folder is not None:
            with contextlib.suppress(OSError):  # not empty: something else put a file there; leave it
                self.folder.rmdir()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def start_agent(
    options: AgentOptions, socket_path: Path | None = None, timeout: float = 60.0, stderr: Any = None
) -> AgentProcess:
    """An agent listening on `socket_path` (default: a new temporary folder named for this process)."""
    folder = None
    if socket_path is None:
        folder = Path(tempfile.mkdtemp(prefix=f"vddkc-agent-{os.getpid()}-"))
        socket_path = folder / "agent.sock"
    command = [sys.executable, "-m", "conformance.vixdisklib.shim.agent", "--socket", str(socket_path)]
    process = subprocess.Popen([*command, *options.arguments()], stdin=subprocess.DEVNULL, stderr=stderr)
    agent = AgentProcess(Path(socket_path), process, folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            agent.stop()
            raise AgentStartError(f"the simulated library's agent exited at start with status {process.returncode}")
        if socket_path.exists() and _answers(socket_path):
            return agent
        time.sleep(0.02)
    agent.stop()
    raise AgentStartError(f"the simulated library's agent did not listen on {socket_path} within {timeout:.0f} s")
