"""Data-plane faults a simulator plays on demand (`--sim-fault`, see `conformance.knowledge.sim_faults`): a server that
acknowledges and answers, but with wrong data. Each hook is a no-op unless its fault is playing, so the read
and write paths call them unconditionally.

* `stale-read-range`: reads over nbd return zeros in one 1 MiB range past the first 8 MiB of every disk.
* `write-wrap-32bit`: a write at a byte offset of 2 GiB or more lands 2^31 bytes lower (a signed 32-bit wrap).
* `restore-target-smaller`: a disk CreateVM_Task creates is 1 MiB smaller than the spec asked; the data plane
  still presents the size asked for, drops writes past the real end and reads zeros there.
* `close-drops-last-write`: each write handle's latest write is acknowledged but held back (a write-back
  cache); the next write puts it on disk, Close discards it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

if TYPE_CHECKING:
    from conformance.sim.dataplane.disks import OpenDisk
    from conformance.sim.instance import SimContext
    from conformance.sim.objects.virtual_machine import VirtualMachineImpl
    from conformance.sim.storage.vmdk import VirtualDiskFile

MiB = 1024**2
STALE_RANGE = (24 * MiB, 25 * MiB)
STALE_TRANSPORT = "nbd"
WRAP = 2**31
SHRINK = MiB

_lock = threading.Lock()
#: base-disk path -> the capacity CreateVM_Task was asked for (restore-target-smaller)
_claimed: dict[Path, int] = {}
#: id of a write handle -> the write acknowledged but not yet on disk (close-drops-last-write)
_held: dict[int, tuple[OpenDisk, int, bytes]] = {}


def _playing(ctx: SimContext, name: str) -> bool:
    return bool(ctx.faults.playing(name))


def claimed_capacity(link: VirtualDiskFile) -> int | None:
    """The size the data plane presents for a disk created short (None: it presents the real one)."""
    with _lock:
        if not _claimed:
            return None
        return next((_claimed[p.path] for p in link.chain() if p.path in _claimed), None)


def describe(entry: OpenDisk, reply: dict[str, Any]) -> dict[str, Any]:
    """The `open`/`info` reply, with the claimed capacity of a disk created short."""
    claimed = claimed_capacity(entry.link())
    if claimed is not None:
        reply["capacity"] = claimed
    return reply


def read(ctx: SimContext, entry: OpenDisk, offset: int, length: int) -> bytes:
    """A read as the faulty server answers it."""
    link = entry.link()
    claimed = claimed_capacity(link)
    if claimed is not None and offset + length > link.capacity and offset + length <= claimed:
        inside = max(0, link.capacity - offset)
        data = entry.read(offset, inside) if inside else b""
        data += bytes(length - inside)
    else:
        data = entry.read(offset, length)
    if entry.transport == STALE_TRANSPORT and _playing(ctx, "stale-read-range"):
        lo, hi = max(offset, STALE_RANGE[0]), min(offset + length, STALE_RANGE[1])
        if lo < hi:
            data = data[: lo - offset] + bytes(hi - lo) + data[hi - offset :]
    return data


def write(ctx: SimContext, entry: OpenDisk, offset: int, data: bytes) -> int:
    """A write as the faulty server carries it out; the byte count it acknowledges."""
    acknowledged = len(data)
    if offset >= WRAP and _playing(ctx, "write-wrap-32bit"):
        offset -= WRAP
    link = entry.link() if entry.write else None
    claimed = claimed_capacity(link) if link is not None else None
    if claimed is not None and link is not None and offset + len(data) > link.capacity:
        if offset + len(data) > claimed:
            return entry.write_at(ctx, offset, data)  # past even the claimed end: the ordinary refusal
        data = data[: max(0, link.capacity - offset)]
        if not data:
            return acknowledged
    if entry.write and _playing(ctx, "close-drops-last-write"):
        with _lock:
            earlier = _held.pop(id(entry), None)
            _held[id(entry)] = (entry, offset, data)
        if earlier is not None and earlier[0] is entry:
            entry.write_at(ctx, earlier[1], earlier[2])
        return acknowledged
    entry.write_at(ctx, offset, data)
    return acknowledged


def close(entry: OpenDisk) -> None:
    """Close of a handle: a held write is discarded (close-drops-last-write)."""
    with _lock:
        _held.pop(id(entry), None)


def shrink_created_disks(ctx: SimContext, changes: list[Any] | None) -> list[Any] | None:
    """CreateVM_Task's device changes, each disk it creates 1 MiB smaller (restore-target-smaller)."""
    if not changes or not _playing(ctx, "restore-target-smaller"):
        return changes
    out = []
    for change in changes:
        device = change.device
        if change.fileOperation == "create" and isinstance(device, vim.vm.device.VirtualDisk):
            asked = int(device.capacityInBytes or 0) or int(device.capacityInKB or 0) * 1024
            if asked > SHRINK:
                setattr(device, "capacityInBytes", asked - SHRINK)  # noqa: B010 - the stubs type it None
                setattr(device, "capacityInKB", (asked - SHRINK) // 1024)  # noqa: B010
        out.append(change)
    return out


def record_created_disks(ctx: SimContext, vm: VirtualMachineImpl) -> None:
    """After CreateVM_Task: the data plane presents each new disk at the size asked for."""
    if not _playing(ctx, "restore-target-smaller"):
        return
    with _lock:
        for disk in vm.disks:
            _claimed[disk.file.path] = disk.file.capacity + SHRINK
