"""Which libvixDiskLib a partner's product loads when the harness runs it, and the environment it needs.

The product always loads the harness's C library (`conformance/vixdisklib/shim`), so every call it makes is
traced: against the simulator it is the simulated library, playing exactly what the run's own library plays
(build, proxy VM, known issues fixed, integrity faults); on a lab with VMware's library it is the tracing
library, forwarding to VMware's kit (the target's libdir).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.vixdisklib.shim.agent_process import AgentOptions, start_agent
from conformance.vixdisklib.shim.build import build, default_folder
from conformance.vixdisklib.shim.witness import Served, read_witness

_built: dict[Path, Path] = {}
_lock = threading.Lock()


def shim_folder(folder: Path | None = None) -> Path:
    """The folder of the built libraries: `folder`, else $VDDKC_SHIM_LIBDIR, else the per-user cache folder (built
    once per process; `build` keeps an up-to-date folder as it is)."""
    folder = folder or (Path(os.environ["VDDKC_SHIM_LIBDIR"]) if os.environ.get("VDDKC_SHIM_LIBDIR") else None)
    folder = folder or default_folder()
    with _lock:
        if folder not in _built:
            build(folder)
            _built[folder] = folder
    return folder


def library_environment(backend: Any, trace: Path) -> tuple[Path, dict[str, str]]:
    """(libdir, environment) for a product beside the run's library `backend`, tracing into `trace`."""
    libdir = shim_folder()
    env = {"VDDKC_TRACE": str(trace)}
    if getattr(backend, "name", "") == "simulated":
        env["VDDKC_SIM_BUILD"] = str(backend.build)
        optional = {
            "VDDKC_SIM_PROXY_VM": backend.proxy_vm,
            "VDDKC_SIM_PHYSICAL_PROXY": backend.physical_proxy,
            "VDDKC_SIM_FIXED": ",".join(backend.fixed),
            "VDDKC_SIM_FAULTS": ",".join(sorted(backend.sim_faults)),
        }
        env.update({key: value for key, value in optional.items() if value})
    else:
        env["VDDKC_SHIM_FORWARD"] = str(backend.libdir)
    return libdir, env


@dataclass(frozen=True)
class WitnessedAgent:
    """The harness's agent for one product command: what the product needs to use it, and its record."""

    environment: dict[str, str]
    witness: Path

    def served(self) -> list[Served]:
        return read_witness(self.witness)


@contextmanager
def witnessed_agent(backend: Any, log: Path) -> Iterator[WitnessedAgent | None]:
    """Against the simulator: an agent of the harness's own serving one product command (playing what `backend`
    plays) and recording every call it serves, stopped and removed on leaving; its log goes to `log`. None for
    VMware's library (the tracing library forwards in the product's process; its trace is the only record)."""
    if getattr(backend, "name", "") != "simulated":
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix=f"vddkc-agent-{os.getpid()}-"))  # short: a socket path is <108 bytes
    options = AgentOptions(
        str(backend.build), backend.proxy_vm, backend.physical_proxy, tuple(backend.fixed),
        tuple(sorted(backend.sim_faults)), witness=folder / "served.jsonl", parent_pid=os.getpid(),
    )  # fmt: skip
    try:
        with log.open("ab") as stderr, start_agent(options, folder / "agent.sock", stderr=stderr) as agent:
            yield WitnessedAgent(agent.environment(), folder / "served.jsonl")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
