"""Known issues every build has (K2, K4) as switches of vddk_builds.toml, and the simulator playing them fixed.

Every real build keeps both bugs; only `--sim-fixed` (a LibrarySpec's `fixed`) turns a switch, in every library
a run builds, the K2 child processes included. Each check is shown on both sides: with the bug and without it,
judged by what the server shows (the proxy VM's disks) and what a new process's Cleanup finds.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from conformance.knowledge import build_facts
from conformance.knowledge.build_facts import BehaviourError, all_behaviours, behaviour_of, known_issue_fixes
from conformance.sequences.backup_process import child_env, cleanup_process, crashed_backup
from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import KEY_TMP_DIRECTORY
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.factory import BackendError, LibrarySpec, make_library
from conformance.vixdisklib.simulated.behaviour import played_behaviour
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.simulated.tmpstate import default_tmp_directory, session_folders
from conformance.vixdisklib.types import ConnectParams
from tests.vixdisklib.conftest import (
    PROXY_VM,
    connect_params,
    disk_path,
    disks_of,
    find,
    proxy_disk_count,
    snapshot,
    write_config,
)

SWITCHES = {"K2": "default_tmp_per_process", "K4": "vsan_hotadd_needs_vsan_proxy"}


@pytest.mark.parametrize("item", sorted(SWITCHES))
def test_every_real_build_has_the_known_issue(item: str) -> None:
    assert all(getattr(b, SWITCHES[item]) for b in all_behaviours())
    assert known_issue_fixes()[item] == {SWITCHES[item]: False}


@pytest.mark.parametrize("build", ["6.5.0", "7.0.3"])
@pytest.mark.parametrize("item", sorted(SWITCHES))
def test_playing_an_item_fixed_turns_its_switch_only_and_leaves_the_facts_alone(build: str, item: str) -> None:
    real = behaviour_of(build)
    played = played_behaviour(build, (item,))
    changed = {f.name for f in dataclasses.fields(real) if getattr(real, f.name) != getattr(played, f.name)}
    assert changed == {SWITCHES[item]}
    assert behaviour_of(build) == real and getattr(real, SWITCHES[item])  # the knowledge layer still has the bug


def test_an_item_without_a_switch_cannot_be_played_fixed() -> None:
    with pytest.raises(BehaviourError, match="K1 has no switch"):
        played_behaviour("7.0.3", ("K1",))


@pytest.mark.parametrize(
    ("fixed", "message"),
    [
        ({"K2": {"no_such_switch": False}}, "unknown switch"),
        ({"K2": {"default_tmp_per_process": "no"}}, "wrong type"),
        ({"K2": {}}, "expected"),
    ],
)
def test_a_broken_fixed_table_fails_in_one_line(monkeypatch: pytest.MonkeyPatch, fixed: Any, message: str) -> None:
    raw = {**build_facts._raw(), "fixed": fixed}
    monkeypatch.setattr(build_facts, "_raw", lambda: raw)
    with pytest.raises(BehaviourError, match=message) as caught:
        known_issue_fixes.__wrapped__()
    assert "\n" not in str(caught.value) and "[fixed] K2" in str(caught.value)


def test_the_default_tmp_directory_is_per_process_only_with_k2() -> None:
    assert default_tmp_directory().name == f"vixDiskLib-{os.getpid()}"
    assert default_tmp_directory(per_process=False).name == "vixDiskLib"
    assert SimulatedVixDiskLib(fixed=("K2",)).tmp_directory == default_tmp_directory(per_process=False)


def test_the_spec_carries_the_fixed_items_to_a_child_and_native_refuses_them(tmp_path: Path) -> None:
    spec = LibrarySpec("7.0.3", proxy_vm=PROXY_VM, fixed=("K2", "K4"))
    assert spec.to_env()["VDDK_LIB_FIXED"] == "K2,K4"
    assert LibrarySpec.from_env(spec.to_env()) == spec
    assert LibrarySpec.from_env(LibrarySpec("7.0.3").to_env()).fixed == ()
    with pytest.raises(BackendError, match="cannot be told to fix") as caught:
        make_library("7.0.3", backend="native", libdir=tmp_path, fixed=("K2",))
    assert "\n" not in str(caught.value)


# --- K4 through the simulated library, judged by the proxy VM's disks on the server ---


@pytest.fixture
def vsan_backup(content: Any, vm_params: Callable[[str], ConnectParams]) -> Iterator[tuple[ConnectParams, str, str]]:
    vm = find(content, vim.VirtualMachine, "target-vsan")
    snap = snapshot(vm, "k4-fixed")
    yield vm_params("target-vsan"), snap._moId, disk_path(snap)
    snap.RemoveSnapshot_Task(False)


@pytest.mark.parametrize(("fixed", "chosen"), [((), "nbdssl"), (("K4",), "hotadd")])
def test_k4_hotadd_of_a_vsan_disk_from_a_proxy_outside_vsan_only_when_played_fixed(
    content: Any, vsan_backup: tuple[ConnectParams, str, str], tmp_path: Path, fixed: tuple[str, ...], chosen: str
) -> None:
    params, snap, path = vsan_backup
    lib = VixDiskLib(SimulatedVixDiskLib("7.0.3", proxy_vm=PROXY_VM, fixed=fixed))
    lib.init_ex(write_config(tmp_path / "vddk.conf", {KEY_TMP_DIRECTORY: str(tmp_path / "vddk-tmp")}))
    proxy = find(content, vim.VirtualMachine, PROXY_VM)
    try:
        with lib.connected(params, True, snap, "hotadd:nbdssl") as connection, lib.opened(connection, path) as disk:
            attached = [d.backing.fileName for d in disks_of(proxy)]
            assert lib.get_transport_mode(disk) == chosen
            assert (path in attached) == (chosen == "hotadd")  # the server's view, not the library's word
            lib.read(disk, 0, 1)
        if not fixed:
            with lib.connected(params, True, snap, "hotadd") as connection, pytest.raises(VixError):
                lib.open(connection, path)
    finally:
        lib.exit()


# --- K2 across real processes: the fixed switch reaches the child through the spec ---


@pytest.fixture
def vmfs_snapshot(content: Any, vm_params: Callable[[str], ConnectParams]) -> Iterator[tuple[ConnectParams, str, str]]:
    snap = snapshot(find(content, vim.VirtualMachine, "target-vmfs"), "k2-fixed")
    yield vm_params("target-vmfs"), snap._moId, disk_path(snap)
    snap.RemoveSnapshot_Task(False)


@pytest.mark.parametrize(("fixed", "cleaned"), [((), 0), (("K2",), 1)])
def test_k2_a_new_process_with_the_default_tmp_directory_finds_a_crashed_backup_only_when_played_fixed(
    sim: Simulator,
    content: Any,
    vmfs_snapshot: tuple[ConnectParams, str, str],
    tmp_path: Path,
    fixed: tuple[str, ...],
    cleaned: int,
) -> None:
    params, snap, path = vmfs_snapshot
    spec, tmpdir = LibrarySpec("7.0.3", proxy_vm=PROXY_VM, fixed=fixed), tmp_path / "TMPDIR"
    tmpdir.mkdir()
    before = proxy_disk_count(content)
    assert params.vm_moref is not None
    report = crashed_backup(
        child_env("hotadd-open", connect_params(sim), spec, None, tmpdir, vm=params.vm_moref, snapshot=snap, disk=path)
    )
    left = Path(report["tmp_directory"])
    try:
        assert proxy_disk_count(content) == before + 1  # left behind by the crash
        result = cleanup_process(child_env("cleanup", connect_params(sim), spec, None, tmpdir), timeout=120)
        assert result == {"cleaned": cleaned, "remaining": 0}
        assert proxy_disk_count(content) == before + 1 - cleaned  # the server's view
    finally:  # the workaround releases what the bug left
        rescue = VixDiskLib(SimulatedVixDiskLib("7.0.3", proxy_vm=PROXY_VM))
        rescue.init_ex(write_config(tmp_path / "rescue.conf", {KEY_TMP_DIRECTORY: str(left)}))
        rescue.cleanup(connect_params(sim))
        rescue.exit()
    assert proxy_disk_count(content) == before
    assert session_folders(left, sim.host) == []
