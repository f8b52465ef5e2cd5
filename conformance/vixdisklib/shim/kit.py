"""The simulated libvixDiskLib.so as a run's VDDK kit (`vddk-conformance run --vddk-backend native`): where a run
gets it, how the harness tells it from VMware's library, and what its private agent is told to play.

Where from: `run_kit()` compiles it once per version of the C sources (and interpreter) into a folder of its own
under the per-user cache (`<default_folder()>-runs/<key>`); a folder is complete before anyone uses it and never
rebuilt afterwards, so every process of a run (xdist workers, K2/R4's backup processes) loads the very same files
even if the sources change meanwhile. A file lock serialises two runs building the same version at once.

How it is recognised: `build()` writes its stamp (`.vddkc-shim-stamp`) next to the libraries it compiled; a libdir
holding that stamp (in the folder or its lib64/) holds the simulated library, unless VDDKC_SHIM_FORWARD is set, in
which case the same library forwards to VMware's own and is treated as VMware's. VMware's kits carry no such file.

What it plays: the library starts a private agent at InitEx, configured from the environment at that moment
(c/agent_session.c); `agent_environment` is that configuration for what `make_library` was asked for, which the
ctypes backend sets just around InitEx (native/library.py), so the agent plays what the simulated backend would.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from conformance.vixdisklib.shim.build import SOURCES, STAMP, build, default_folder, package_root

#: the variables the C library reads at InitEx to start its private agent (all of them are always set, empty
#: when unused: an agent never inherits a value the run did not ask for; an empty VDDKC_SHIM_AGENT means private)
AGENT_VARIABLES = (
    "VDDKC_SHIM_AGENT",
    "VDDKC_SIM_BUILD",
    "VDDKC_SIM_PROXY_VM",
    "VDDKC_SIM_PHYSICAL_PROXY",
    "VDDKC_SIM_FIXED",
    "VDDKC_SIM_FAULTS",
)


def simulated_kit(libdir: Path | None, environ: Mapping[str, str] | None = None) -> bool:
    """True when `libdir` holds the simulated libvixDiskLib built by `build()` (its stamp, in the folder or
    lib64/) and the library will not forward to VMware's (VDDKC_SHIM_FORWARD unset)."""
    if libdir is None:
        return False
    env = os.environ if environ is None else environ
    if env.get("VDDKC_SHIM_FORWARD"):
        return False
    folder = Path(libdir)
    return (folder / STAMP).is_file() or (folder / "lib64" / STAMP).is_file()


def agent_environment(
    build: str,
    proxy_vm: str | None = None,
    physical_proxy: str | None = None,
    fixed: tuple[str, ...] = (),
    faults: tuple[str, ...] = (),
) -> dict[str, str]:
    """The environment the C library reads at InitEx for its private agent (AGENT_VARIABLES, "" = unset)."""
    return {
        "VDDKC_SHIM_AGENT": "",  # a private agent, never a shared one another process happens to advertise
        "VDDKC_SIM_BUILD": build,
        "VDDKC_SIM_PROXY_VM": proxy_vm or "",
        "VDDKC_SIM_PHYSICAL_PROXY": physical_proxy or "",
        "VDDKC_SIM_FIXED": ",".join(fixed),
        "VDDKC_SIM_FAULTS": ",".join(faults),
    }


def _key() -> str:
    """What the compiled libraries depend on besides the compiler: the C sources, this interpreter (the agent's)
    and the folder the package is imported from."""
    digest = hashlib.sha256()
    for source in sorted(SOURCES.glob("*.[ch]")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    digest.update(sys.executable.encode() + b"\0" + str(package_root()).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_kit(base: Path | None = None) -> Path:
    """The folder of the simulated libvixDiskLib.so.6/.7/.8 for the current sources (compiled unless already
    there); ShimBuildError (one line) when it cannot be compiled. Safe to call from several processes at once."""
    base = Path(base) if base is not None else default_folder().with_name(default_folder().name + "-runs")
    folder = base / _key()
    with _locked(base / f".{folder.name}.lock"):
        build(folder)  # up to date: returns at once (its stamp)
    return folder


def played_tmp_directory(agent_env: Mapping[str, str], pid: int, environ: Mapping[str, str] | None = None) -> Path:
    """VDDK's default temporary directory as the simulated C library plays it for product process `pid` (no
    tmpDirectory in the InitEx configuration), from the agent's configuration `agent_env` (AGENT_VARIABLES):
    `<TMPDIR>/vmware-<user>/vixDiskLib-<pid>` for a build with K2's per-process default, else
    `<TMPDIR>/vmware-<user>/vixDiskLib` (the rule of shim/sessions.py, from the knowledge layer's build facts,
    so the product side never imports the simulated library)."""
    import getpass

    from conformance.knowledge.build_facts import behaviour_of, known_issue_fixes

    per_process = behaviour_of(agent_env["VDDKC_SIM_BUILD"]).default_tmp_per_process
    fixes = known_issue_fixes()
    for item in (agent_env.get("VDDKC_SIM_FIXED") or "").split(","):
        per_process = bool(fixes.get(item, {}).get("default_tmp_per_process", per_process))
    env = os.environ if environ is None else environ
    # the agent inherits this environment at InitEx; its tempfile.gettempdir() takes the first usable of these
    base = next((env[n] for n in ("TMPDIR", "TEMP", "TMP") if env.get(n) and Path(env[n]).is_dir()), "/tmp")
    return Path(base) / f"vmware-{getpass.getuser()}" / (f"vixDiskLib-{pid}" if per_process else "vixDiskLib")
