"""The one way a run creates snapshots, VMs, disks, sessions: recorded, named with the run id, undone LIFO.

Like csi-sanity's resource wrapper: every creation registers its undo; teardown runs them last-in first-
out and collects every failure instead of stopping at (or hiding) the first one.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("conformance.resources")
PREFIX = "vddkc"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def resource_name(run_id: str, purpose: str) -> str:
    """`vddkc-<run id>-<worker>-<purpose>`: a sweeper finds leftovers of crashed runs by this prefix."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", purpose).strip("-")[:40]
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
        self._counter = 0

    def name(self, purpose: str) -> str:
        with self._lock:
            self._counter += 1
            return resource_name(self.run_id, f"{purpose}-{self._counter}")

    def add(self, kind: str, name: str, undo: Callable[[], None]) -> Resource:
        resource = Resource(kind, name, undo)
        with self._lock:
            self._stack.append(resource)
        log.debug("created %s %s", kind, name)
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
        """Undo every resource created after mark `to`, LIFO; raise TeardownError listing all failures."""
        errors: list[tuple[Resource, BaseException]] = []
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
            except BaseException as exc:
                log.error("cleaning up %s %s failed: %s", resource.kind, resource.name, exc, exc_info=exc)
                errors.append((resource, exc))
        if errors:
            raise TeardownError(errors)

    def teardown(self) -> None:
        self.unwind(0)

    def pending(self) -> list[Resource]:
        with self._lock:
            return [r for r in self._stack if not r.done]
