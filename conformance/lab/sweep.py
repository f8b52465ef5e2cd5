"""The leak sweeper: find and remove what interrupted runs left on a target, and dead simulators' state here.

Why: a run killed with SIGKILL (OOM killer, a lost CI runner) cannot clean up. Everything a run creates is
named `vddkc-<run id>-<worker>-...` (and VMs also carry the run id as a custom attribute and annotation),
so the sweeper can find the leftovers by name and remove them in an order the server accepts: disks
hot-added to proxies first (they pin snapshots), then run snapshots on surviving VMs, then run clones, then
FCD snapshots and run FCDs. It only ever removes run-named objects, and hot-added disks only when their files
belong to an allow-listed or run-created VM or are the disks of a run-named snapshot (what a killed HotAdd backup
of any VM leaves), so a shared lab's own snapshots and hot-adds are left alone.
`--older-than` keeps the leftovers of runs that may still be going.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pyVmomi import vmodl

from conformance.input_errors import InputError
from conformance.lab.local_sweep import OWNER_FILE, RUN_TEMP_PREFIX, SIM_DIR_PREFIX, sweep_here, sweep_sim_dirs
from conformance.lab.resources import PREFIX

__all__ = [
    "OWNER_FILE", "RUN_TEMP_PREFIX", "SIM_DIR_PREFIX", "Leftover", "SweepError", "find_leftovers", "sweep_command",
    "sweep_sim_dirs", "sweep_target",
]  # fmt: skip

log = logging.getLogger("conformance.lab.sweep")
_STAMP = re.compile(rf"^{PREFIX}-(\d{{8}}-\d{{6}})-")


class SweepError(InputError):
    """The sweep cannot start (bad target file, unreachable server); one line."""


@dataclass
class Leftover:
    kind: str  # "hot-added disk", "snapshot", "clone", "FCD snapshot", "FCD", "simulator state"
    name: str
    where: str
    age: float | None  # seconds, when known
    remove: Callable[[], None]

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.where})"


def _run_prefix(run_id: str | None) -> str:
    return f"{PREFIX}-{run_id}-" if run_id else f"{PREFIX}-"


def _age(name: str, created: Any) -> float | None:
    """Seconds since the object was created (its time stamp, else the run id's), None when unknown."""
    now = time.time()
    if isinstance(created, datetime.datetime):
        stamp = created if created.tzinfo else created.replace(tzinfo=datetime.UTC)
        return now - stamp.timestamp()
    match = _STAMP.match(name)
    if match:
        try:
            return now - time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S"))
        except ValueError:
            return None
    return None


def _dir_of(ds_path: str) -> str:
    """'[ds] folder/file.vmdk' -> '[ds] folder'."""
    return ds_path.rsplit("/", 1)[0] if "/" in ds_path else ds_path


def _wait(task: Any, what: str) -> None:
    from conformance.vsphere.tasks import wait_for_task

    wait_for_task(task, what, timeout=300)


def _task(what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Start a vSphere task and wait for it (bound with functools.partial into a Leftover's remove)."""
    _wait(method(*args, **kwargs), what)


#: how long the sweeper waits for tasks a killed run left running (a clone or destroy still in flight)
TASK_GRACE = 60.0


def wait_for_running_tasks(session: Any, grace: float = TASK_GRACE) -> None:
    """Wait (up to ``grace`` seconds) until the server runs no task: a run killed mid-clone leaves the clone's
    task running, and a sweep that ran before it ends would miss the clone it makes."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not any(_in_flight(task) for task in session.content.taskManager.recentTask):
            return
        time.sleep(0.5)


def _in_flight(task: Any) -> bool:
    """Whether a task is queued or running. One the server lists but will not show (purged since the listing, or
    on an entity this user may not read) runs nothing of ours that the sweep could wait for: not in flight."""
    try:
        return task.info.state in ("queued", "running")
    except vmodl.MethodFault as exc:
        log.info("sweep: task %s is unreadable (%s); not waiting for it", task, type(exc).__name__)
        return False


def find_leftovers(session: Any, proxies: list[str], allow_vms: set[str], run_id: str | None = None) -> list[Leftover]:
    """Everything of interrupted runs on the server, in removal order."""
    from pyVmomi import vim

    prefix = _run_prefix(run_id)
    vms = session.vms()
    home_of = {}
    for vm in vms:
        vmx = getattr(getattr(vm.config, "files", None), "vmPathName", None) if vm.config else None
        if vmx:
            home_of[_dir_of(vmx)] = vm.name
    run_vm = {vm.name for vm in vms if vm.name.startswith(prefix)}
    run_snapshot_disks = _run_snapshot_disks(session, vms, prefix)
    found: list[Leftover] = []

    # 1. disks hot-added to proxies whose files belong to another (allow-listed or run-created) VM, or are the
    #    disks of a run's snapshot (a killed HotAdd backup of any VM leaves exactly that)
    for vm in vms:
        if vm.name not in proxies or vm.config is None:
            continue
        own = _dir_of(vm.config.files.vmPathName)
        for device in vm.config.hardware.device:
            if not isinstance(device, vim.vm.device.VirtualDisk):
                continue
            file_name = str(getattr(device.backing, "fileName", "") or "")
            folder = _dir_of(file_name)
            owner = home_of.get(folder)
            if folder == own or owner is None:
                continue
            of_run_snapshot = file_name in run_snapshot_disks
            if owner not in run_vm and not (run_id is None and owner in allow_vms) and not of_run_snapshot:
                continue
            found.append(
                Leftover(
                    "hot-added disk",
                    file_name,
                    f"on proxy {vm.name}, belongs to {owner}",
                    _age(owner, None),
                    partial(
                        _task,
                        f"hot-remove {file_name} from {vm.name}",
                        vm.ReconfigVM_Task,
                        vim.vm.ConfigSpec(
                            deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)]
                        ),
                    ),
                )
            )

    # 2. run snapshots on VMs that stay (a clone's snapshots go with the clone)
    for vm in vms:
        if vm.name in run_vm:
            continue
        for node in session.snapshots(vm):
            if node.name.startswith(prefix):
                found.append(
                    Leftover(
                        "snapshot",
                        node.name,
                        f"of {vm.name}",
                        _age(node.name, node.createTime),
                        partial(
                            _task,
                            f"remove snapshot {node.name}",
                            node.snapshot.RemoveSnapshot_Task,
                            removeChildren=False,
                            consolidate=True,
                        ),
                    )
                )

    # 3. clones and restored VMs the runs created
    for vm in vms:
        if vm.name in run_vm:
            created = getattr(vm.config, "createDate", None) if vm.config else None

            def destroy(vm: Any = vm, name: str = vm.name) -> None:
                # the name is read up front: once Destroy_Task has run, reading it fails (the VM is gone)
                if vm.runtime.powerState != "poweredOff":
                    _wait(vm.PowerOffVM_Task(), f"power off {name}")
                _wait(vm.Destroy_Task(), f"destroy {name}")

            found.append(Leftover("clone", vm.name, "VM", _age(vm.name, created), destroy))

    # 4. FCD snapshots and FCDs the runs created
    manager = session.content.vStorageObjectManager
    if manager is not None:
        for ds in session._all(vim.Datastore):
            try:
                ids = manager.ListVStorageObject(ds) or []
            except vim.fault.NotFound:
                continue
            for disk_id in ids:
                try:
                    fcd = manager.RetrieveVStorageObject(disk_id, ds)
                    snaps = manager.RetrieveSnapshotInfo(disk_id, ds).snapshots or []
                except vim.fault.NotFound:
                    continue
                fcd_name = str(fcd.config.name)
                mine = fcd_name.startswith(prefix)
                for snap in snaps:
                    if mine or str(snap.description).startswith(prefix):
                        found.append(
                            Leftover(
                                "FCD snapshot",
                                str(snap.description),
                                f"of FCD {fcd_name} on {ds.name}",
                                _age(str(snap.description), getattr(snap, "createTime", None)),
                                partial(
                                    _task,
                                    f"delete FCD snapshot {snap.description}",
                                    manager.DeleteSnapshot_Task,
                                    disk_id,
                                    ds,
                                    snap.id,
                                ),
                            )
                        )
                if mine:
                    found.append(
                        Leftover(
                            "FCD",
                            fcd_name,
                            f"on {ds.name}",
                            _age(fcd_name, getattr(fcd.config, "createTime", None)),
                            partial(_task, f"delete FCD {fcd_name}", manager.DeleteVStorageObject_Task, disk_id, ds),
                        )
                    )
    return found


def _run_snapshot_disks(session: Any, vms: list[Any], prefix: str) -> set[str]:
    """The disk files of every run-named snapshot: what a backup of that snapshot hot-adds to a proxy."""
    from pyVmomi import vim

    files: set[str] = set()
    for vm in vms:
        for node in session.snapshots(vm):
            if not node.name.startswith(prefix):
                continue
            config = node.snapshot.config
            for device in config.hardware.device if config is not None else []:
                if isinstance(device, vim.vm.device.VirtualDisk):
                    files.add(str(getattr(device.backing, "fileName", "") or ""))
    return files


def sweep_target(
    session: Any,
    proxies: list[str],
    allow_vms: set[str],
    *,
    run_id: str | None = None,
    older_than: float | None = None,
    dry_run: bool = False,
) -> tuple[list[str], list[str]]:
    """Remove the leftovers (older than `older_than` minutes when given): (lines of what went, failures)."""
    removed: list[str] = []
    failed: list[str] = []
    if not dry_run:
        wait_for_running_tasks(session)
    for leftover in find_leftovers(session, proxies, allow_vms, run_id):
        if older_than is not None and (leftover.age is None or leftover.age < older_than * 60):
            continue
        if dry_run:
            removed.append(f"would remove {leftover.describe()}")
            continue
        try:
            leftover.remove()
        except vmodl.fault.ManagedObjectNotFound:
            removed.append(f"already gone: {leftover.describe()}")  # a killed run's own task finished it
            continue
        except Exception as exc:
            failed.append(f"could not remove {leftover.describe()}: {getattr(exc, 'msg', None) or exc}")
            continue
        removed.append(f"removed {leftover.describe()}")
    return removed, failed


def sweep_command(
    target: str | None,
    *,
    run_id: str | None = None,
    older_than: float | None = None,
    dry_run: bool = False,
    reports: Path | None = None,
) -> int:
    """`vddk-conformance sweep`: print one line per removed leftover; exit 1 when something could not go."""
    failed: list[str] = []
    lines: list[str] = []
    if target is not None:
        from conformance.lab.target_file import TargetFileError, load_target_file
        from conformance.vsphere.connection import PinMismatchError, VsphereConnectError
        from conformance.vsphere.session import VsphereSession

        try:
            spec = load_target_file(target)
            password = spec.password.read()
        except TargetFileError as exc:
            raise SweepError(str(exc)) from None
        from conformance.vsphere.connection import Endpoint

        try:
            session = VsphereSession(
                Endpoint(spec.host, spec.port, spec.thumbprint), spec.user, password, spec.datacenter
            )
        except (PinMismatchError, VsphereConnectError) as exc:
            raise SweepError(f"{spec.path}: {exc}") from None
        except OSError as exc:
            raise SweepError(f"{spec.path}: cannot reach {spec.host}:{spec.port}: {exc}") from None
        try:
            proxies = [p for p in (spec.proxy,) if p]
            removed, failed = sweep_target(
                session, proxies, set(spec.allow_vms), run_id=run_id, older_than=older_than, dry_run=dry_run
            )
            lines += removed
        finally:
            session.close()
    lines += sweep_here(reports or Path("reports"), older_than=older_than, dry_run=dry_run)
    for line in lines + failed:
        print(line, flush=True)
    if not lines and not failed:
        print("sweep: nothing left behind")
    return 1 if failed else 0
