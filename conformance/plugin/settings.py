"""Run settings from the command line: target, VDDK build, vSphere version, backup application, matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.resources import new_run_id
from conformance.sim.profiles import UnknownProfileError, get_profile
from conformance.versions import VddkBuild, VersionError

STASH_KEY = "vddk_settings"


class SettingsError(ValueError):
    """A bad option value: one line saying which and how to fix it."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("vddk-conformance")
    group.addoption(
        "--vddk-target", default="sim", help="'sim' (an embedded simulator per worker, the default) or a target file"
    )
    group.addoption("--vddk-build", default="7.0.3", help="VDDK build whose expectations apply (default 7.0.3)")
    group.addoption("--vsphere", default="7.0U3", help="vSphere version or VMC milestone (default 7.0U3)")
    group.addoption("--backup-app", default=None, help="module:Class of a partner backup application")
    group.addoption(
        "--sim-behaviour",
        default=None,
        help="make the simulated VDDK behave as this build (expectations still follow --vddk-build)",
    )
    group.addoption(
        "--matrix",
        default="default",
        choices=("default", "full"),
        help="default parametrization, or every build x vSphere x transport x datastore (nightly)",
    )
    group.addoption("--vddk-reports", default=None, help="write reports/<run-id>/ under this folder")
    group.addoption("--run-id", default=None, help="run id (default: time stamp plus random suffix)")
    group.addoption("--shard", default=None, help="K/N: run the K-th of N deterministic slices of the tests")


@dataclass(frozen=True)
class RunSettings:
    target: str
    build: str
    vsphere: str
    backup_app: str | None
    sim_behaviour: str
    matrix: str
    reports: Path | None
    run_id: str
    shard: tuple[int, int] | None

    @classmethod
    def from_config(cls, config: pytest.Config) -> RunSettings:
        option = config.option
        try:
            build = VddkBuild.parse(option.vddk_build).name
            behaviour = VddkBuild.parse(option.sim_behaviour).name if option.sim_behaviour else build
        except VersionError as exc:
            raise SettingsError(f"--vddk-build/--sim-behaviour: {exc}") from exc
        try:
            vsphere = get_profile(option.vsphere).name
        except UnknownProfileError as exc:
            raise SettingsError(f"--vsphere: {exc}") from exc
        target = option.vddk_target
        if target != "sim" and not Path(target).is_file():
            raise SettingsError(f"--vddk-target {target!r}: use 'sim' or the path of a target file")
        shard = None
        if option.shard:
            try:
                index, total = (int(p) for p in option.shard.split("/"))
            except ValueError:
                raise SettingsError(f"--shard {option.shard!r}: use K/N, e.g. 1/2") from None
            if not 1 <= index <= total:
                raise SettingsError(f"--shard {option.shard!r}: K must be between 1 and N")
            shard = (index, total)
        run_id = option.run_id or getattr(config, "workerinput", {}).get("vddk_run_id") or new_run_id()
        return cls(
            target=target,
            build=build,
            vsphere=vsphere,
            backup_app=option.backup_app,
            sim_behaviour=behaviour,
            matrix=option.matrix,
            reports=Path(option.vddk_reports) if option.vddk_reports else None,
            run_id=run_id,
            shard=shard,
        )
