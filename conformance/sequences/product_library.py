"""Which libvixDiskLib a partner's product loads when the harness runs it, and the environment it needs.

The product always loads the harness's C library (`conformance/vixdisklib/shim`), so every call it makes is
traced: against the simulator it is the simulated library, playing exactly what the run's own library plays
(build, proxy VM, known issues fixed, integrity faults); on a lab with VMware's library it is the tracing
library, forwarding to VMware's kit (the target's libdir).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from conformance.vixdisklib.shim.build import build, default_folder

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
