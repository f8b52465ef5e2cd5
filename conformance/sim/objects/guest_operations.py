"""GuestOperationsManager with its FileManager and ProcessManager.

Each VM's guest file system is a host folder, `<state dir>/guests/<vm moid>/` (Linux paths map below
it, `C:\\dir\\file` to `C/dir/file`); the programs it can run are in `conformance.sim.guest_programs`.

Like vSphere: the VM must be powered on (InvalidPowerState) with tools running (GuestOperationsUnavailable).
Authentication is `NamePasswordAuthentication`: the simulated guests have no user database, so any
non-empty user name with a non-empty password logs in (an empty one is InvalidGuestLogin); the user
name becomes the owner of started processes. Other authentication types are NotSupported.

Programs run on their own threads (see guest_programs for the program set); `workingDirectory` resolves
relative paths, `envVariables` is accepted and unused (no simulated program reads its environment).
File transfers hand out `https://127.0.0.1:<port>/guestFile?id=<token>` URLs, served by
`fileservice.GuestTransfers`: as on ESXi the token is the credential (no session cookie), one use.
"""

from __future__ import annotations

import datetime
import logging
import ntpath
import posixpath
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim, vmodl

from conformance.sim.fileservice import GuestTransfers
from conformance.sim.guest_programs import ProcessKilledError, dispatch
from conformance.sim.objects.virtual_machine import VirtualMachineImpl
from conformance.sim.registry import ManagedObjectImpl, ObjectRegistry, soap_method

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext
    from conformance.sim.objects.disks import DiskState

log = logging.getLogger("conformance.sim.guest")

LINUX_DIRS = ("/tmp", "/root", "/home", "/var/tmp")
WINDOWS_DIRS = ("C:\\Windows\\Temp", "C:\\Windows\\System32", "C:\\Users")
#: exited processes stay listed this long, as VMware Tools keeps them (5 minutes)
EXITED_KEPT = 300.0
FIRST_PID = 4000


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class GuestFS:
    """Guest paths of one VM mapped onto a host folder; guest `..` never leaves that folder."""

    def __init__(self, root: Path, windows: bool) -> None:
        self.root = root
        self.windows = windows
        for folder in WINDOWS_DIRS if windows else LINUX_DIRS:
            self.host_path(folder).mkdir(parents=True, exist_ok=True)

    @property
    def temp_dir(self) -> str:
        return "C:\\Windows\\Temp" if self.windows else "/tmp"

    def host_path(self, guest_path: str, cwd: str | None = None) -> Path:
        """Host path of a guest path; ValueError for relative paths without `cwd` and for other forms."""
        if "\x00" in guest_path or not guest_path:
            raise ValueError(f"invalid guest path {guest_path!r}")
        if self.windows:
            text = guest_path.replace("/", "\\")
            if not re.match(r"^[A-Za-z]:\\", text):
                if cwd is None or text.startswith("\\"):
                    raise ValueError(f"{guest_path!r} is not an absolute Windows path like C:\\dir\\file")
                text = ntpath.join(cwd.replace("/", "\\"), text)
            drive, rest = text[0].upper(), ntpath.normpath(text[2:]).lstrip("\\")
            path = self.root / drive
            for part in (p for p in rest.split("\\") if p not in ("", ".")):
                # Windows names are case-insensitive: reuse an existing entry's spelling
                same = [c for c in path.iterdir() if c.name.lower() == part.lower()] if path.is_dir() else []
                path = same[0] if same else path / part
            return path
        if not guest_path.startswith("/"):
            if cwd is None:
                raise ValueError(f"{guest_path!r} is not an absolute path")
            guest_path = posixpath.join(cwd, guest_path)
        parts = [p for p in posixpath.normpath("/" + guest_path).split("/") if p]
        return self.root.joinpath(*parts)


@dataclass
class GuestProcess:
    """One process started through the API: what ListProcessesInGuest reports about it."""

    pid: int
    name: str
    owner: str
    cmd_line: str
    start_time: datetime.datetime
    end_time: datetime.datetime | None = None
    exit_code: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class ProgramRun:
    """What a running program may touch: the guest's files, the VM's disks, and its own kill switch."""

    vm: VirtualMachineImpl
    fs: GuestFS
    process: GuestProcess
    cwd: str | None
    stderr: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise ProcessKilledError when the process was terminated or the VM stopped running."""
        if self.process.cancel.is_set() or self.vm.power_state != "poweredOn":
            raise ProcessKilledError()

    def disk(self, device: str) -> DiskState | None:
        """The disk behind /dev/sdX (X = a, b, ...), None when the VM has no such disk."""
        match = re.fullmatch(r"/dev/sd([a-z])", device)
        if not match:
            return None
        disks = sorted(self.vm.disks, key=lambda d: (d.controller_key, d.unit_number))
        index = ord(match.group(1)) - ord("a")
        return disks[index] if index < len(disks) else None


def run(run_ctx: ProgramRun, program_path: str, arguments: str) -> int:
    """Run one program to its exit code (never a traceback); its stderr is kept in a guest .err file."""
    try:
        code = dispatch(run_ctx, program_path, arguments)
    except ProcessKilledError:
        code = 1 if run_ctx.fs.windows else 137
    except Exception as exc:
        log.exception("guest program %s failed in the simulator", program_path)
        run_ctx.stderr.append(f"{program_path}: internal simulator error: {exc}")
        code = 1
    if run_ctx.stderr:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", run_ctx.process.name)
        sep = "\\" if run_ctx.fs.windows else "/"
        err_file = f"{run_ctx.fs.temp_dir}{sep}vmware-{name}-{run_ctx.process.pid}.err"
        try:
            path = run_ctx.fs.host_path(err_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(run_ctx.stderr) + "\n")
        except OSError:
            log.debug("cannot keep stderr of pid %s", run_ctx.process.pid, exc_info=True)
    return code


class VmGuest:
    """What one powered-on guest holds: its file system and the processes started since it booted."""

    def __init__(self, vm: VirtualMachineImpl) -> None:
        self.fs = GuestFS(vm.ctx.state_dir / "guests" / vm.moid, vm.is_windows())
        self.boot_time = vm.boot_time
        self.processes: dict[int, GuestProcess] = {}
        self.next_pid = FIRST_PID

    def live_processes(self) -> list[GuestProcess]:
        cutoff = _now() - datetime.timedelta(seconds=EXITED_KEPT)
        for pid in [p.pid for p in self.processes.values() if p.end_time is not None and p.end_time < cutoff]:
            del self.processes[pid]
        return list(self.processes.values())


class GuestOperationsManagerImpl(ManagedObjectImpl):
    vim_type = vim.vm.guest.GuestOperationsManager
    id_prefix = "guestOperationsManager"

    def __init__(self, registry: ObjectRegistry) -> None:
        super().__init__(registry, "guestOperationsManager")
        self.file_manager = GuestFileManagerImpl(registry, self)
        self.process_manager = GuestProcessManagerImpl(registry, self)
        self.transfers = GuestTransfers(registry.ctx)
        self._guests: dict[str, VmGuest] = {}

    def shutdown(self) -> None:
        """Kill every guest process (for a simulator that stops; their threads end within 0.2 s)."""
        with self.registry.lock:
            for guest in self._guests.values():
                for process in guest.processes.values():
                    process.cancel.set()

    def prop_fileManager(self) -> Any:
        return self.file_manager.ref

    def prop_processManager(self) -> Any:
        return self.process_manager.ref

    def guest(self, vm_ref: Any, auth: Any) -> tuple[VirtualMachineImpl, VmGuest]:
        """The VM and its guest state after the checks every guest operation makes (power, tools, login)."""
        vm = self.registry.get(vm_ref, VirtualMachineImpl)
        if vm.power_state != "poweredOn":
            raise vim.fault.InvalidPowerState(
                msg=f"The attempted operation cannot be performed in the current state ({vm.power_state}).",
                requestedState="poweredOn",
                existingState=vm.power_state,
            )
        if vm.guest_info().toolsRunningStatus != "guestToolsRunning":
            raise vim.fault.GuestOperationsUnavailable(msg="The guest operations agent could not be contacted.")
        check_auth(auth)
        guest = self._guests.get(vm.moid)
        if guest is None or guest.boot_time != vm.boot_time:
            if guest is not None:  # rebooted: the old processes are gone
                for process in guest.processes.values():
                    process.cancel.set()
            guest = self._guests[vm.moid] = VmGuest(vm)
        return vm, guest


def check_auth(auth: Any) -> None:
    if not isinstance(auth, vim.vm.guest.NamePasswordAuthentication):
        raise vmodl.fault.NotSupported(msg=f"{type(auth).__name__} is not simulated; use NamePasswordAuthentication")
    if not auth.username or not auth.password:
        raise vim.fault.InvalidGuestLogin(
            msg="Failed to authenticate with the guest operating system using the supplied credentials."
        )


def still_running(vm: VirtualMachineImpl) -> Callable[[], bool]:
    """A transfer is aborted when its VM powers off or reboots after the URL was handed out."""
    boot_time = vm.boot_time
    return lambda: vm.power_state == "poweredOn" and vm.boot_time == boot_time


def host_path(guest: VmGuest, guest_path: str) -> Path:
    try:
        return guest.fs.host_path(guest_path)
    except ValueError as exc:
        raise vmodl.fault.InvalidArgument(msg=str(exc), invalidProperty="path") from exc


def file_attributes(guest: VmGuest, path: Path) -> Any:
    stat = path.stat()
    mtime = datetime.datetime.fromtimestamp(stat.st_mtime, datetime.UTC)
    atime = datetime.datetime.fromtimestamp(stat.st_atime, datetime.UTC)
    if guest.fs.windows:
        return vim.vm.guest.FileManager.WindowsFileAttributes(
            modificationTime=mtime, accessTime=atime, createTime=mtime, hidden=False, readOnly=False
        )
    return vim.vm.guest.FileManager.PosixFileAttributes(
        modificationTime=mtime, accessTime=atime, ownerId=0, groupId=0, permissions=stat.st_mode & 0o7777
    )


class GuestFileManagerImpl(ManagedObjectImpl):
    vim_type = vim.vm.guest.FileManager
    id_prefix = "guestOperationsFileManager"

    def __init__(self, registry: ObjectRegistry, manager: GuestOperationsManagerImpl) -> None:
        super().__init__(registry, "guestOperationsFileManager")
        self.manager = manager

    @soap_method("MakeDirectoryInGuest")
    def make_directory(self, vm: Any, auth: Any, directoryPath: str, createParentDirectories: bool = False) -> None:
        _, guest = self.manager.guest(vm, auth)
        path = host_path(guest, directoryPath)
        if path.exists():
            raise vim.fault.FileAlreadyExists(msg=f"File {directoryPath} already exists", file=directoryPath)
        if not createParentDirectories and not path.parent.is_dir():
            raise vim.fault.FileNotFound(msg=f"File {directoryPath} was not found", file=directoryPath)
        try:
            path.mkdir(parents=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise vim.fault.NotADirectory(
                msg=f"{directoryPath}: a parent is not a directory", file=directoryPath
            ) from exc

    @soap_method("DeleteFileInGuest")
    def delete_file(self, vm: Any, auth: Any, filePath: str) -> None:
        _, guest = self.manager.guest(vm, auth)
        path = host_path(guest, filePath)
        if path.is_dir():
            raise vim.fault.NotAFile(msg=f"{filePath} is a directory", file=filePath)
        if not path.exists():
            raise vim.fault.FileNotFound(msg=f"File {filePath} was not found", file=filePath)
        path.unlink()

    @soap_method("DeleteDirectoryInGuest")
    def delete_directory(self, vm: Any, auth: Any, directoryPath: str, recursive: bool = False) -> None:
        _, guest = self.manager.guest(vm, auth)
        path = host_path(guest, directoryPath)
        if not path.exists():
            raise vim.fault.FileNotFound(msg=f"File {directoryPath} was not found", file=directoryPath)
        if not path.is_dir():
            raise vim.fault.NotADirectory(msg=f"{directoryPath} is not a directory", file=directoryPath)
        if any(path.iterdir()) and not recursive:
            raise vim.fault.DirectoryNotEmpty(msg=f"{directoryPath} is not empty", file=directoryPath)
        shutil.rmtree(path)

    @soap_method("ListFilesInGuest")
    def list_files(
        self, vm: Any, auth: Any, filePath: str, index: int = 0, maxResults: int = 0, matchPattern: str | None = None
    ) -> Any:
        _, guest = self.manager.guest(vm, auth)
        path = host_path(guest, filePath)
        if not path.exists():
            raise vim.fault.FileNotFound(msg=f"File {filePath} was not found", file=filePath)
        try:
            pattern = re.compile(matchPattern or ".*")
        except re.error as exc:
            raise vmodl.fault.InvalidArgument(msg=f"bad matchPattern: {exc}", invalidProperty="matchPattern") from exc
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        entries = [e for e in entries if pattern.search(e.name)]
        page = entries[index : index + maxResults] if maxResults else entries[index:]
        files = [
            vim.vm.guest.FileManager.FileInfo(
                path=e.name,
                type="directory" if e.is_dir() else "symlink" if e.is_symlink() else "file",
                size=0 if e.is_dir() else e.stat().st_size,
                attributes=file_attributes(guest, e),
            )
            for e in page
        ]
        return vim.vm.guest.FileManager.ListFileInfo(files=files, remaining=max(0, len(entries) - index - len(page)))

    @soap_method("InitiateFileTransferToGuest")
    def transfer_to_guest(
        self,
        vm: Any,
        auth: Any,
        guestFilePath: str,
        fileAttributes: Any = None,
        fileSize: int = 0,
        overwrite: bool = False,
    ) -> str:
        machine, guest = self.manager.guest(vm, auth)
        path = host_path(guest, guestFilePath)
        if path.is_dir():
            raise vim.fault.NotAFile(msg=f"{guestFilePath} is a directory", file=guestFilePath)
        if path.exists() and not overwrite:
            raise vim.fault.FileAlreadyExists(msg=f"File {guestFilePath} already exists", file=guestFilePath)
        if not path.parent.is_dir():
            raise vim.fault.FileNotFound(msg=f"File {path.parent.name} was not found", file=guestFilePath)
        return self.manager.transfers.add(path, True, overwrite, still_running(machine))

    @soap_method("InitiateFileTransferFromGuest")
    def transfer_from_guest(self, vm: Any, auth: Any, guestFilePath: str) -> Any:
        machine, guest = self.manager.guest(vm, auth)
        path = host_path(guest, guestFilePath)
        if path.is_dir():
            raise vim.fault.NotAFile(msg=f"{guestFilePath} is a directory", file=guestFilePath)
        if not path.is_file():
            raise vim.fault.FileNotFound(msg=f"File {guestFilePath} was not found", file=guestFilePath)
        url = self.manager.transfers.add(path, False, False, still_running(machine))
        return vim.vm.guest.FileManager.FileTransferInformation(
            attributes=file_attributes(guest, path), size=path.stat().st_size, url=url
        )


class GuestProcessManagerImpl(ManagedObjectImpl):
    vim_type = vim.vm.guest.ProcessManager
    id_prefix = "guestOperationsProcessManager"

    def __init__(self, registry: ObjectRegistry, manager: GuestOperationsManagerImpl) -> None:
        super().__init__(registry, "guestOperationsProcessManager")
        self.manager = manager

    @soap_method("StartProgramInGuest")
    def start_program(self, vm: Any, auth: Any, spec: Any) -> int:
        machine, guest = self.manager.guest(vm, auth)
        if not spec.programPath:
            raise vmodl.fault.InvalidArgument(msg="programPath is empty", invalidProperty="programPath")
        name = re.split(r"[\\/]", spec.programPath)[-1]
        process = GuestProcess(
            pid=guest.next_pid,
            name=name,
            owner=auth.username,
            start_time=_now(),
            cmd_line=f'"{spec.programPath}" {spec.arguments or ""}'.rstrip(),
        )
        guest.next_pid += 1
        guest.processes[process.pid] = process
        program_run = ProgramRun(machine, guest.fs, process, spec.workingDirectory or None)

        def body() -> None:
            code = run(program_run, spec.programPath, spec.arguments or "")
            with self.registry.lock:
                process.end_time, process.exit_code = _now(), code

        threading.Thread(target=body, name=f"guest-{machine.name}-{process.pid}", daemon=True).start()
        return process.pid

    @soap_method("ListProcessesInGuest")
    def list_processes(self, vm: Any, auth: Any, pids: list[int] | None = None) -> list[Any]:
        _, guest = self.manager.guest(vm, auth)
        wanted = set(pids or [])
        return [
            vim.vm.guest.ProcessManager.ProcessInfo(
                name=p.name,
                pid=p.pid,
                owner=p.owner,
                cmdLine=p.cmd_line,
                startTime=p.start_time,
                endTime=p.end_time,
                exitCode=p.exit_code,
            )
            for p in guest.live_processes()
            if not wanted or p.pid in wanted
        ]

    @soap_method("TerminateProcessInGuest")
    def terminate_process(self, vm: Any, auth: Any, pid: int) -> None:
        _, guest = self.manager.guest(vm, auth)
        process = guest.processes.get(pid)
        if process is None:
            raise vim.fault.GuestProcessNotFound(msg=f"The guest process {pid} was not found", pid=pid)
        process.cancel.set()


def register(ctx: SimContext) -> None:
    """Install guest operations on a simulator context (called by SimContext._optional_services)."""
    manager = GuestOperationsManagerImpl(ctx.registry)
    ctx.guest_operations_manager = manager
    ctx.guest_transfers = manager.transfers


__all__ = ["GuestFS", "GuestOperationsManagerImpl", "GuestProcess", "ProgramRun", "VmGuest", "register", "run"]
