"""The leak sweeper: runs killed with SIGKILL at random points against one served simulator leave snapshots,
clones, hot-added disks; `vddk-conformance sweep TARGET` removes all of it. Also dead simulators' state."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.lab.sweep import OWNER_FILE, find_leftovers, sweep_sim_dirs, wait_for_running_tasks
from conformance.vsphere.connection import Endpoint
from conformance.vsphere.session import VsphereSession, disks_of
from tests.lab.conftest import CLI, SimServer, run_cli, write_target

KILLED_RUNS = 24
PARALLEL = 3
#: small workloads that create every kind of leftover: clones, snapshots, hot-adds, restored VMs
WORKLOADS = [
    "roundtrip and full_backup and hotadd-VMFS-random",
    "roundtrip and restore_to_a_new_vm and hotadd-VMFS-random-thin",
    "roundtrip and restore_to_the_original and nbdssl-VMFS-random",
    "roundtrip and incremental and hotadd-NFS-random",
]


def session_for(server: SimServer) -> VsphereSession:
    info = server.info
    return VsphereSession(
        Endpoint(info["host"], int(info["port"]), info["thumbprint"]), info["user"], server.password, "dc1"
    )


def what_is_left(session: VsphereSession) -> list[str]:
    """Independent of the sweeper: run-named VMs, snapshots and FCDs, and disks of one VM attached to another.
    Taken again when an object vanishes during the walk (a run still working destroys what it listed)."""
    from pyVmomi import vmodl

    for _ in range(20):
        try:
            return _walk(session)
        except vmodl.fault.ManagedObjectNotFound:
            continue
    return _walk(session)


def _walk(session: VsphereSession) -> list[str]:
    from pyVmomi import vim

    left: list[str] = []
    for vm in session.vms():
        if vm.name.startswith("vddkc-"):
            left.append(f"VM {vm.name}")
        left += [f"snapshot {s.name} of {vm.name}" for s in session.snapshots(vm) if s.name.startswith("vddkc-")]
        home = vm.config.files.vmPathName.rsplit("/", 1)[0]
        left += [f"disk {d.file_name} on {vm.name}" for d in disks_of(vm) if not d.file_name.startswith(home + "/")]
    manager = session.content.vStorageObjectManager
    for ds in session._all(vim.Datastore):
        for disk_id in manager.ListVStorageObject(ds) or []:
            name = manager.RetrieveVStorageObject(disk_id, ds).config.name
            if name.startswith("vddkc-"):
                left.append(f"FCD {name}")
    return left


def start_run(target: Path, env: dict[str, str], tmp: Path, index: int, workload: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *CLI,
            "run",
            "--target",
            str(target),
            "--reports",
            str(tmp / "reports"),
            "--run-id",
            f"k{index:02d}",
            "-n",
            "0",
            "-k",
            workload,
            "--basetemp",
            str(tmp / f"base-{index}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


@pytest.mark.slow
def test_runs_killed_at_random_points_leave_nothing_after_a_sweep(tmp_path: Path, sim_server: SimServer) -> None:
    target = write_target(tmp_path / "lab.toml", sim_server.info)
    env = sim_server.env
    started = time.monotonic()
    calibration = start_run(target, env, tmp_path, 99, WORKLOADS[0])
    assert calibration.wait(timeout=120) == 0
    full = time.monotonic() - started  # one uncontended run, start to end
    rng = random.Random(int(os.environ.get("VDDKC_SWEEP_SEED", "0")) or None)
    killed = finished = launched = 0
    while killed < KILLED_RUNS and launched < 2 * KILLED_RUNS:
        batch = []
        for _ in range(PARALLEL):
            # kill anywhere from start-up to the end of a (contended) run
            workload = WORKLOADS[launched % len(WORKLOADS)]
            batch.append((start_run(target, env, tmp_path, launched, workload), rng.uniform(0.6, full * 1.3)))
            launched += 1
        t0 = time.monotonic()
        for process, at in sorted(batch, key=lambda b: b[1]):
            time.sleep(max(0.0, at - (time.monotonic() - t0)))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            else:
                finished += 1
            process.wait()
    session = session_for(sim_server)
    try:
        wait_for_running_tasks(session)  # what killed runs left in flight lands first, as the sweeper waits too
        before = what_is_left(session)
        leftovers = find_leftovers(session, ["proxy-rhel83"], set(), None)
    finally:
        session.close()
    assert killed >= KILLED_RUNS, (killed, finished)
    assert before, "no run was killed while it held anything: the test proves nothing (kill times too early?)"
    result = run_cli("sweep", str(target), env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    removed = [line for line in result.stdout.splitlines() if line.startswith("removed ") and not is_local(line)]
    session = session_for(sim_server)
    try:
        after = what_is_left(session)
    finally:
        session.close()
    print(
        f"\nsweep: {killed} runs killed ({finished} finished first), {len(before)} leftovers seen, "
        f"{len(leftovers)} found by the sweeper, {len(removed)} removed in {time.monotonic() - started:.0f} s"
    )
    for line in result.stdout.splitlines():
        print("  " + line)
    assert after == [], after
    assert len(removed) == len(leftovers)
    again = run_cli("sweep", str(target), env=env, timeout=120).stdout.splitlines()
    assert [line for line in again if line.startswith("removed ") and not is_local(line)] == [], again


def test_a_dead_simulators_state_folder_is_swept_and_a_live_ones_is_kept(tmp_path: Path) -> None:
    dead = tmp_path / "vsphere-sim-dead"
    live = tmp_path / "vsphere-sim-live"
    unknown = tmp_path / "vsphere-sim-unknown"
    for folder in (dead, live, unknown):
        folder.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (dead / OWNER_FILE).write_text(f"{child.pid}\n")
    (live / OWNER_FILE).write_text(f"{os.getpid()}\n")
    assert sweep_sim_dirs(tmp_path, dry_run=True) == [
        f"would remove simulator state {dead} (owner pid {child.pid} is gone)"
    ]
    assert dead.exists()
    assert sweep_sim_dirs(tmp_path) == [f"removed simulator state {dead} (owner pid {child.pid} is gone)"]
    assert not dead.exists() and live.exists() and unknown.exists()


def test_a_folder_killed_before_its_owner_file_is_judged_by_the_pid_in_its_name(tmp_path: Path) -> None:
    """A simulator or run killed between making its folder and marking it: the pid in the name decides."""
    from conformance.ownership import named_pid, owned_temp_dir

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead, live = tmp_path / f"vsphere-sim-{child.pid}-ab_c9xyz", tmp_path / f"vsphere-sim-{os.getpid()}-q1w2e3r4"
    for folder in (dead, live):
        folder.mkdir()
    assert sweep_sim_dirs(tmp_path) == [
        f"removed simulator state {dead} (not marked, and pid {child.pid} of its name is gone)"
    ]
    assert not dead.exists() and live.exists()
    made = owned_temp_dir("vsphere-sim-")
    try:
        assert named_pid(made.name) == os.getpid() and (made / OWNER_FILE).read_text().split()[0] == str(os.getpid())
    finally:
        shutil.rmtree(made)
    assert named_pid("vsphere-sim-unknown") is None and named_pid("vsphere-sim-x-12ab") is None


def test_a_killed_sim_serve_leaves_a_folder_the_sweeper_removes() -> None:
    process = subprocess.Popen([*CLI, "sim", "serve"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    import json

    state = Path(json.loads(process.stdout.readline())["state_dir"])
    process.stdout.close()
    assert (state / OWNER_FILE).read_text().split()[0] == str(process.pid)
    lines = sweep_sim_dirs(state.parent, dry_run=True)
    assert not any(str(state) in line for line in lines)  # alive: kept
    process.kill()
    process.wait()
    assert state.exists()
    result = run_cli("sweep", timeout=60)
    assert f"removed simulator state {state} (owner pid {process.pid} is gone)" in result.stdout
    assert not state.exists()


def test_sweep_keeps_other_runs_and_recent_leftovers_and_never_touches_unmarked_objects() -> None:
    from conformance.lab.sweep import sweep_target
    from conformance.sim.instance import Simulator

    with Simulator() as sim:
        endpoint = Endpoint(sim.host, sim.port, sim.thumbprint)
        session = VsphereSession(endpoint, sim.user, sim.password, "dc1")
        try:
            vm = session.vm("target-vmfs")
            for name in ("vddkc-runA-gw0-backup-1", "vddkc-runB-gw0-backup-1", "nightly-backup"):
                session.create_snapshot(vm, name, quiesce=False)
            removed, failed = sweep_target(session, [], {"target-vmfs"}, run_id="runA", dry_run=True)
            assert removed == ["would remove snapshot vddkc-runA-gw0-backup-1 (of target-vmfs)"] and failed == []
            removed, failed = sweep_target(session, [], set(), older_than=60)
            assert removed == [] and failed == []  # just created: a run may still be using them
            removed, failed = sweep_target(session, [], set(), run_id="runA")
            assert removed == ["removed snapshot vddkc-runA-gw0-backup-1 (of target-vmfs)"]
            removed, failed = sweep_target(session, [], set())
            assert removed == ["removed snapshot vddkc-runB-gw0-backup-1 (of target-vmfs)"]
            assert [s.name for s in session.snapshots(vm)] == ["nightly-backup"]
        finally:
            session.close()


def test_sweep_with_a_bad_target_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "lab.toml"
    bad.write_text('[server]\nhost = "h"\n')
    result = run_cli("sweep", str(bad), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and str(bad) in result.stderr


def test_sweep_removes_run_fcds_and_run_fcd_snapshots_only() -> None:
    from pyVmomi import vim

    from conformance.lab.sweep import sweep_target
    from conformance.sim.instance import Simulator
    from conformance.vsphere.tasks import wait_for_task

    with Simulator() as sim:
        session = VsphereSession(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password, "dc1")
        try:
            manager = session.content.vStorageObjectManager
            ds = session.datastore("vmfs-01")

            def fcd(name: str) -> object:
                spec = vim.vslm.CreateSpec(
                    name=name,
                    capacityInMB=4,
                    backingSpec=vim.vslm.CreateSpec.DiskFileBackingSpec(datastore=ds, provisioningType="thin"),
                )
                return wait_for_task(manager.CreateDisk_Task(spec), f"create FCD {name}").config.id

            run_fcd, lab_fcd = fcd("vddkc-runF-gw0-fcd-1"), fcd("lab-disk")
            for disk_id, description in (
                (run_fcd, "vddkc-runF-gw0-s1"),
                (lab_fcd, "vddkc-runF-gw0-s2"),
                (lab_fcd, "keep"),
            ):
                wait_for_task(manager.VStorageObjectCreateSnapshot_Task(disk_id, ds, description), description)
            removed, failed = sweep_target(session, [], set())
            assert failed == [] and sorted(removed) == [
                "removed FCD snapshot vddkc-runF-gw0-s1 (of FCD vddkc-runF-gw0-fcd-1 on vmfs-01)",
                "removed FCD snapshot vddkc-runF-gw0-s2 (of FCD lab-disk on vmfs-01)",
                "removed FCD vddkc-runF-gw0-fcd-1 (on vmfs-01)",
            ]
            names = [manager.RetrieveVStorageObject(i, ds).config.name for i in manager.ListVStorageObject(ds)]
            assert names == ["lab-disk"]
            assert [s.description for s in manager.RetrieveSnapshotInfo(lab_fcd, ds).snapshots] == ["keep"]
        finally:
            session.close()


def test_sweep_with_a_run_id_removes_the_hot_add_of_that_runs_snapshot_and_nothing_else() -> None:
    """D5: a HotAdd backup killed mid-run leaves its snapshot's disk on the proxy; the VM is not the run's (an
    allow-listed one), so only the snapshot's run-named name ties the hot-add to the run."""
    from pyVmomi import vim

    from conformance.lab.sweep import sweep_target
    from conformance.sim.instance import Simulator
    from conformance.vsphere.tasks import wait_for_task

    def hot_add(session: VsphereSession, proxy: object, file_name: str) -> None:
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=file_name, diskMode="independent_nonpersistent"
        )
        device = vim.vm.device.VirtualDisk(key=-1, controllerKey=1000, unitNumber=-1, backing=backing)
        spec = vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=device)])
        wait_for_task(proxy.ReconfigVM_Task(spec), f"hot-add {file_name}")  # type: ignore[attr-defined]

    with Simulator() as sim:
        session = VsphereSession(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password, "dc1")
        try:
            proxy = session.vm("proxy-rhel83")
            killed = session.create_snapshot(session.vm("target-vmfs"), "vddkc-runK-gw0-backup-1", quiesce=False)
            other = session.create_snapshot(session.vm("target-nfs"), "vddkc-runO-gw0-backup-1", quiesce=False)
            held, kept = disks_of(killed)[0].file_name, disks_of(other)[0].file_name
            for file_name in (held, kept):
                hot_add(session, proxy, file_name)
            removed, failed = sweep_target(session, ["proxy-rhel83"], {"target-vmfs", "target-nfs"}, run_id="runK")
            assert failed == [] and removed == [
                f"removed hot-added disk {held} (on proxy proxy-rhel83, belongs to target-vmfs)",
                "removed snapshot vddkc-runK-gw0-backup-1 (of target-vmfs)",
            ]
            assert [d.file_name for d in disks_of(proxy)][1:] == [kept]  # run O's hot-add is not run K's
        finally:
            session.close()


def test_a_run_killed_hard_leaves_folders_that_sweep_removes_and_finished_reports_stay(tmp_path: Path) -> None:
    """SIGKILL of a run's whole process group: its half-written report folder, its pytest temporary folder and
    its simulator's state are swept; a finished run's report folder is not touched."""
    temp, reports = tmp_path / "tmp", tmp_path / "reports"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    finished = run_cli("run", "--reports", str(reports), "--run-id", "done", "-n", "0", "-k", "cbt_state", env=env)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert not (reports / "done" / OWNER_FILE).exists() and list(temp.iterdir()) == []  # a clean end leaves nothing
    process = subprocess.Popen(
        [*CLI, "run", "--reports", str(reports), "--run-id", "killed", "-n", "2", "-k", "roundtrip"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        (reports / "killed" / OWNER_FILE).exists() and list(temp.glob("vsphere-sim-*"))
    ):
        time.sleep(0.1)
    time.sleep(2)  # somewhere in the first tests
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (reports / "killed").is_dir() and list(temp.glob("vddkc-run-killed-*"))
    result = run_cli("sweep", "--reports", str(reports), env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed half-written report folder" in result.stdout and "removed run temporary folder" in result.stdout
    assert not (reports / "killed").exists() and (reports / "done" / "summary.json").is_file()
    assert [p.name for p in temp.iterdir()] == [], result.stdout


def test_a_task_the_server_will_not_show_does_not_stop_the_sweep() -> None:
    """A server lists a task in recentTask that reading then refuses (purged since, or not readable by this user):
    the sweep used to die there with a traceback before removing anything. It goes on and removes the leftover."""
    from conformance.lab.sweep import sweep_target
    from conformance.sim.instance import Simulator

    with Simulator() as sim:
        session = VsphereSession(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password, "dc1")
        try:
            vm = session.vm("target-vmfs")
            session.create_snapshot(vm, "vddkc-runU-gw0-backup-1", quiesce=False)
            assert sim.ctx is not None
            unreadable = sim.ctx.task_manager.tasks[-1]  # the snapshot's task: still listed, no longer there
            sim.ctx.registry.remove(unreadable)
            assert any(t._moId == unreadable.moid for t in session.content.taskManager.recentTask)
            removed, failed = sweep_target(session, [], set(), run_id="runU")
            assert removed == ["removed snapshot vddkc-runU-gw0-backup-1 (of target-vmfs)"] and failed == []
        finally:
            session.close()


def test_sweep_removes_the_agent_folders_of_dead_processes_only(tmp_path: Path) -> None:
    """A product or harness killed before its Exit leaves its agent's socket folder; the sweep removes it when
    the process named in it is gone, and never one of a live process or of another name."""
    import subprocess

    from conformance.lab.local_sweep import sweep_agent_dirs

    child = subprocess.Popen(["true"])
    child.wait()
    gone = tmp_path / f"vddkc-shim-{child.pid}-AbCdEf"
    live = tmp_path / f"vddkc-agent-{os.getpid()}-xyz"
    other = tmp_path / "vddkc-shimmer-1-x"
    for folder in (gone, live, other):
        folder.mkdir()
        (folder / "agent.sock").write_text("")
    assert sweep_agent_dirs(tmp_path, dry_run=True) == [
        f"would remove agent folder {gone} (process {child.pid} is gone)"
    ]
    assert gone.exists()
    assert sweep_agent_dirs(tmp_path) == [f"removed agent folder {gone} (process {child.pid} is gone)"]
    assert not gone.exists() and live.exists() and other.exists()


def test_sweep_removes_the_library_folders_empty_trails_and_keeps_a_crashed_session(tmp_path: Path) -> None:
    """A process killed before Exit leaves `vmware-<user>/vixDiskLib-<pid>`; empty, it goes once the process is
    gone; holding a session folder, it stays for VixDiskLib_Cleanup; a live process's folder stays."""
    import getpass
    import subprocess

    from conformance.lab.local_sweep import sweep_library_trails

    child = subprocess.Popen(["true"])
    child.wait()
    crashed = subprocess.Popen(["true"])
    crashed.wait()
    base = tmp_path / f"vmware-{getpass.getuser()}"
    trail, session, live = (base / f"vixDiskLib-{pid}" for pid in (child.pid, crashed.pid, os.getpid()))
    for folder in (trail, session, live):
        (folder / "vixDiskLib-sessions").mkdir(parents=True)
    (session / "vixDiskLib-sessions" / "vc.example-0123456789ab").mkdir()
    assert sweep_library_trails(tmp_path, dry_run=True) == [
        f"would remove library temporary folder {trail} (process {child.pid} is gone)"
    ]
    assert sweep_library_trails(tmp_path) == [f"removed library temporary folder {trail} (process {child.pid} is gone)"]
    assert not trail.exists() and session.exists() and live.exists()
    for folder in (session, live):
        shutil.rmtree(folder)
    assert sweep_library_trails(tmp_path) == [] and not base.exists(), "the empty user folder goes too"


def is_local(line: str) -> bool:
    """A sweep line about this machine's folders: other tests running beside this one (a killed product's agent
    folder) can leave those, so they are not the server leftovers this test counts."""
    local = ("simulator state", "agent folder", "run temporary folder", "library temporary folder")
    return any(what in line for what in local)
