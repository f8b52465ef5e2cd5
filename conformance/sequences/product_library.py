"""Which libvixDiskLib a partner's product loads when the harness runs it, and the environment it needs.

The product always loads the harness's C library (`conformance/vixdisklib/shim`), so every call it makes is
traced: against the simulator it is the simulated library, playing exactly what the run's own library plays
(build, proxy VM, known issues fixed, integrity faults); on a lab with VMware's library it is the tracing
library, forwarding to VMware's kit (the target's libdir).
"""

from __future__ import annotations

import dataclasses
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
    played = played_by(backend)
    if played is not None:  # what the library's own agent plays (the C library reads these at InitEx)
        env["VDDKC_SIM_BUILD"] = played.build
        optional = {
            "VDDKC_SIM_PROXY_VM": played.proxy_vm,
            "VDDKC_SIM_PHYSICAL_PROXY": played.physical_proxy,
            "VDDKC_SIM_FIXED": ",".join(played.fixed),
            "VDDKC_SIM_FAULTS": ",".join(played.faults),
        }
        env.update({key: value for key, value in optional.items() if value})
    else:
        env["VDDKC_SHIM_FORWARD"] = str(backend.libdir)
    return libdir, env


def played_by(backend: Any) -> AgentOptions | None:
    """What the run's simulated library plays (build, proxy placement, fixes, faults), for an agent serving a
    product beside it; None when the run's library is VMware's (the product's library forwards to it)."""
    if getattr(backend, "name", "") != "simulated":
        return None
    return AgentOptions(
        str(backend.build), backend.proxy_vm, backend.physical_proxy, tuple(backend.fixed),
        tuple(sorted(backend.sim_faults)),
    )  # fmt: skip


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
    played = played_by(backend)
    if played is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix=f"vddkc-agent-{os.getpid()}-"))  # short: a socket path is <108 bytes
    options = dataclasses.replace(played, witness=folder / "served.jsonl", parent_pid=os.getpid())
    try:
        with log.open("ab") as stderr, start_agent(options, folder / "agent.sock", stderr=stderr) as agent:
            yield WitnessedAgent(agent.environment(), folder / "served.jsonl")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
