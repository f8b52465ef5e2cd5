"""K2: VixDiskLib_Cleanup in a new process after a HotAdd backup process was killed.

Process A is a real separate OS process (`conformance.sequences.backup_process`, the harness's library built as
the fixtures build it, connection details in its environment): it opens a snapshot disk over HotAdd, reads, and
is SIGKILLed before it cleans up. Process B then calls Cleanup. With the default temporary directory B does not find A's
leftovers (the known issue: the reproducer asserts that it does); with `tmpDirectory` set in the configuration
of both (the workaround) B's Cleanup finds and removes them and the proxy VM keeps no hot-added disk.

The known issue's symptom is what the harness observes after B: Cleanup reported nothing cleaned up while the
proxy VM, as the server sees it, still has A's hot-added disk. Anything else (B crashing, a setup failure) is a
failure or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.knowledge.symptoms import symptom
from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import Target
from conformance.sequences.backup_process import ChildLaunch, child_env, cleanup_process, crashed_backup
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import KEY_TMP_DIRECTORY, render_config
from conformance.vixdisklib.factory import LibrarySpec
from conformance.vsphere.session import VsphereSession, disks_of

pytestmark = [pytest.mark.sequence("cleanup")]


@dataclass
class Crash:
    """What process A left behind, and how to start process B like it."""

    env: Callable[..., ChildLaunch]  # child_env for Cleanup with A's connection details and library
    disk: str  # the snapshot disk A hot-added
    tmp_directory: Path  # where A kept its session state
    hot_added: Callable[[], int]  # how many times the proxy VM has `disk` attached now


def proxy_copies(vsphere: VsphereSession, proxy_vm: str, disk: str) -> int:
    return sum(1 for d in disks_of(vsphere.vm(proxy_vm)) if d.file_name == disk)


@pytest.fixture
def crash(
    vixdisklib_factory: Callable[..., VixDiskLib],  # first: its libraries outlive the resources' teardown
    vixdisklib_spec: Callable[..., LibrarySpec],
    vddk_target: Target,
    vsphere: VsphereSession,
    resources: ResourceTracker,
    tmp_path: Path,
) -> Callable[[bool], Crash]:
    """Run process A (HotAdd open of a fresh snapshot, SIGKILL) with tmpDirectory set or VDDK's default."""
    vm_name, proxy = vddk_target.target_vms.get("VMFS"), vddk_target.default_proxy
    if vm_name is None or proxy is None:
        pytest.skip(f"target {vddk_target.name} has no VMFS target VM or no HotAdd proxy VM")
    vm = vsphere.vm(vm_name)
    params = vddk_target.connect_params()
    library = vixdisklib_spec(proxy)  # the run's library (backend, libdir, build) in the proxy VM
    default_tmp = tmp_path / "TMPDIR"  # the processes' TMPDIR: VDDK's default folder goes below it
    default_tmp.mkdir()

    def make(tmp_directory_set: bool) -> Crash:
        config: Path | None = None
        if tmp_directory_set:
            config = tmp_path / "shared.conf"
            config.write_text(render_config({KEY_TMP_DIRECTORY: str(tmp_path / "shared-tmp")}))
        name = resources.name("k2-backup")
        snapshot = vsphere.create_snapshot(vm, name, "K2: a backup process killed before Cleanup")
        resources.add("snapshot", name, lambda: vsphere.remove_snapshot(snapshot, name))
        disk = disks_of(snapshot)[0].file_name

        def env(action: str, **extra: Any) -> ChildLaunch:
            return child_env(action, params, library, config, default_tmp, **extra)

        report = crashed_backup(env("hotadd-open", vm=vm._moId, snapshot=snapshot._moId, disk=disk))
        left = Path(report["tmp_directory"])

        def rescue() -> None:  # whatever B did not release goes before the snapshot does
            vixdisklib_factory(config={KEY_TMP_DIRECTORY: str(left)}).cleanup(params)

        resources.add("hot-add", f"{disk} on {proxy}", rescue)
        found = Crash(env, disk, left, lambda: proxy_copies(vsphere, proxy, disk))
        assert report["transport"] == "hotadd", report
        assert found.hot_added() == 1, "process A's hot-added disk should still be on the proxy VM"
        return found

    return make


@pytest.mark.release_note("K2")
@pytest.mark.test_id(
    "K2-001",
    uuid="9364aa93-52d9-46e8-a98e-bc6df849e41a",
    since="vddk-7.0.3-v1",
    description="Cleanup in a new process with the default tmp directory finds the killed backup",
)
def test_cleanup_in_a_new_process_with_the_default_tmp_directory_finds_the_killed_backup(
    crash: Callable[[bool], Crash],
) -> None:
    left = crash(False)
    result = cleanup_process(left.env("cleanup"))
    if result.get("cleaned") == 0 and left.hot_added() == 1:
        symptom("K2", "Cleanup in a new process did not find the killed backup's hot-added disk", observed=result)
    assert result == {"cleaned": 1, "remaining": 0}


@pytest.mark.release_note("K2", workaround="tmpdirectory-set")
@pytest.mark.test_id(
    "K2-002",
    uuid="df0aff3e-ec3d-46bd-951c-4214277e364e",
    since="vddk-7.0.3-v1",
    description="Cleanup with tmp directory set removes the killed backups leftovers",
)
@pytest.mark.parametrize("cleaner", ["new-process", "new-library"])
def test_cleanup_with_tmp_directory_set_removes_the_killed_backups_leftovers(
    crash: Callable[[bool], Crash],
    vixdisklib_factory: Callable[..., VixDiskLib],
    vddk_target: Target,
    cleaner: str,
) -> None:
    left = crash(True)
    if cleaner == "new-process":
        result = cleanup_process(left.env("cleanup"))
    else:
        cleaned, remaining = vixdisklib_factory(config={KEY_TMP_DIRECTORY: str(left.tmp_directory)}).cleanup(
            vddk_target.connect_params()
        )
        result = {"cleaned": cleaned, "remaining": remaining}
    assert result == {"cleaned": 1, "remaining": 0}


@pytest.mark.release_note("K2", workaround="tmpdirectory-set")
@pytest.mark.test_id(
    "K2-003",
    uuid="e981433d-bd51-4a29-8146-38eab0760a48",
    since="vddk-7.0.3-v1",
    description="Cleanup with tmp directory set leaves no hot added disk on the proxy",
)
def test_cleanup_with_tmp_directory_set_leaves_no_hot_added_disk_on_the_proxy(
    crash: Callable[[bool], Crash],
) -> None:
    left = crash(True)
    cleanup_process(left.env("cleanup"))
    assert left.hot_added() == 0
