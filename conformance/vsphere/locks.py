"""Cross-process locks per VM, so that two xdist workers (or two runs) never operate on one VM at once.

Why: two workers snapshotting, restoring into or cloning the same lab VM interfere (one removes the other's
snapshot, a restore overwrites a disk being backed up). A lock is an `flock` on a file under a shared folder,
keyed by target and VM name: the kernel releases it when its process dies (even on SIGKILL), so a killed run
never leaves a stale lock. Within one process the lock is re-entrant for the thread that holds it (a restore
reads its result back through a snapshot of the same VM); another thread of the same process waits like
another process would.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["VmLock", "VmLockTimeoutError", "VmLocks", "default_lock_dir"]

#: environment variable naming the shared folder of lock files (default: <tmp>/vddk-conformance-locks)
LOCK_DIR_ENV = "VDDKC_LOCK_DIR"


class VmLockTimeoutError(TimeoutError):
    """A VM stayed locked by another worker or run for longer than the wait allowed."""


def default_lock_dir() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "vddk-conformance-locks")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


class _Held:
    def __init__(self, fd: int, thread: int) -> None:
        self.fd = fd
        self.thread = thread
        self.count = 1


_held: dict[Path, _Held] = {}
_held_lock = threading.Lock()


class VmLock:
    """One VM's lock; use as a context manager or acquire()/release() (e.g. release registered as an undo)."""

    def __init__(self, path: Path, vm_name: str, timeout: float, holder: str) -> None:
        self.path = path
        self.vm_name = vm_name
        self.timeout = timeout
        self.holder = holder

    def acquire(self) -> VmLock:
        me = threading.get_ident()
        with _held_lock:
            held = _held.get(self.path)
            if held is not None and held.thread == me:
                held.count += 1
                return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise VmLockTimeoutError(
                            f"VM {self.vm_name!r} stayed locked for {self.timeout:.0f} s by {self._current_holder(fd)} "
                            f"(lock file {self.path})"
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.25)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.holder.encode(), 0)
        with _held_lock:
            _held[self.path] = _Held(fd, me)
        return self

    def release(self) -> None:
        with _held_lock:
            held = _held.get(self.path)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _held[self.path]
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)

    def held_here(self) -> bool:
        """Whether this process holds the lock (a job that never released its VM)."""
        with _held_lock:
            return self.path in _held

    @staticmethod
    def _current_holder(fd: int) -> str:
        try:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def __enter__(self) -> VmLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class VmLocks:
    """The locks of one target's VMs: lock files `<dir>/<target>/<vm>.lock`."""

    def __init__(
        self, target_key: str, directory: Path | None = None, timeout: float = 3600.0, holder: str = ""
    ) -> None:
        self.directory = (directory or default_lock_dir()) / _safe(target_key)
        self.timeout = timeout
        self.holder = holder or f"pid {os.getpid()}"

    def lock(self, vm_name: str) -> VmLock:
        return VmLock(self.directory / f"{_safe(vm_name)}.lock", vm_name, self.timeout, self.holder)
