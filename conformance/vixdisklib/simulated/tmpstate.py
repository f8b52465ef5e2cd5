"""Per-connection temporary state of the simulated VixDiskLib, and what Cleanup does with it.

Each ConnectEx gets a session folder under the temporary directory (`tmpDirectory` of the InitEx
configuration, or a per-process default as real VDDK's default can differ from job to job: K2). A HotAdd
connection writes `unmount.dat` there listing the disks it hot-added; Disconnect removes the folder.
Cleanup releases what crashed processes left: it hot-removes the listed disks and deletes the folder. A
folder without `unmount.dat` is what R4 is about: 7.0.3 deletes it, older builds report "Could not
unmount" and leave it.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

SESSIONS = "vixDiskLib-sessions"
UNMOUNT_INFO = "unmount.dat"
OWNER = "owner.json"


def default_tmp_directory(per_process: bool = True) -> Path:
    """VDDK's default temp folder differs per process here, as it can per backup job in the field (K2); with
    K2 played fixed (switch `default_tmp_per_process` off) every process of the user shares one."""
    folder = f"vixDiskLib-{os.getpid()}" if per_process else "vixDiskLib"
    return Path(tempfile.gettempdir()) / f"vmware-{getpass.getuser()}" / folder


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/pid/stat), to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass
class HotAddedDisk:
    proxy_vm: str  # moref
    file_name: str  # "[ds] dir/disk.vmdk" as attached
    device_key: int


@dataclass
class SessionFolder:
    path: Path

    @classmethod
    def create(cls, tmp_directory: Path, server: str) -> SessionFolder:
        folder = tmp_directory / SESSIONS / f"{server}-{uuid.uuid4().hex[:12]}"
        (folder / "ssl").mkdir(parents=True, exist_ok=False)
        owner = {"pid": os.getpid(), "start": process_start_time(os.getpid()), "server": server}
        (folder / OWNER).write_text(json.dumps(owner))
        return cls(folder)

    @property
    def server(self) -> str:
        try:
            return str(json.loads((self.path / OWNER).read_text()).get("server", ""))
        except (OSError, ValueError):
            return self.path.name.rsplit("-", 1)[0]

    def owner_alive(self) -> bool:
        try:
            owner = json.loads((self.path / OWNER).read_text())
        except (OSError, ValueError):
            return False
        pid = int(owner.get("pid", 0))
        return pid > 0 and process_start_time(pid) == owner.get("start") and process_start_time(pid) is not None

    def hot_added(self) -> list[HotAddedDisk] | None:
        """The disks listed in unmount.dat; None when the file is missing."""
        try:
            raw = json.loads((self.path / UNMOUNT_INFO).read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return []
        return [HotAddedDisk(**entry) for entry in raw]

    def record_hot_added(self, disks: list[HotAddedDisk]) -> None:
        target = self.path / UNMOUNT_INFO
        scratch = target.with_suffix(".tmp")
        scratch.write_text(json.dumps([asdict(d) for d in disks]))
        scratch.replace(target)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def session_folders(tmp_directory: Path, server: str) -> list[SessionFolder]:
    root = tmp_directory / SESSIONS
    if not root.is_dir():
        return []
    return [SessionFolder(p) for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith(f"{server}-")]


def remove_empty_trail(tmp_directory: Path) -> None:
    """At Exit: the default folder's empty trail (no session folder left in it) goes, so runs leave nothing in
    the temporary directory; a folder that still holds a session (a crashed connection's) stays for Cleanup.
    Only rmdir: a folder another process fills meanwhile is not empty and stays."""
    for folder in (tmp_directory / SESSIONS, tmp_directory, tmp_directory.parent):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue  # never made (no connection) or gone
        except OSError:
            return  # not empty: it stays, and so do the folders above it
