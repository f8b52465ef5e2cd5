"""The lock a hot-added disk holds, as ESXi keeps it: while a disk is hot-added to a VM (a backup proxy), every
link of its chain is locked, and another HotAdd of a disk whose chain shares a link is refused with the
file-locked fault. This is what blocks the retry of a backup killed before it released its disks: the proxy
still holds the disk, so the next HotAdd of the same VM's disks fails until the leftover is removed.

Server fault ``hotadd-lock-survives-remove``: the lock outlives the hot-remove (a stale lock the sweep cannot
clear), kept in ``ctx.stale_hotadd_locks``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

if TYPE_CHECKING:
    from conformance.sim.objects.disks import DiskState
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl

LOCK_SURVIVES_REMOVE = "hotadd-lock-survives-remove"


def _held(ctx: Any) -> set[Path]:
    """Links locked by a hot-added disk on any VM now, plus the stale locks the fault keeps."""
    held: set[Path] = set()
    for vm in ctx.registry.all_kind("VirtualMachine"):
        for disk in vm.disks:
            if disk.attached_from is not None:
                held.update(link.path.resolve() for link in disk.file.chain())
    held.update(ctx.stale_hotadd_locks)
    return held


def check_hotadd_lock(vm: VirtualMachineImpl, disk: DiskState, file_name: str) -> None:
    """Refuse hot-adding ``disk`` to ``vm`` while a link of its chain is locked by another hot-add."""
    if disk.attached_from is None:
        return
    held = _held(vm.ctx)
    locked = [link for link in disk.file.chain() if link.path.resolve() in held]
    if locked:
        where = vm.ctx.datastore_of(locked[0].path).datastore_path(locked[0].path)
        raise vim.fault.FileLocked(
            msg=f"Cannot open the disk '{file_name}' or one of the snapshot disks it depends on: "
            f"Unable to access file {where} since it is locked",
            file=where,
        )


def release_hotadd_lock(vm: VirtualMachineImpl, disk: DiskState) -> None:
    """A hot-added disk was removed: its lock goes with it, unless the server fault keeps it."""
    if disk.attached_from is None:
        return
    if vm.ctx.faults.playing(LOCK_SURVIVES_REMOVE):
        vm.ctx.stale_hotadd_locks.update(link.path.resolve() for link in disk.file.chain())
