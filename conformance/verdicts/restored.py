"""A restored VM's disks read back by the harness through its own VixDiskLib facade and compared with the
guest's writes: a fresh read-only snapshot, ConnectEx and Open read-only, every byte streamed into a
whole-disk digest (or, above FULL_READ_LIMIT, every extent the harness's library reports allocated with the
rest known zero), then the snapshot and connection undone through the test's ResourceTracker."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.sequences.context import SequenceContext
from conformance.sequences.extents import allocated_extents
from conformance.sequences.images import BLOCK
from conformance.verdicts.cleanup import disk_chains, grown_chains
from conformance.verdicts.digest import DiskDigest, image_digest
from conformance.vixdisklib.api import Connection, Disk
from conformance.vixdisklib.types import SECTOR_SIZE, OpenFlags
from conformance.vsphere.session import DiskRef, disks_of
from conformance.workloads import Expected

#: disks up to this size are read in full; larger ones (the 64 GiB large-sparse pattern) by allocated extents
FULL_READ_LIMIT = 2**30
EVERY_BYTE = "every byte read"
ALLOCATED = "allocated extents read, the rest known zero (QueryAllocatedBlocks of the harness's library)"


@dataclass(frozen=True)
class ReadBack:
    key: int
    digest: str
    method: str
    bytes_read: int
    #: the library's capacity of the disk (in the digest) and the server's (the VM's configuration)
    capacity: int = 0
    server_capacity: int = 0


def read_back(ctx: SequenceContext, vm_name: str, transports: str, indexes: list[int]) -> dict[int, ReadBack]:
    """Digests of the VM's disks at these positions (unit order) as they are now."""
    vsphere, lib, resources = ctx.vsphere, ctx.lib, ctx.resources
    vm = vsphere.vm(vm_name)
    mark = resources.mark()
    name = resources.name(f"verify-{vm_name}")
    try:
        snapshot = vsphere.create_snapshot(vm, name, "vddk-conformance read-back", quiesce=False)
        resources.add("snapshot", name, lambda: vsphere.remove_snapshot(snapshot, name))
        params = ctx.target.connect_params(vm._moId)
        connection = lib.connect_ex(params, True, snapshot._moId, transports)
        resources.add("connection", name, lambda: _disconnect(ctx, connection))
        disks = disks_of(snapshot)
        return {i: _read_disk(ctx, connection, vm, snapshot, disks[i]) for i in indexes if i < len(disks)}
    finally:
        resources.unwind(mark)


def _disconnect(ctx: SequenceContext, connection: Connection) -> None:
    ctx.lib.disconnect(connection)
    ctx.lib.cleanup(connection.params)  # release a HotAdd before the snapshot goes


def _read_disk(ctx: SequenceContext, connection: Connection, vm: object, snapshot: object, disk: DiskRef) -> ReadBack:
    lib = ctx.lib
    with lib.opened(connection, disk.file_name, OpenFlags.READ_ONLY) as handle:
        capacity = lib.get_info(handle).capacity * SECTOR_SIZE
        digest = DiskDigest(capacity)
        if capacity <= FULL_READ_LIMIT:
            method, ranges = EVERY_BYTE, [(0, capacity)]
        else:
            method = ALLOCATED
            ranges = allocated_extents(lib, ctx.chunk_sectors, handle, capacity // SECTOR_SIZE, vm, snapshot, disk)
            digest.known_zero(0, capacity)  # what is not allocated reads as zeros
        read = _stream(ctx, handle, digest, ranges, capacity)
    return ReadBack(disk.key, digest.hexdigest(), method, read, capacity, disk.capacity)


def _stream(
    ctx: SequenceContext, handle: Disk, digest: DiskDigest, ranges: list[tuple[int, int]], capacity: int
) -> int:
    total = 0
    for start, end in ranges:
        for piece in range(start // BLOCK * BLOCK, min(end, capacity), ctx.io_size):
            size = min(ctx.io_size, end - piece, capacity - piece)
            data = ctx.lib.read(handle, piece // SECTOR_SIZE, -(-size // SECTOR_SIZE))
            digest.feed(piece, data)
            total += len(data)
    return total


def restored_problems(ctx: SequenceContext, vm_name: str, transports: str, expected: dict[int, Expected]) -> list[str]:
    """What differs between the VM's disks (by unit order) and the guest's writes (empty: all restored); also a
    delta the harness's own read-back snapshot left in a disk chain (a server that does not consolidate)."""
    chains = disk_chains(ctx.vsphere.vm(vm_name))
    found = read_back(ctx, vm_name, transports, sorted(expected))
    problems = []
    left = grown_chains(chains, disk_chains(ctx.vsphere.vm(vm_name)))
    if left:
        problems.append(
            f"{vm_name}: removing the read-back snapshot left delta(s) in the disk chain: {', '.join(left)}"
        )
    for index, want in sorted(expected.items()):
        wanted = image_digest(want.image)
        got = found.get(index)
        ctx.digests.append(
            {
                "vm": vm_name,
                "disk": got.key if got else f"unit position {index}",
                "what": "restored disk",
                "method": got.method if got else "no such disk",
                "bytes_read": got.bytes_read if got else 0,
                "expected": wanted,
                "actual": got.digest if got else None,
                "match": got is not None and got.digest == wanted,
            }
        )
        if got is None:
            problems.append(f"{vm_name} has no disk at position {index}")
        elif got.digest != wanted:
            problems.append(f"{vm_name} disk {got.key} does not hold what the guest wrote ({got.method})")
        if got is not None and got.server_capacity != want.capacity:
            problems.append(
                f"{vm_name} disk {got.key} is {got.server_capacity} bytes as the server shows it, the guest's disk "
                f"{want.capacity} (the library presents {got.capacity})"
            )
    return problems
