"""Run settings from the command line: target, VDDK build, vSphere version, backup application, matrix."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.input_errors import InputError
from conformance.knowledge.versions import VddkBuild, VersionError, vsphere_release
from conformance.lab.resources import new_run_id, run_id_problem
from conformance.runs.shards import ShardError, parse_shard
from conformance.vixdisklib.factory import BACKENDS
from conformance.vixdisklib.shim.kit import simulated_kit

STASH_KEY = "vddk_settings"


class SettingsError(InputError):
    """A bad option value: one line saying which and how to fix it."""


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("vddk-conformance")
    group.addoption(
        "--vddk-target", default="sim", help="'sim' (an embedded simulator per worker, the default) or a target file"
    )
    group.addoption("--vddk-build", default="7.0.3", help="VDDK build whose expectations apply (default 7.0.3)")
    group.addoption(
        "--vddk-backend",
        default=None,
        choices=BACKENDS,
        help="VixDiskLib backend with the embedded simulator: 'simulated' (in-process, the default) or 'native' "
        "(ctypes over a libvixDiskLib.so: the simulated C library, built for the run, or --vddk-libdir's)",
    )
    group.addoption(
        "--vddk-libdir",
        default=None,
        help="with --vddk-backend native: the kit folder holding libvixDiskLib.so.N (default: the simulated C "
        "library, built once per source version)",
    )
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
    #: the VixDiskLib backend with the embedded simulator (--vddk-backend; a target file names its own)
    backend: str = "simulated"
    #: the native backend's kit folder: --vddk-libdir, or the simulated C library built for the run (the
    #: controller builds it before workers start: `with_built_kit`); None until then, and for the simulated backend
    libdir: Path | None = None

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
        backend, libdir = _backend(option, target, sim_fixed, sim_faults)
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
            if sim_fixed and spec.backend != "simulated" and not simulated_kit(spec.libdir):
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
            backend=backend,
            libdir=libdir,
            reports=Path(option.vddk_reports) if option.vddk_reports else None,
            run_id=run_id,
            shard=shard,
        )

    @property
    def builds_kit(self) -> bool:
        """The run's library is the simulated C library, which the run builds itself (native backend against the
        embedded simulator without --vddk-libdir)."""
        return self.target == "sim" and self.backend == "native" and self.libdir is None

    def with_built_kit(self, libdir: Path | str) -> RunSettings:
        """These settings with the simulated C library's folder the controller built (or a worker was given)."""
        return dataclasses.replace(self, libdir=Path(libdir))


def _backend(
    option: Any, target: str, sim_fixed: tuple[str, ...], sim_faults: tuple[str, ...]
) -> tuple[str, Path | None]:
    """--vddk-backend and --vddk-libdir, checked: (backend, libdir or None). Combinations that make no sense
    are one line each: a target file names its own backend and libdir ([vddk]); a libdir is for the native
    backend; --sim-fixed/--sim-fault need a library that plays them (the simulated one, in-process or in C)."""
    backend, libdir_text = option.vddk_backend, option.vddk_libdir
    if target != "sim":
        if libdir_text:
            raise SettingsError(
                f"--vddk-libdir with --vddk-target {target}: the target file's [vddk] libdir names the kit "
                "(fix: drop --vddk-libdir or edit the file)"
            )
        if backend:
            from conformance.lab.target_file import TargetFileError, load_target_file

            try:
                declared = load_target_file(target).backend
            except TargetFileError:
                declared = None  # the file's own problem is reported below, in its one line
            if declared is not None and declared != backend:
                raise SettingsError(
                    f"--vddk-backend {backend} with --vddk-target {target}, whose [vddk] backend is {declared} "
                    "(fix: drop --vddk-backend or edit the file)"
                )
        return "simulated", None  # unused: the target file decides
    backend = backend or "simulated"
    if libdir_text and backend != "native":
        raise SettingsError(
            f"--vddk-libdir {libdir_text} without --vddk-backend native: only the ctypes backend loads a kit "
            "(fix: add --vddk-backend native or drop --vddk-libdir)"
        )
    libdir = Path(libdir_text) if libdir_text else None
    if libdir is not None and not libdir.is_dir():
        raise SettingsError(f"--vddk-libdir {libdir}: no such folder (fix: give the VDDK kit's folder)")
    if backend == "native" and libdir is not None and not simulated_kit(libdir):
        from conformance.vixdisklib.factory import native_faults_refusal, native_fixed_refusal

        if sim_fixed:  # VMware's library (or another kit) cannot be told to play a known issue fixed
            raise SettingsError(native_fixed_refusal(sim_fixed))
        if sim_faults:
            raise SettingsError(native_faults_refusal(sim_faults))
    return backend, libdir


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
