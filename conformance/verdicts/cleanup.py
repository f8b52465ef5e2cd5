"""After an application's cleanup nothing of its job may be left, as the server itself shows it (pyVmomi) and
the call trace: no snapshot the job made, no link in a disk's backing chain that was not there before the job
(a server may drop the snapshot, keep its delta and still claim no consolidation is needed; a delta an
earlier job left is in the baseline, so it is that job's failure, not this one's), no consolidation needed, no
hot-added disk of the VM on the proxy, no connection, disk handle or server session left open, no VM lock
held, nothing in the tmpDirectory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

from conformance.lab.resources import PREFIX
from conformance.sequences.context import SequenceContext
from conformance.verdicts.trace import left_open, trace_mark
from conformance.vsphere.session import disks_of


class CleanupIncompleteError(AssertionError):
    """Something the job created is still there; `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cleanup left: " + "; ".join(problems))


@dataclass(frozen=True)
class Baseline:
    """What was there before the job: its own snapshots, sessions and calls are what came after."""

    snapshots: frozenset[str]
    sessions: frozenset[str] | None  # None: the server does not show its sessions to this user
    trace: int
    #: each disk's backing chain (top first) as the server shows it: a delta the job left is a link not in it
    chains: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: the VM needed consolidation before the job (an earlier job's leftover, not this one's)
    consolidation_needed: bool = False


def baseline(ctx: SequenceContext, vm_name: str) -> Baseline:
    vsphere = ctx.vsphere
    vm = vsphere.vm(vm_name)
    snapshots = frozenset(s.snapshot._moId for s in vsphere.snapshots(vm))
    return Baseline(
        snapshots, _sessions(ctx), trace_mark(ctx.lib), disk_chains(vm), bool(vm.runtime.consolidationNeeded)
    )


def _sessions(ctx: SequenceContext) -> frozenset[str] | None:
    manager = ctx.vsphere.content.sessionManager
    try:
        own = manager.currentSession.key
        return frozenset(s.key for s in manager.sessionList or [] if s.key != own)
    except vim.fault.NoPermission:
        return None


def verify_clean(ctx: SequenceContext, vm_name: str, before: Baseline | None = None) -> list[str]:
    """Every leftover of the job since `before` (without one: snapshots named with the run id, and nothing
    about the trace or sessions)."""
    vsphere = ctx.vsphere
    problems: list[str] = []
    vm = vsphere.vm(vm_name)
    snapshots = vsphere.snapshots(vm)
    if before is not None:
        left = [s.name for s in snapshots if s.snapshot._moId not in before.snapshots]
    else:
        left = [s.name for s in snapshots if s.name.startswith(f"{PREFIX}-{ctx.resources.run_id}")]
    if left:
        problems.append(f"{vm_name} still has snapshot(s) {', '.join(left)}")
    if before is not None and not left:
        # the chains the server shows, not its consolidationNeeded flag: a server that removed the snapshot but
        # kept its delta may also claim no consolidation is needed
        added = grown_chains(before.chains, disk_chains(vm))
        if added:
            problems.append(f"{vm_name} disk chain(s) keep delta(s) the job's snapshot left: {', '.join(added)}")
    elif before is None and not snapshots:
        deltas = own_deltas(vm)
        if deltas:
            problems.append(f"{vm_name} has delta disk(s) without a snapshot: {', '.join(deltas)}")
    if vm.runtime.consolidationNeeded and not (before is not None and before.consolidation_needed):
        problems.append(f"{vm_name} needs disk consolidation")
    if ctx.proxy_vm:
        proxy = vsphere.vm(ctx.proxy_vm)
        mine = files_of(vm)
        left_on_proxy = [d.file_name for d in disks_of(proxy) if d.file_name in mine or _folder(d.file_name) in mine]
        if left_on_proxy:
            problems.append(f"proxy {proxy.name} still has hot-added disk(s) {', '.join(left_on_proxy)}")
    if vsphere.locks is not None and vsphere.locks.lock(vm_name).held_here():
        problems.append(f"the lock of {vm_name} is still held")
    if before is not None:
        open_handles = left_open(ctx.lib, before.trace)
        problems += [f"VixDiskLib {what} left open" for what in open_handles]
        now = _sessions(ctx)
        # the server's session list is shared with other workers and runs on a lab: it corroborates what the
        # trace shows, it cannot attribute a session to this job on its own
        if open_handles and before.sessions is not None and now is not None and now - before.sessions:
            problems.append(f"{len(now - before.sessions)} server session(s) opened during the job are still open")
    if ctx.tmp_directory is not None and ctx.tmp_directory.exists():
        stale = sorted(
            str(p.relative_to(ctx.tmp_directory))
            for p in ctx.tmp_directory.rglob("*")
            if p.is_file() and p.suffix != ".log"
        )
        if stale:
            problems.append(f"tmpDirectory {ctx.tmp_directory} still holds {', '.join(stale[:5])}")
    return problems


def assert_clean(ctx: SequenceContext, vm_name: str, before: Baseline | None = None) -> None:
    """CleanupIncompleteError naming every leftover."""
    problems = verify_clean(ctx, vm_name, before)
    if problems:
        raise CleanupIncompleteError(problems)


def _folder(ds_path: Any) -> str:
    return str(ds_path).rsplit("/", 1)[0]


def files_of(vm: Any) -> set[str]:
    """The VM's folder and its disks' files (an FCD's lives elsewhere): what a HotAdd of this VM's disks left on a
    proxy would name. Other VMs' disks on a shared proxy (another worker's backup in progress, a linked clone's
    source) are not this sequence's leftovers."""
    found = {_folder(vm.config.files.vmPathName)}
    for device in vm.config.hardware.device:
        if isinstance(device, vim.vm.device.VirtualDisk):
            found.add(str(getattr(device.backing, "fileName", "")))
    return found


def disk_chains(vm: Any) -> dict[int, tuple[str, ...]]:
    """Each virtual disk's backing chain, top first, by device key (config.hardware: what a real server shows)."""
    chains: dict[int, tuple[str, ...]] = {}
    for device in vm.config.hardware.device:
        if isinstance(device, vim.vm.device.VirtualDisk):
            links, backing = [], getattr(device, "backing", None)
            while backing is not None:
                links.append(str(getattr(backing, "fileName", "")))
                backing = getattr(backing, "parent", None)
            chains[device.key] = tuple(links)
    return chains


def grown_chains(before: dict[int, tuple[str, ...]], now: dict[int, tuple[str, ...]]) -> list[str]:
    """Links of a disk's chain now that its chain before the job did not have (disks added since are not the
    job's: their chains are new altogether)."""
    return [link for key, links in sorted(now.items()) if key in before for link in links if link not in before[key]]


def own_deltas(vm: Any) -> list[str]:
    """Disks whose parent lies in the disk's own folder: deltas a removed snapshot should have merged. A linked
    clone's base delta has its parent in the source VM's folder and is not one of them."""

    found = []
    for device in vm.config.hardware.device:
        backing: Any = getattr(device, "backing", None)
        if not isinstance(device, vim.vm.device.VirtualDisk) or getattr(backing, "parent", None) is None:
            continue
        if _folder(backing.parent.fileName) == _folder(backing.fileName):
            found.append(str(backing.fileName))
    return found
