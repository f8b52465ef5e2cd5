"""Which process owns a folder: runs and simulators write `owner.pid` (pid and process start time) into the folders
they are still writing, and the sweeper removes a marked folder only once its owner is dead. A base utility of its
own, so the simulator can mark its state folder without depending on the lab's sweeper."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OWNER_FILE", "alive", "named_pid", "owned_temp_dir", "owner_record", "write_owner"]

OWNER_FILE = "owner.pid"


def alive(pid: int, started: str | None) -> bool:
    """Whether the process that wrote an owner record still runs (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _state(pid) == "Z":  # a zombie: dead, waiting for a parent that may never reap it (its parent was killed too)
        return False
    if started is None:
        return True
    return _start_time(pid) == started  # the pid may have been reused by another process


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_record() -> str:
    """What a simulator writes into OWNER_FILE: its pid and process start time."""
    pid = os.getpid()
    return f"{pid} {_start_time(pid) or ''}".strip() + "\n"


def write_owner(folder: Path) -> None:
    """Mark `folder` as this process's: OWNER_FILE appears whole or not at all (a reader never sees half)."""
    scratch = folder / f".{OWNER_FILE}.{os.getpid()}"
    scratch.write_text(owner_record())
    scratch.replace(folder / OWNER_FILE)


def owned_temp_dir(prefix: str) -> Path:
    """A new folder `<tmp>/<prefix><pid>-<random>`, marked with OWNER_FILE. The pid is in the name too, so a
    process killed between making the folder and marking it still leaves a folder the sweeper can judge."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    write_owner(folder)
    return folder


def named_pid(name: str) -> int | None:
    """The creator's pid in a name `owned_temp_dir` made (`...-<pid>-<random>`; mkdtemp's random part has no
    dash), or None for a name of another shape."""
    parts = name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
