"""After cleanup nothing may be left: no snapshot of the run, no delta disk, no hot-added disk, no temp state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from conformance.resources import PREFIX
from conformance.vsphere.session import disks_of

if TYPE_CHECKING:
    from conformance.sequences.context import SequenceContext


class CleanupIncompleteError(AssertionError):
    """Something the run created is still there; `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("cleanup left: " + "; ".join(problems))


def verify_clean(ctx: SequenceContext, vm_name: str) -> list[str]:
    vsphere = ctx.vsphere
    problems: list[str] = []
    vm = vsphere.vm(vm_name)
    run_snapshots = [s.name for s in vsphere.snapshots(vm) if s.name.startswith(f"{PREFIX}-{ctx.resources.run_id}")]
    if run_snapshots:
        problems.append(f"{vm_name} still has snapshot(s) {', '.join(run_snapshots)}")
    if not vsphere.snapshots(vm):
        deltas = own_deltas(vm)
        if deltas:
            problems.append(f"{vm_name} has delta disk(s) without a snapshot: {', '.join(deltas)}")
    if vm.runtime.consolidationNeeded:
        problems.append(f"{vm_name} needs disk consolidation")
    if ctx.proxy_vm:
        proxy = vsphere.vm(ctx.proxy_vm)
        mine = files_of(vm)
        left_on_proxy = [d.file_name for d in disks_of(proxy) if d.file_name in mine or _folder(d.file_name) in mine]
        if left_on_proxy:
            problems.append(f"proxy {proxy.name} still has hot-added disk(s) {', '.join(left_on_proxy)}")
    if ctx.tmp_directory is not None and ctx.tmp_directory.exists():
        left = sorted(
            str(p.relative_to(ctx.tmp_directory))
            for p in ctx.tmp_directory.rglob("*")
            if p.is_file() and p.suffix != ".log"
        )
        if left:
            problems.append(f"tmpDirectory {ctx.tmp_directory} still holds {', '.join(left[:5])}")
    return problems


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
