"""The one way a run creates snapshots, VMs, disks, sessions: recorded, named with the run id, undone LIFO.

Like csi-sanity's resource wrapper: every creation registers its undo; teardown runs them last-in first-
out and collects every failure instead of stopping at (or hiding) the first one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("conformance.lab.resources")
PREFIX = "vddkc"
_NAME_COUNTER = itertools.count(1)  # process-wide (per xdist worker; the worker id is in the name too)


#: what a run id may be: it names folders, VM objects and Allure environments, so it never holds a path separator
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def run_id_problem(value: object) -> str | None:
    """Why `value` cannot be a run id (one phrase), or None when it can."""
    if not isinstance(value, str) or not RUN_ID.fullmatch(value) or ".." in value:
        return (
            f"run id {str(value)[:60]!r} is not 1-100 letters, digits, '.', '_' or '-' starting with a letter or "
            "digit (a run id names folders and objects, so it cannot hold a path)"
        )
    return None


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


#: longest purpose part of a resource name
PURPOSE_CHARS = 40


def resource_name(run_id: str, purpose: str) -> str:
    """`vddkc-<run id>-<worker>-<purpose>`: a sweeper finds leftovers of crashed runs by this prefix."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", purpose).strip("-")[:PURPOSE_CHARS]
    return f"{PREFIX}-{run_id}-{worker_id()}-{clean}"


@dataclass
class Resource:
    kind: str  # "snapshot", "vm", "disk", "hot-add", "access", "connection", "disk-handle", ...
    name: str
    undo: Callable[[], None]
    created: float = field(default_factory=time.time)
    done: bool = False


class TeardownError(Exception):
    """Undoing some resources failed; `errors` lists each (resource, exception)."""

    def __init__(self, errors: list[tuple[Resource, BaseException]]) -> None:
        self.errors = errors
        lines = [f"{r.kind} {r.name}: {type(e).__name__}: {e}" for r, e in errors]
        super().__init__(f"{len(errors)} resource(s) could not be cleaned up: " + "; ".join(lines))


class ResourceTracker:
    """A stack of created resources; `mark()`/`unwind(to)` undo a scope, `teardown()` undoes everything."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._stack: list[Resource] = []
        self._lock = threading.Lock()

    def name(self, purpose: str) -> str:
        """A run-named name, unique in this process: a leftover of an earlier test (a failed teardown) never
        makes a later test's create fail with DuplicateName."""
        checkpoint()  # about to create something: a pending stop request stops the run here
        suffix = f"-{next(_NAME_COUNTER)}"  # kept whole: a long purpose is shortened, never the counter
        clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", purpose).strip("-")
        return resource_name(self.run_id, clean[: PURPOSE_CHARS - len(suffix)] + suffix)

    def add(self, kind: str, name: str, undo: Callable[[], None]) -> Resource:
        resource = Resource(kind, name, undo)
        with self._lock:
            self._stack.append(resource)
        log.debug("created %s %s", kind, name)
        checkpoint()  # the undo is registered: stopping here leaks nothing
        return resource

    def release(self, resource: Resource) -> None:
        """Undo one resource now (e.g. a disk closed in the normal flow); errors propagate."""
        if resource.done:
            return
        resource.done = True
        resource.undo()

    def forget(self, resource: Resource) -> None:
        """The resource was undone by other means (its undo must not run again)."""
        resource.done = True

    def mark(self) -> int:
        with self._lock:
            return len(self._stack)

    def unwind(self, to: int = 0) -> None:
        """Undo every resource created after mark `to`, LIFO; raise TeardownError listing all failures.

        A stop signal (SIGTERM, Ctrl-C) arriving meanwhile is deferred until everything is undone; an interrupt
        that still reaches an undo is re-raised after the others ran (never folded into a TeardownError, so
        the run stops instead of going on to the next test).
        """
        errors: list[tuple[Resource, BaseException]] = []
        interrupt: BaseException | None = None
        with deferred_stop():
            while True:
                with self._lock:
                    if len(self._stack) <= to:
                        break
                    resource = self._stack.pop()
                if resource.done:
                    continue
                resource.done = True
                try:
                    resource.undo()
                    log.debug("removed %s %s", resource.kind, resource.name)
                except (KeyboardInterrupt, SystemExit) as exc:
                    log.error("cleaning up %s %s was interrupted; cleaning up the rest", resource.kind, resource.name)
                    interrupt = interrupt or exc
                    errors.append((resource, exc))
                except BaseException as exc:
                    log.error("cleaning up %s %s failed: %s", resource.kind, resource.name, exc, exc_info=exc)
                    errors.append((resource, exc))
        if interrupt is not None:
            raise interrupt
        if errors:
            raise TeardownError(errors)

    def teardown(self) -> None:
        self.unwind(0)

    def pending(self) -> list[Resource]:
        with self._lock:
            return [r for r in self._stack if not r.done]


# --- stopping a run on SIGTERM or Ctrl-C with every teardown still run ---
#
# Why: a run killed with SIGTERM (CI time-outs, systemd) died without tearing down, leaving snapshots and
# clones on the target. Turning the signal into KeyboardInterrupt alone is not enough: when it lands inside
# a cleanup, the cleanup swallows it and the run goes on; and when it lands between "the server created it"
# and "its undo is registered", the object leaks. So the first signal only records the request; the run
# stops at the next safe point (a resource registered or named: `checkpoint`, the end of a clean-up, the end
# of the test), or, when none comes within STOP_GRACE seconds (a long read), where it is. Inside clean-ups
# (`deferred_stop`) it never stops; a second signal stops at once outside them. pytest is told to stop after
# the current test (`stop_requested`), and its teardowns run inside deferred sections.

_stop = threading.Event()
_stop_reason: list[str] = []
_depth = 0
_depth_lock = threading.Lock()
_immediate: list[bool] = [False]
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: seconds the run may take to reach a safe point after the first signal before it is interrupted anyway
STOP_GRACE = 5.0


def stop_requested() -> str | None:
    """Why the run was asked to stop ("SIGTERM", "SIGINT"), or None."""
    return _stop_reason[0] if _stop.is_set() and _stop_reason else None


def request_stop(reason: str) -> None:
    if not _stop.is_set():
        _stop_reason.append(reason)
        _stop.set()


def reset_stop() -> None:
    """Forget a stop request (tests of the mechanism)."""
    _stop.clear()
    _stop_reason.clear()


def _cleaning() -> bool:
    with _depth_lock:
        return _depth > 0


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    first = not _stop.is_set()
    request_stop(name)
    if _cleaning():
        log.warning("%s received while cleaning up: the run stops once the clean-up is done", name)
        return
    if first and not _immediate[0]:
        log.warning("%s received: the run stops at the next safe point (within %.0f s)", name, STOP_GRACE)
        timer = threading.Timer(STOP_GRACE, os.kill, (os.getpid(), signum))  # then the second signal stops it
        timer.daemon = True
        timer.start()
        return
    raise KeyboardInterrupt(f"stopped by {stop_requested()}")


def checkpoint() -> None:
    """A safe point: nothing is half-created here, so a pending stop request interrupts the run now."""
    reason = stop_requested()
    if reason and not _cleaning() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt(f"stopped by {reason}")


def install_stop_handlers(immediate: bool = False) -> bool:
    """SIGTERM and SIGINT request a stop (main thread only); False when they cannot be installed here.
    `immediate`: the process holds no resources (an xdist controller), so the first signal stops it at once."""
    if threading.current_thread() is not threading.main_thread():
        return False
    _immediate[0] = immediate
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_stop_signal)
    return True


@contextlib.contextmanager
def deferred_stop(raise_after: bool = True) -> Iterator[None]:
    """A section that a stop signal does not interrupt (clean-ups). With `raise_after`, leaving the outermost
    such section while a stop is pending raises KeyboardInterrupt, so the interrupted code stops there."""
    global _depth
    with _depth_lock:
        _depth += 1
    try:
        yield
    finally:
        with _depth_lock:
            _depth -= 1
            outermost = _depth == 0
    if raise_after and outermost and stop_requested() and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt(f"stopped by {stop_requested()} (after clean-up)")
