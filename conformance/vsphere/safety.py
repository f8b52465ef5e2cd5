"""The safety rail for shared labs: destructive steps only on allow-listed VMs or on what the run created.

Why: a conformance run against a real vCenter restores into, reverts, clones and deletes VMs. One wrong name
(a typo in a suite, a partner's backup application restoring "into the original VM") must not touch a
production VM. Every destructive call of `VsphereSession` asks the guard first; a refusal is an error that
names the step and the VM, never a silent skip.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["SafetyGuard", "UnsafeOperationError"]


class UnsafeOperationError(PermissionError):
    """A destructive step on a VM that is neither allow-listed nor created by this run."""


class SafetyGuard:
    """Decides which VMs a run may change: the target's `allow_vms` plus the objects the run created itself."""

    def __init__(self, target_name: str, allow_vms: Iterable[str]) -> None:
        self.target_name = target_name
        self.allow_vms = frozenset(allow_vms)
        self._created: set[str] = set()
        self._lock = threading.Lock()

    def created(self, name: str) -> None:
        """Record an object (VM, disk) this run created: the run may change and delete it."""
        with self._lock:
            self._created.add(name)

    def forget(self, name: str) -> None:
        """The object is gone (deleted by the run)."""
        with self._lock:
            self._created.discard(name)

    def is_own(self, name: str) -> bool:
        with self._lock:
            return name in self._created

    def may(self, vm_name: str) -> bool:
        return vm_name in self.allow_vms or self.is_own(vm_name)

    def is_shared(self, vm_name: str) -> bool:
        """Whether other runs may use the VM too (it is not this run's own): such VMs are locked around use."""
        return not self.is_own(vm_name)

    def check(self, action: str, vm_name: str) -> None:
        """Raise UnsafeOperationError unless `action` may be done on `vm_name`."""
        if not self.may(vm_name):
            raise UnsafeOperationError(
                f"{action} {vm_name!r} refused: not in the allow_vms of target {self.target_name} "
                "and not created by this run"
            )
