"""What each VDDK build does, as documented (conformance/data/vddk_builds.toml): which InitEx keys it honours, which
error codes it returns, which release-note bugs it has. Knowledge, not simulation: the preflight judges a lab's
build with it, and the simulated VixDiskLib reads the same facts to play a build (never the other way round)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

from conformance.input_errors import InputError
from conformance.knowledge.versions import VddkBuild, all_builds


@dataclass(frozen=True)
class BuildBehaviour:
    build: str
    query_allocated_blocks: bool
    nfc_aio_keys: bool
    san_rejected_on_vsan_vvol: bool
    attach_marks_parent: bool
    disk_full_code: int
    maintenance_codes: bool
    releases_hotadd_during_emm: bool
    cleanup_orphan_session_dir: bool
    fcd_mount_after_hotadd: bool
    vvol_linked_clone_hotadd_bug: bool
    info_sector_sizes: bool
    windows_thread_local_storage: bool
    hotadd_opens_disk: bool
    hotadd_special_names_broken: bool
    phone_home_via_server: bool
    default_tmp_per_process: bool
    vsan_hotadd_needs_vsan_proxy: bool

    @property
    def library_major(self) -> int:
        return VddkBuild.parse(self.build).library_major


class BehaviourError(InputError):
    """The behaviour data file is inconsistent (a key no build defines, or an unknown switch)."""


@cache
def _raw() -> dict[str, Any]:
    return tomllib.loads(resources.files("conformance.data").joinpath("vddk_builds.toml").read_text())


def _switches() -> set[str]:
    return {f.name for f in fields(BuildBehaviour)} - {"build"}


@cache
def _table() -> dict[VddkBuild, dict[str, object]]:
    known = _switches()
    table: dict[VddkBuild, dict[str, object]] = {}
    for name, switches in _raw()["builds"].items():
        unknown = set(switches) - known
        if unknown:
            raise BehaviourError(f"vddk_builds.toml [{name}]: unknown switch(es) {sorted(unknown)}")
        table[VddkBuild.parse(name)] = switches
    return table


@cache
def behaviour_of(build: str) -> BuildBehaviour:
    """Switches of `build`: each one as set by the newest listed build not newer than it."""
    target = VddkBuild.parse(build)
    merged: dict[str, object] = {}
    for listed in sorted(_table()):
        if listed <= target:
            merged.update(_table()[listed])
    missing = {f.name for f in fields(BuildBehaviour)} - {"build"} - set(merged)
    if missing:
        raise BehaviourError(f"vddk_builds.toml: no value for {sorted(missing)} at or before build {target.name}")
    return BuildBehaviour(build=target.name, **merged)  # type: ignore[arg-type]


@cache
def known_issue_fixes() -> dict[str, dict[str, object]]:
    """Item id -> the switch values of a build with that known issue fixed (the [fixed] table).

    No real build has them; only the simulator plays them (``--sim-fixed``), so a detection baseline can run
    without a bug every build has. Checked here so a typo fails at load, not as a silently unchanged run.
    """
    known, example = _switches(), behaviour_of("7.0.3")
    fixes: dict[str, dict[str, object]] = {}
    for item, switches in _raw().get("fixed", {}).items():
        if not isinstance(switches, dict) or not switches:
            raise BehaviourError(f"vddk_builds.toml [fixed] {item}: expected {{ switch = value, ... }}")
        unknown = set(switches) - known
        if unknown:
            raise BehaviourError(f"vddk_builds.toml [fixed] {item}: unknown switch(es) {sorted(unknown)}")
        for name, value in switches.items():
            if type(value) is not type(getattr(example, name)):
                raise BehaviourError(f"vddk_builds.toml [fixed] {item}: {name} = {value!r} has the wrong type")
        fixes[item] = dict(switches)
    return fixes


def unfixable(ids: list[str] | tuple[str, ...]) -> str | None:
    """Why the simulator cannot play ``ids`` fixed (one clause naming the fixable ones), None when it can."""
    fixes = known_issue_fixes()
    without = [i for i in ids if i not in fixes]
    if not without:
        return None
    return f"{', '.join(without)} has no switch the simulator can play fixed (fixable: {', '.join(fixes)})"


def all_behaviours() -> list[BuildBehaviour]:
    return [behaviour_of(b.name) for b in all_builds()]
