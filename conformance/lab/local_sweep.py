"""The sweeper's part on this machine: what killed runs, simulators, products and agents left in its folders.

Why apart from sweep.py: the server's leftovers need a vSphere session and an order the server accepts; these
need only the process table. Each folder names (or holds, in OWNER_FILE) the process that made it, and goes only
when that process is gone: a simulator's state, a run's temporary folder, an agent's socket folder, a half-written
report folder, and the empty trail of the simulated library's default temporary folder (`vmware-<user>/
vixDiskLib-<pid>`, as VDDK's own); such a folder that still holds a session of a crashed connection is left for
VixDiskLib_Cleanup, which releases its hot-added disks.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import tempfile
import time
from pathlib import Path

from conformance.ownership import OWNER_FILE, alive, named_pid

__all__ = [
    "OWNER_FILE", "RUN_TEMP_PREFIX", "SIM_DIR_PREFIX", "sweep_agent_dirs", "sweep_here", "sweep_library_trails",
    "sweep_owned", "sweep_reports", "sweep_run_temp", "sweep_sim_dirs",
]  # fmt: skip

#: the state folder a simulator creates (it writes OWNER_FILE into it; see conformance.sim.instance)
SIM_DIR_PREFIX = "vsphere-sim-"
#: a `vddk-conformance run`'s own temporary folder (pytest's basetemp inside), named with the run id
RUN_TEMP_PREFIX = "vddkc-run-"
#: the session folders inside the library's temporary folder (simulated/tmpstate.py's SESSIONS)
LIBRARY_SESSIONS = "vixDiskLib-sessions"


def sweep_here(reports: Path, *, older_than: float | None = None, dry_run: bool = False) -> list[str]:
    """Everything this machine's folders hold of dead processes, one line per folder removed."""
    return [
        *sweep_sim_dirs(older_than=older_than, dry_run=dry_run),
        *sweep_run_temp(older_than=older_than, dry_run=dry_run),
        *sweep_agent_dirs(dry_run=dry_run),
        *sweep_library_trails(dry_run=dry_run),
        *sweep_reports(reports, dry_run=dry_run),
    ]


def sweep_sim_dirs(root: Path | None = None, *, older_than: float | None = None, dry_run: bool = False) -> list[str]:
    """Remove `vsphere-sim-*` state folders whose owner process is dead (folders without an owner file are
    left alone unless older than `older_than` minutes)."""
    return sweep_owned(
        root or Path(tempfile.gettempdir()), f"{SIM_DIR_PREFIX}*", "simulator state", older_than, dry_run
    )


def sweep_run_temp(root: Path | None = None, *, older_than: float | None = None, dry_run: bool = False) -> list[str]:
    """Remove `vddkc-run-*` temporary folders (a run's pytest temp) whose run died before removing them."""
    return sweep_owned(root or Path(tempfile.gettempdir()), f"{RUN_TEMP_PREFIX}*", "run temporary folder",
                       older_than, dry_run)  # fmt: skip


#: the folders of the simulated libvixDiskLib's agents: a product's private one (named by the product's pid) and
#: those `start_agent` makes (named by the starting process's pid); each holds only the agent's socket
AGENT_DIR_PATTERNS = ("vddkc-shim-*", "vddkc-agent-*")


def sweep_agent_dirs(root: Path | None = None, *, dry_run: bool = False) -> list[str]:
    """Remove agent socket folders whose process is dead (a product or harness killed before its Exit)."""
    lines: list[str] = []
    root = root or Path(tempfile.gettempdir())
    for pattern in AGENT_DIR_PATTERNS:
        for folder in sorted(root.glob(pattern)):
            pid = folder.name.split("-")[2] if folder.name.count("-") >= 3 else ""
            if not pid.isdigit() or not folder.is_dir() or folder.is_symlink() or alive(int(pid), None):
                continue
            lines.append(_remove(folder, "agent folder", f"process {pid} is gone", dry_run))
    return lines


def sweep_library_trails(root: Path | None = None, *, dry_run: bool = False) -> list[str]:
    """Remove `vmware-<user>/vixDiskLib-<pid>` folders of dead processes that hold no session (a process killed
    before its Exit leaves one); one with a session is Cleanup's (see the module docstring)."""
    lines: list[str] = []
    base = (root or Path(tempfile.gettempdir())) / f"vmware-{getpass.getuser()}"
    if not base.is_dir() or base.is_symlink():
        return lines
    for folder in sorted(base.glob("vixDiskLib-*")):
        pid = folder.name.removeprefix("vixDiskLib-")
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink() or alive(int(pid), None):
            continue
        sessions = folder / LIBRARY_SESSIONS
        if any(child.name != LIBRARY_SESSIONS for child in folder.iterdir()) or (
            sessions.is_dir() and any(sessions.iterdir())
        ):
            continue  # a crashed connection's session (or something not ours): not an empty trail
        lines.append(_remove(folder, "library temporary folder", f"process {pid} is gone", dry_run))
    if not dry_run:
        with contextlib.suppress(OSError):  # only when empty: another process's folder keeps it
            base.rmdir()
    return lines


def sweep_reports(reports: Path, *, dry_run: bool = False) -> list[str]:
    """Remove report folders a run was still writing when it died (they hold `owner.pid`; finished ones do not)."""
    if not reports.is_dir():
        return []
    return sweep_owned(reports, "*", "half-written report folder", None, dry_run, need_owner=True)


def sweep_owned(root: Path, pattern: str, what: str, older_than: float | None, dry_run: bool,
                need_owner: bool = False) -> list[str]:  # fmt: skip
    """Remove folders matching `pattern` under `root` whose OWNER_FILE names a dead process. A folder without
    the file is removed only when older than `older_than` minutes (never when `need_owner`)."""
    lines: list[str] = []
    for folder in sorted(root.glob(pattern)):
        if not folder.is_dir() or folder.is_symlink():
            continue
        owner = folder / OWNER_FILE
        try:
            fields = owner.read_text().split()
        except OSError:
            fields = []
        if fields:
            try:
                if alive(int(fields[0]), fields[1] if len(fields) > 1 else None):
                    continue
            except ValueError:
                pass
            why = f"owner pid {fields[0]} is gone"
        elif (pid := named_pid(folder.name)) is not None and not need_owner:  # killed before it marked the folder
            if alive(pid, None):
                continue
            why = f"not marked, and pid {pid} of its name is gone"
        else:
            age = time.time() - folder.stat().st_mtime
            if need_owner or older_than is None or age < older_than * 60:
                continue
            why = f"no owner file, untouched for {age / 60:.0f} min"
        lines.append(_remove(folder, what, why, dry_run))
    return lines


def _remove(folder: Path, what: str, why: str, dry_run: bool) -> str:
    """Remove `folder` (unless a dry run) and say so in the sweep's one line."""
    if dry_run:
        return f"would remove {what} {folder} ({why})"
    shutil.rmtree(folder, ignore_errors=True)
    return f"removed {what} {folder} ({why})"
