"""The reference backup application: the call sequence VMware documents, done the way the rules require.

Backup: CBT on, PrepareForAccess, snapshot (no memory, quiesced), ConnectEx on the snapshot, Open every
disk read-only on one thread (which also runs QueryAllocatedBlocks, C1), read on worker threads created
after InitEx (R1), record each disk's changeId. Incremental: QueryChangedDiskAreas from the previous
changeId. Cleanup: Close, Disconnect, VixDiskLib_Cleanup, remove the snapshot, EndAccess.
Restore: write every extent of the backup (and zeros where the target holds data the backup does not).
NBD/NBDSSL requests stay within the host's NFC memory (D3, `nfc_requests`): at most 2 MiB, retried smaller when
the host refuses one.
The application reports what it did; whether it worked is the harness's verdict (`conformance.verdicts`).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyVmomi import vim
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential

from conformance.sequences.context import SequenceContext
from conformance.sequences.extents import allocated_extents, changed_areas
from conformance.sequences.images import BLOCK, SparseImage
from conformance.sequences.model import Backup, DiskBackup, Restore
from conformance.sequences.nfc_requests import read_range, write_range
from conformance.vixdisklib.api import Connection, Disk
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import SECTOR_SIZE, Block, OpenFlags
from conformance.vsphere.session import DiskRef, disks_of
from conformance.vsphere.tasks import wait_until

#: transient VIX errors worth one more try (a dropped NFC connection)
TRANSIENT = {14011, 14010, 36}
#: seconds a backup waits for its VM's host to leave maintenance mode, and a cleanup to be allowed to remove
#: its snapshot (R2)
MAINTENANCE_WAIT = 600.0


class ReferenceBackupApp:
    name = "reference"

    # --- backup ---

    def backup(self, ctx: SequenceContext, vm_name: str, transports: str, previous: Backup | None = None) -> Backup:
        started = time.monotonic()
        vm, snapshot, backup = self._snapshot_for_backup(ctx, vm_name, previous)
        backup.disks = self._read_disks(ctx, backup, vm, snapshot, transports, previous)
        backup.seconds = time.monotonic() - started
        return backup

    def _snapshot_for_backup(
        self, ctx: SequenceContext, vm_name: str, previous: Backup | None
    ) -> tuple[Any, Any, Backup]:
        """The control plane of a backup job, each step a resource of the job: the VM locked, CBT on, its host out
        of maintenance, access prepared, the snapshot taken."""
        vsphere, resources = ctx.vsphere, ctx.resources
        vm = vsphere.vm(vm_name)
        mark = resources.mark()
        lock = vsphere.hold_vm(vm_name)  # a shared VM stays locked from here until cleanup() (parallel workers)
        if lock is not None:
            resources.add("lock", vm_name, lock.release)
        vsphere.enable_cbt(vm)
        wait_for_no_maintenance(ctx, vm_name, MAINTENANCE_WAIT)  # R2: a host signalling EMM refuses snapshots
        self._prepare_access(ctx, vm)
        name = resources.name(f"backup-{vm_name}")
        snapshot = vsphere.create_snapshot(vm, name, "vddk-conformance backup")
        resources.add("snapshot", name, lambda: self._remove_snapshot(ctx, snapshot, name))
        backup = Backup(vm_name, vm._moId, "incremental" if previous else "full", name, snapshot._moId, parent=previous)
        backup.job_mark = mark  # type: ignore[attr-defined]
        return vm, snapshot, backup

    def _prepare_access(self, ctx: SequenceContext, vm: Any) -> None:
        """PrepareForAccess before the snapshot, EndAccess when the job is undone."""
        params = ctx.target.connect_params(vm._moId)
        ctx.lib.prepare_for_access(params, ctx.identity)
        ctx.resources.add("access", f"{vm.name} svMotion disabled", lambda: ctx.lib.end_access(params, ctx.identity))

    def _read_disks(
        self, ctx: SequenceContext, backup: Backup, vm: Any, snapshot: Any, transports: str, previous: Backup | None
    ) -> list[DiskBackup]:
        """Every disk of the snapshot into an image: opened, queried and closed on this thread (C1), read on
        worker threads created after InitEx (R1)."""
        lib, resources = ctx.lib, ctx.resources
        params = ctx.target.connect_params(vm._moId)
        connection = lib.connect_ex(params, True, snapshot._moId, transports)
        resources.add("connection", backup.snapshot_name, lambda: self._disconnect(ctx, connection))
        handles = []
        for disk in disks_of(snapshot):
            handle = lib.open(connection, disk.file_name, OpenFlags.READ_ONLY)
            resources.add("disk-handle", disk.file_name, _closer(lib, handle))
            handles.append((disk, handle))
        plans = [(disk, handle, self._extents(ctx, vm, snapshot, disk, handle, previous)) for disk, handle in handles]
        with ThreadPoolExecutor(max_workers=max(1, len(plans)), thread_name_prefix="backup-reader") as pool:
            futures = [
                pool.submit(self._read_disk, ctx, backup, disk, handle, extents, previous)
                for disk, handle, extents in plans
            ]
            disks = [f.result() for f in futures]
        for _, handle in handles:
            lib.close(handle)
        return disks

    def _extents(
        self, ctx: SequenceContext, vm: Any, snapshot: Any, disk: DiskRef, handle: Disk, previous: Backup | None
    ) -> list[tuple[int, int]]:
        """Byte extents to read: changed areas since the previous backup, else the allocated blocks (before VDDK
        6.7, which has no QueryAllocatedBlocks, CBT's changed areas since "*", i.e. every allocated area)."""
        if previous is not None:
            # no change id recorded (CBT was off): everything allocated since "*"
            return changed_areas(vm, snapshot, disk, previous.disk(disk.key).change_id or "*")
        info = ctx.lib.get_info(handle)
        try:
            blocks = ctx.lib.allocated_blocks(handle, info.capacity, ctx.chunk_sectors)
        except VixError as exc:
            if exc.code != VixCode.NOT_SUPPORTED:
                raise
            return changed_areas(vm, snapshot, disk, "*")
        return [(b.offset * SECTOR_SIZE, b.length * SECTOR_SIZE) for b in blocks]

    def _read_disk(
        self,
        ctx: SequenceContext,
        backup: Backup,
        disk: DiskRef,
        handle: Disk,
        extents: list[tuple[int, int]],
        previous: Backup | None,
    ) -> DiskBackup:
        folder = ctx.repository / backup.vm_name / backup.snapshot_name
        target = folder / f"disk-{disk.key}.img"
        image = previous.disk(disk.key) if previous else None
        out = SparseImage(image.image, disk.capacity).copy_to(target) if image else SparseImage(target, disk.capacity)
        total = 0
        with target.open("r+b") as sink:
            for offset, length in extents:
                for piece in range(offset, offset + length, ctx.io_size):
                    size = min(ctx.io_size, offset + length - piece)
                    data = self._retrying(lambda p=piece, s=size: self._read_range(ctx, handle, p, s))
                    sink.seek(piece)
                    sink.write(data)
                    total += size
        return DiskBackup(
            disk.key,
            disk.file_name,
            disk.capacity,
            disk.change_id,
            target,
            ctx.lib.get_transport_mode(handle),
            total,
            len(extents),
            out.digest(),
        )

    def _read_range(self, ctx: SequenceContext, handle: Disk, offset: int, length: int) -> bytes:
        """One piece of an extent, within the host's NFC memory (D3): requests of at most 2 MiB, retried smaller
        when the host refuses one."""
        return read_range(ctx.lib, handle, offset, length, ctx.io_size, ctx.notes)

    @staticmethod
    def _retrying(call: Any) -> Any:
        """A read retried (bounded: 3 tries within 60 s) when VDDK reports a transient network error."""
        retrying = Retrying(
            stop=stop_after_attempt(3) | stop_after_delay(60),
            wait=wait_exponential(max=5),
            retry=retry_if_exception(lambda exc: getattr(exc, "code", None) in TRANSIENT),
            reraise=True,
        )
        return retrying(call)

    # --- cleanup ---

    def _disconnect(self, ctx: SequenceContext, connection: Connection) -> None:
        ctx.lib.disconnect(connection)
        ctx.lib.cleanup(connection.params)  # release HotAdd disks before the snapshot goes

    def _remove_snapshot(self, ctx: SequenceContext, snapshot: Any, name: str) -> None:
        """Remove the snapshot; while its VM's host is entering or in maintenance mode (R2) the server refuses
        with InvalidHostState: retry (bounded) until it allows it (the VM migrated off or the host left)."""

        def attempt() -> bool | None:
            ctx.lib.recorder.note("vsphere.RemoveSnapshot", snapshot=name)
            try:
                ctx.vsphere.remove_snapshot(snapshot, name)
            except vim.fault.InvalidHostState as exc:
                ctx.notes.append(f"RemoveSnapshot {name} refused, host in maintenance: {getattr(exc, 'msg', exc)}")
                return None
            return True

        wait_until(f"the host to allow removing snapshot {name}", attempt, MAINTENANCE_WAIT)

    def cleanup(self, ctx: SequenceContext, backup: Backup) -> None:
        """Undo the backup's job (LIFO): close, disconnect, VixDiskLib_Cleanup, remove the snapshot, EndAccess."""
        ctx.resources.unwind(getattr(backup, "job_mark", 0))

    # --- restore ---

    def restore(
        self, ctx: SequenceContext, backup: Backup, transports: str, vm_name: str | None = None, thin: bool = True
    ) -> Restore:
        """Restore into the original VM (only an allow-listed or run-created one, locked meanwhile) or a new one."""
        original = backup.vm_name if vm_name is None else None
        if original is not None:
            ctx.vsphere.check("restore into", original)  # UnsafeOperationError, before anything is changed
        with ctx.vsphere.vm_lock(original):
            return self._restore(ctx, backup, transports, vm_name, thin)

    def _restore(
        self, ctx: SequenceContext, backup: Backup, transports: str, vm_name: str | None, thin: bool
    ) -> Restore:
        started = time.monotonic()
        mark = ctx.resources.mark()
        vm, targets = self._restore_target(ctx, backup, transports, vm_name, thin)
        written, transport = self._write_disks(ctx, backup, transports, vm, targets, vm_name is None)
        ctx.resources.unwind(mark if vm_name is None else mark + 1)  # all but a new VM, which the test reads back
        if vm_name is None:
            ctx.vsphere.power_on(vm)
        return Restore(vm.name, transport, time.monotonic() - started, written)

    def _restore_target(
        self, ctx: SequenceContext, backup: Backup, transports: str, vm_name: str | None, thin: bool
    ) -> tuple[Any, list[DiskRef]]:
        """The VM restored into (the original powered off, or a new one) and its disks, under a restore-point
        snapshot when HotAdd may write."""
        vsphere, resources = ctx.vsphere, ctx.resources
        if vm_name is None:
            vm = vsphere.vm(backup.vm_name)
            vsphere.power_off(vm)
        else:
            datastore = backup.disks[0].path[1:].split("]", 1)[0]
            vm = vsphere.create_vm(vm_name, datastore, [(d.capacity, thin) for d in backup.disks])
            resources.add("vm", vm_name, lambda: vsphere.destroy_vm(vm))
        targets = disks_of(vm)
        if len(targets) < len(backup.disks):
            raise RestoreError(f"{vm.name} has {len(targets)} disks, the backup {len(backup.disks)}")
        if "hotadd" in transports.split(":"):  # HotAdd and SAN write with a snapshot in place (restore point)
            point = resources.name(f"restore-point-{vm.name}")
            snapshot = vsphere.create_snapshot(vm, point, quiesce=False)
            resources.add("snapshot", point, lambda: self._remove_snapshot(ctx, snapshot, point))
            targets = disks_of(vm)
        return vm, targets

    def _write_disks(
        self, ctx: SequenceContext, backup: Backup, transports: str, vm: Any, targets: list[DiskRef], original: bool
    ) -> tuple[int, str]:
        """(bytes written, transport): every backed-up disk written to its target disk."""
        params = ctx.target.connect_params(vm._moId)
        connection = ctx.lib.connect_ex(params, False, None, transports)
        ctx.resources.add("connection", f"restore {vm.name}", lambda: self._disconnect(ctx, connection))
        written, transport = 0, ""
        for source, target in zip(backup.disks, targets, strict=False):
            handle = ctx.lib.open(connection, target.file_name, 0)
            try:
                transport = ctx.lib.get_transport_mode(handle)
                written += self._write_disk(ctx, source, handle, target, vm if original else None)
            finally:
                ctx.lib.close(handle)
        return written, transport

    def _write_disk(
        self, ctx: SequenceContext, source: DiskBackup, handle: Disk, target: DiskRef, existing_vm: Any
    ) -> int:
        """Write the backup's extents, then zero what the target holds and the backup does not (``existing_vm``:
        the powered-off VM restored into, None for a new, empty VM)."""
        image = SparseImage(source.image, source.capacity)
        extents = image.extents()
        info = ctx.lib.get_info(handle)
        if existing_vm is None:
            present = []
        else:
            present = [
                Block(start // SECTOR_SIZE, (end - start) // SECTOR_SIZE)
                for start, end in allocated_extents(
                    ctx.lib, ctx.chunk_sectors, handle, info.capacity, existing_vm, None, target
                )
            ]
        covered = {
            o // BLOCK for offset, length in extents for o in range(offset // BLOCK * BLOCK, offset + length, BLOCK)
        }
        written = 0
        with source.image.open("rb") as data:
            for offset, length in extents:
                for piece in range(offset, offset + length, ctx.io_size):
                    size = min(ctx.io_size, offset + length - piece)
                    data.seek(piece)
                    chunk = data.read(size)
                    whole = chunk.ljust(-(-size // SECTOR_SIZE) * SECTOR_SIZE, b"\0")
                    write_range(ctx.lib, handle, piece, whole, ctx.io_size, ctx.notes)
                    written += size
        zero = bytes(BLOCK)
        for block in present:  # data on the target that the backup does not have: zero it
            for position in range(block.offset * SECTOR_SIZE, (block.offset + block.length) * SECTOR_SIZE, BLOCK):
                if position // BLOCK not in covered and position + BLOCK <= target.capacity:
                    write_range(ctx.lib, handle, position, zero, ctx.io_size, ctx.notes)
                    written += BLOCK
        return written


def _closer(lib: Any, handle: Disk) -> Any:
    def close() -> None:
        if not handle.closed:
            lib.close(handle)

    return close


class RestoreError(RuntimeError):
    """The restore could not be carried out; the message says why."""


def wait_for_no_maintenance(ctx: SequenceContext, vm_name: str, timeout: float = 600.0) -> None:
    """Wait (bounded) until the VM's host is neither entering nor in maintenance mode (R2 workaround)."""

    def probe() -> bool | None:
        host = ctx.vsphere.vm(vm_name).runtime.host
        entering = any(
            t.info.state in ("queued", "running")
            and t.info.name is not None
            and t.info.name.info.name == "EnterMaintenanceMode"
            for t in host.recentTask
        )
        return True if not entering and not host.runtime.inMaintenanceMode else None

    wait_until(f"host of {vm_name} to leave maintenance mode", probe, timeout)
