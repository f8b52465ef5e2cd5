"""Run settings from the command line: target, VDDK build, vSphere version, backup application, matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.input_errors import InputError
from conformance.knowledge.versions import VddkBuild, VersionError, vsphere_release
from conformance.lab.resources import new_run_id, run_id_problem
from conformance.runs.shards import ShardError, parse_shard

STASH_KEY = "vddk_settings"


class SettingsError(InputError):
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
        "--sim-vsphere",
        default=None,
        help="make the simulated server present this vSphere version (expectations still follow --vsphere)",
    )
    group.addoption(
        "--release-note",
        default=None,
        help="comma-separated release-note ids: run only their tests (e.g. K1,R5)",
    )
    group.addoption(
        "--assume-fixed",
        default=None,
        help="comma-separated ids whose tests must pass whatever the catalog says (detection of items that "
        "every build has)",
    )
    group.addoption(
        "--sim-fixed",
        default=None,
        help="comma-separated known-issue ids the simulated VDDK plays fixed (e.g. K2,K4; detection baselines); "
        "expectations are unchanged",
    )
    group.addoption(
        "--sim-fault",
        default=None,
        help="comma-separated integrity faults the simulator plays (a lying server or library; names in "
        "conformance/data/sim_faults.toml); expectations are unchanged",
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
    sim_vsphere: str = ""
    release_notes: tuple[str, ...] = ()
    assume_fixed: tuple[str, ...] = ()
    sim_fixed: tuple[str, ...] = ()
    #: integrity faults the simulator plays (--sim-fault): a lying server or library, never expectations
    sim_faults: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: pytest.Config) -> RunSettings:
        option = config.option
        try:
            build = VddkBuild.parse(option.vddk_build).name
            behaviour = VddkBuild.parse(option.sim_behaviour).name if option.sim_behaviour else build
        except VersionError as exc:
            raise SettingsError(f"--vddk-build/--sim-behaviour: {exc}") from exc
        try:
            vsphere = vsphere_release(option.vsphere).name
            sim_vsphere = vsphere_release(option.sim_vsphere).name if option.sim_vsphere else vsphere
        except VersionError as exc:
            raise SettingsError(f"--vsphere/--sim-vsphere: {exc}") from exc
        if option.backup_app:  # import it now: a bad spec is a usage error before collection
            from conformance.sequences.app import BackupAppError, load_backup_app

            try:
                load_backup_app(option.backup_app)
            except BackupAppError as exc:
                raise SettingsError(str(exc)) from None
        release_notes, assume_fixed = (
            _ids(option.release_note, "--release-note"),
            _ids(option.assume_fixed, "--assume-fixed"),
        )
        sim_fixed = _fixable(_ids(option.sim_fixed, "--sim-fixed"))
        sim_faults = _faults(option.sim_fault)
        target = option.vddk_target
        if sim_faults and target != "sim":
            from conformance.vixdisklib.factory import native_faults_refusal

            raise SettingsError(native_faults_refusal(sim_faults))
        if target != "sim" and not Path(target).is_file():
            raise SettingsError(f"--vddk-target {target!r}: use 'sim' or the path of a target file")
        if target != "sim":
            from conformance.lab.target_file import TargetFileError, load_target_file

            try:  # a bad file or a missing password variable stops the run before collection, in one line
                spec = load_target_file(target)
                spec.password.read()  # remembered: the run scrubs its reports of it (conformance.lab.secrets)
                if spec.guest_password is not None:
                    spec.guest_password.read()
            except TargetFileError as exc:
                raise SettingsError(f"--vddk-target: {exc}") from None
            if sim_fixed and spec.backend != "simulated":
                from conformance.vixdisklib.factory import native_fixed_refusal

                raise SettingsError(native_fixed_refusal(sim_fixed))
            # expectations follow --vddk-build/--vsphere: they must be what the lab really runs
            if spec.build is not None and spec.build != build:
                raise SettingsError(
                    f"--vddk-build {build} differs from vddk.build {spec.build} in {target} "
                    f"(fix: pass --vddk-build {spec.build} or correct the file)"
                )
            if spec.vsphere is not None and spec.vsphere != vsphere:
                raise SettingsError(
                    f"--vsphere {vsphere} differs from server.vsphere {spec.vsphere} in {target} "
                    f"(fix: pass --vsphere {spec.vsphere} or correct the file)"
                )
        try:
            shard = parse_shard(option.shard) if option.shard else None
        except ShardError as exc:
            raise SettingsError(str(exc)) from None
        run_id = option.run_id or getattr(config, "workerinput", {}).get("vddk_run_id") or new_run_id()
        problem = run_id_problem(run_id)
        if problem:
            raise SettingsError(f"--run-id: {problem} (fix: pass another --run-id)")
        return cls(
            target=target,
            build=build,
            vsphere=vsphere,
            backup_app=option.backup_app,
            sim_behaviour=behaviour,
            matrix=option.matrix,
            sim_vsphere=sim_vsphere,
            release_notes=release_notes,
            assume_fixed=assume_fixed,
            sim_fixed=sim_fixed,
            sim_faults=sim_faults,
            reports=Path(option.vddk_reports) if option.vddk_reports else None,
            run_id=run_id,
            shard=shard,
        )


def _ids(text: str | None, option: str) -> tuple[str, ...]:
    """Release-note ids from a comma-separated option, each checked against the catalog."""
    if not text:
        return ()
    from conformance.knowledge.catalog import load_catalog

    known = set(load_catalog().ids())
    ids = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise SettingsError(f"{option}: unknown release-note id(s) {', '.join(unknown)}: use ids like F1, C2, R5, K1")
    return ids


def _faults(text: str | None) -> tuple[str, ...]:
    """--sim-fault names, each a fault of conformance/data/sim_faults.toml."""
    if not text:
        return ()
    from conformance.knowledge.sim_faults import SimFaultError, check_faults

    try:
        return check_faults(text.split(","))
    except SimFaultError as exc:
        raise SettingsError(f"--sim-fault: {exc}") from None


def _fixable(ids: tuple[str, ...]) -> tuple[str, ...]:
    """--sim-fixed ids, each one a known issue the simulated library has a switch for (vddk_builds.toml)."""
    from conformance.knowledge.build_facts import unfixable

    problem = unfixable(ids)
    if problem:
        raise SettingsError(f"--sim-fixed: {problem}")
    return tuple(dict.fromkeys(ids))


#: the run's settings, in the pytest config's stash (read by every part of the plugin)
SETTINGS = pytest.StashKey[RunSettings]()
