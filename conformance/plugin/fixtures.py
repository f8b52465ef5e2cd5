"""Fixtures the suites share: the target, a vSphere session, the VixDiskLib facade, sequences, fresh VMs.

Session fixtures live once per xdist worker (each worker has its own embedded simulator). The target is the
embedded simulator ('sim') or a target file; everything after `vddk_target` is the same code path for both.
The hook implementations at the end (exported like the fixtures) stop a run cleanly on SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.exit_codes import USAGE
from conformance.lab.resources import (
    ResourceTracker,
    deferred_stop,
    install_stop_handlers,
    stop_requested,
    worker_id,
)
from conformance.lab.targets import (
    CREATE_VMS,
    FAULT_INJECTION,
    GUEST_OPERATIONS,
    LIBRARY_BUILDS,
    LIBRARY_SESSIONS,
    PROXY_PLACEMENT,
    Target,
    file_target,
    simulator_target,
)
from conformance.plugin.settings import RunSettings
from conformance.sequences.app import BackupAppError, BackupApplication, load_backup_app
from conformance.sequences.context import SequenceContext
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.factory import LibrarySpec
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.locks import VmLocks
from conformance.vsphere.safety import SafetyGuard
from conformance.vsphere.session import VsphereSession

__all__ = [
    "backup_app",
    "controls",
    "fresh_vm",
    "guest",
    "pytest_runtest_protocol",
    "pytest_runtest_teardown",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "require",
    "resources",
    "sequence",
    "vddk_config_file",
    "vddk_guard",
    "vddk_labels",
    "vddk_locks",
    "vddk_session_library",
    "vddk_settings",
    "vddk_target",
    "vddk_tmp_directory",
    "vixdisklib",
    "vixdisklib_factory",
    "vixdisklib_spec",
    "vsphere",
]


def require(target: Target, *capabilities: str) -> None:
    """Skip (with the target's name) when the target does not declare a capability."""
    missing = target.missing(*capabilities)
    if missing:
        pytest.skip(f"target {target.name} does not offer {', '.join(missing)}")


@pytest.fixture(scope="session")
def vddk_settings(pytestconfig: pytest.Config) -> RunSettings:
    from conformance.plugin.reporting import SETTINGS

    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def vddk_target(vddk_settings: RunSettings) -> Iterator[Target]:
    """The embedded simulator ('sim') or the target a target file describes (bad file: one line, exit 2)."""
    if vddk_settings.target != "sim":
        from conformance.lab.target_file import TargetFileError

        try:
            target = file_target(vddk_settings.target)  # checked at configure time; a variable may vanish since
        except TargetFileError as exc:
            pytest.exit(f"--vddk-target: {exc}", USAGE)
        _check_server_release(vddk_settings.vsphere, target)
        yield target
        return
    from conformance.sim.instance import Simulator

    with Simulator(
        vsphere=vddk_settings.sim_vsphere or vddk_settings.vsphere, sim_faults=vddk_settings.sim_faults
    ) as simulator:
        yield simulator_target(
            simulator, vddk_settings.sim_behaviour, backend=vddk_settings.backend, libdir=vddk_settings.libdir
        )


def _check_server_release(expected: str, target: Target) -> None:
    """Expectations follow --vsphere: a server of another release (its own report) stops the run in one line."""
    from conformance.knowledge.versions import VsphereVersion

    if VsphereVersion.parse(expected).release != VsphereVersion.parse(target.vsphere).release:
        pytest.exit(
            f"--vsphere {expected} differs from what {target.name} reports, {target.vsphere} "
            f"(fix: pass --vsphere {target.vsphere})",
            USAGE,
        )


@pytest.fixture(scope="session")
def vddk_guard(vddk_target: Target) -> SafetyGuard:
    """The run's safety rail: its allow-listed VMs plus what it creates (shared by every test of the worker)."""
    return SafetyGuard(vddk_target.name, vddk_target.allow_vms)


@pytest.fixture(scope="session")
def vddk_locks(vddk_target: Target, vddk_settings: RunSettings) -> VmLocks:
    """Cross-process locks of the target's VMs (workers and concurrent runs on one lab share them)."""
    holder = f"run {vddk_settings.run_id} worker {worker_id()} pid {os.getpid()}"
    return VmLocks(vddk_target.lock_key, vddk_target.lock_dir, holder=holder)


@pytest.fixture(scope="session")
def vsphere(
    vddk_target: Target, vddk_guard: SafetyGuard, vddk_locks: VmLocks, vddk_settings: RunSettings
) -> Iterator[VsphereSession]:
    from conformance.vsphere.connection import PinMismatchError, VsphereConnectError

    try:
        session = VsphereSession(
            vddk_target.endpoint,
            vddk_target.user,
            vddk_target.password,
            vddk_target.datacenter,
            guard=vddk_guard,
            locks=vddk_locks,
            run_id=vddk_settings.run_id,
        )
    except (PinMismatchError, VsphereConnectError) as exc:
        pytest.exit(f"target {vddk_target.name}: {exc}", USAGE)
    yield session
    session.close()


@pytest.fixture(scope="session")
def vddk_tmp_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vddk-tmp")


@pytest.fixture(scope="session")
def vddk_config_file(vddk_tmp_directory: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vddk-config") / "vddk.conf"
    path.write_text(render_config({"tmpDirectory": str(vddk_tmp_directory)}))
    return path


def library_spec(
    settings: RunSettings, target: Target, proxy_vm: str | None = None, build: str | None = None
) -> LibrarySpec:
    """The target's backend (the simulated library, or VMware's from the target file's libdir) in `proxy_vm`
    (default: the target's own proxy). A library in another proxy VM needs PROXY_PLACEMENT: without it the test
    skips naming it, rather than running on the harness machine and passing for a proxy it never ran in. `build`
    (another build than the run's) needs LIBRARY_BUILDS; callers check it."""
    if target.placement_missing(proxy_vm):
        pytest.skip(
            f"target {target.name} does not offer {PROXY_PLACEMENT}: the library runs in "
            f"{target.default_proxy or 'no proxy VM'}, not in {proxy_vm}"
        )
    return LibrarySpec(
        build=build or settings.sim_behaviour,
        backend=target.backend,
        libdir=target.libdir,
        proxy_vm=proxy_vm or target.default_proxy,
        physical_proxy=target.physical_proxy,
        fixed=settings.sim_fixed,
        sim_faults=settings.sim_faults,
    )


@pytest.fixture
def vixdisklib_spec(vddk_settings: RunSettings, vddk_target: Target) -> Callable[..., LibrarySpec]:
    """How the fixtures build a library, for a helper process to build the same one (K2, R4):
    `vixdisklib_spec(proxy_vm=None, build=None)`, with the checks of `vixdisklib_factory`."""

    def spec(proxy_vm: str | None = None, build: str | None = None) -> LibrarySpec:
        if build is not None:
            require(vddk_target, LIBRARY_BUILDS)
        return library_spec(vddk_settings, vddk_target, proxy_vm, build)

    return spec


class SessionLibrary:
    """The worker's own library (what `vixdisklib` gives every test): initialised at first use and kept for the
    session, so the run pays one InitEx per process.

    On a target without LIBRARY_SESSIONS (VMware's library, and the simulated C library that behaves like it, take
    one InitEx per process until Exit) a test that builds a library of its own (`vixdisklib_factory`: another
    InitEx configuration, proxy VM or build) needs the process to itself. Such a test `yield_process()`es: the
    session's library is ended (Exit) and the next test that asks for `vixdisklib` gets a newly initialised one,
    as a product that needs another InitEx configuration would do. A test that holds both at once cannot run
    there; the factory skips it naming LIBRARY_SESSIONS (no test of the suites does: the ones that ask for the
    sequence context only to swap in the factory's library never call the session's)."""

    def __init__(self, make: Callable[[], VixDiskLib], config_file: Path) -> None:
        self._make = make
        self._config_file = config_file
        self.current: VixDiskLib | None = None
        #: every library this session initialised, oldest first (each has its own call trace)
        self.made: list[VixDiskLib] = []

    def get(self) -> VixDiskLib:
        """The initialised session library (initialised now if the last one was ended or there was none)."""
        from conformance.vixdisklib.native.library import LibraryBuildMismatchError

        if self.current is None:
            lib = self._make()
            try:
                lib.init_ex(self._config_file)
            except LibraryBuildMismatchError as exc:  # expectations would be another build's: refuse the run
                pytest.exit(f"VDDK library: {exc}", USAGE)
            self.current = lib
            self.made.append(lib)
        return self.current

    def yield_process(self) -> None:
        """End the session library (Exit) if it is initialised: a test's own library takes the process."""
        if self.current is not None:
            lib, self.current = self.current, None
            lib.exit()

    def close(self) -> None:
        self.yield_process()

    def write_traces(self, run_dir: Path, stem: str) -> None:
        """Each library's call trace (arguments redacted): `<stem>.json`, then `<stem>-2.json`, ... for the
        libraries that followed an Exit."""
        for number, lib in enumerate(self.made, start=1):
            lib.recorder.write(run_dir / (f"{stem}.json" if number == 1 else f"{stem}-{number}.json"))


@pytest.fixture(scope="session")
def vddk_session_library(
    vddk_settings: RunSettings, vddk_target: Target, vddk_config_file: Path
) -> Iterator[SessionLibrary]:
    """The worker's SessionLibrary (tests ask for `vixdisklib`; the factory asks for this to take the process)."""
    session = SessionLibrary(lambda: library_spec(vddk_settings, vddk_target).make(), vddk_config_file)
    yield session
    session.close()
    if vddk_settings.reports is not None and session.made:  # the call traces next to the other reports
        run_dir = vddk_settings.reports / vddk_settings.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        # named by run and worker: the shards of a split run (each with its own run id) merge without collision
        session.write_traces(run_dir, f"calls-{vddk_settings.run_id}-{worker_id()}")


@pytest.fixture
def vixdisklib(vddk_session_library: SessionLibrary) -> VixDiskLib:
    """The worker's initialised library (the same one test after test, unless a test needed the process)."""
    return vddk_session_library.get()


@pytest.fixture
def vixdisklib_factory(
    vddk_settings: RunSettings,
    vddk_target: Target,
    vddk_session_library: SessionLibrary,
    tmp_path: Path,
    resources: ResourceTracker,
) -> Callable[..., VixDiskLib]:
    """A library initialised with its own InitEx configuration (tests of configuration keys), in `proxy_vm`, of
    another `build` when the target offers LIBRARY_BUILDS. Its Exit is a resource of the test's tracker, so
    connections and snapshots made with it are undone first (LIFO).

    Without LIBRARY_SESSIONS (one InitEx per process) the worker's session library is ended first (the next test
    that asks for it gets a new one: `SessionLibrary`), and a second library while this test's first one is
    still initialised skips the test naming the capability."""
    made: list[VixDiskLib] = []

    def make(
        config: dict[str, str | int] | None = None, proxy_vm: str | None = None, build: str | None = None
    ) -> VixDiskLib:
        if build is not None:
            require(vddk_target, LIBRARY_BUILDS)
        spec = library_spec(vddk_settings, vddk_target, proxy_vm, build)
        if not vddk_target.supports(LIBRARY_SESSIONS):
            if any(lib.initialised for lib in made):
                pytest.skip(
                    f"target {vddk_target.name} does not offer {LIBRARY_SESSIONS}: this test holds two "
                    "initialised libraries at once, and its library takes one InitEx per process"
                )
            vddk_session_library.yield_process()
        values = {"tmpDirectory": str(tmp_path / f"vddk-tmp-{len(made)}"), **(config or {})}
        path = tmp_path / f"vddk-{len(made)}.conf"
        path.write_text(render_config(values))
        lib = spec.make()
        lib.init_ex(path)
        resources.add("library", f"VixDiskLib InitEx {path.name}", lib.exit)
        made.append(lib)
        return lib

    return make


@pytest.fixture(scope="session")
def backup_app(vddk_settings: RunSettings) -> BackupApplication:
    try:
        return load_backup_app(vddk_settings.backup_app)
    except BackupAppError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture
def resources(vddk_settings: RunSettings) -> Iterator[ResourceTracker]:
    tracker = ResourceTracker(vddk_settings.run_id)
    yield tracker
    tracker.teardown()


@pytest.fixture
def sequence(
    vddk_target: Target,
    vsphere: VsphereSession,
    vixdisklib: VixDiskLib,
    resources: ResourceTracker,
    tmp_path: Path,
    vddk_tmp_directory: Path,
    vddk_settings: RunSettings,
) -> SequenceContext:
    reports = vddk_settings.reports
    return SequenceContext(
        target=vddk_target,
        vsphere=vsphere,
        lib=vixdisklib,
        resources=resources,
        repository=tmp_path / "repository",
        tmp_directory=vddk_tmp_directory,
        proxy_vm=vddk_target.default_proxy,
        trace_dir=reports / vddk_settings.run_id / "product-traces" if reports is not None else None,
    )


@pytest.fixture
def fresh_vm(vddk_target: Target, vsphere: VsphereSession, resources: ResourceTracker) -> Callable[..., str]:
    """A run-named full clone of the target's VM on a datastore type, with an empty data disk, powered on."""
    require(vddk_target, CREATE_VMS, GUEST_OPERATIONS)

    def make(datastore_type: str = "VMFS", data_disk: int = 64 * 2**20, thin: bool = True) -> str:
        source_name = vddk_target.target_vms.get(datastore_type)
        datastore = vddk_target.datastore_of_type(datastore_type)
        if source_name is None or datastore is None:
            pytest.skip(f"target {vddk_target.name} has no VM on a {datastore_type} datastore")
        name = resources.name(f"vm-{datastore_type}")
        vm = vsphere.clone_vm(vsphere.vm(source_name), name, datastore)
        resources.add("vm", name, lambda: vsphere.destroy_vm(vm))
        vsphere.add_disk(vm, data_disk, thin)
        vsphere.power_on(vm)
        return name

    return make


@pytest.fixture
def guest(vddk_target: Target, vsphere: VsphereSession) -> Callable[[str], GuestWorkload]:
    require(vddk_target, GUEST_OPERATIONS)
    return lambda vm_name: GuestWorkload(
        vsphere.content, vsphere.vm(vm_name), vddk_target.guest, vddk_target.ssl_context()
    )


@pytest.fixture
def controls(vddk_target: Target) -> Iterator[Any]:
    """Fault injection on the target (latency, free space, maintenance timing); reset after the test."""
    require(vddk_target, FAULT_INJECTION)
    yield vddk_target.controls
    vddk_target.controls.reset()


_TARGET_REPORTED: list[bool] = []


@pytest.fixture(autouse=True)
def vddk_labels(request: pytest.FixtureRequest) -> None:
    """Allure labels from the release-note marker: epic = section, feature = id and title, a link to the item."""
    marker = request.node.get_closest_marker("release_note")
    if marker is not None and marker.args:
        from conformance.knowledge.catalog import load_catalog

        try:
            import allure
        except ImportError:  # pragma: no cover - allure-pytest is a dependency
            return
        item = load_catalog().get(str(marker.args[0]))
        allure.dynamic.epic(item.section)
        allure.dynamic.feature(f"{item.id} {item.title}")
        allure.dynamic.link(item.anchor, name=item.link_text)
        if marker.kwargs.get("workaround"):
            allure.dynamic.tag(f"workaround:{marker.kwargs['workaround']}")
    story = request.node.get_closest_marker("sequence")
    if story is not None and story.args:
        import allure

        allure.dynamic.story(str(story.args[0]))
    if not _TARGET_REPORTED and "vddk_target" in request.fixturenames:
        target = request.getfixturevalue("vddk_target")
        request.node.user_properties.append(("target", target.describe()))
        _TARGET_REPORTED.append(True)


# --- hooks (exported with the fixtures): SIGTERM and Ctrl-C stop the run after its teardowns ---


def pytest_sessionstart(session: pytest.Session) -> None:
    """SIGTERM behaves like Ctrl-C, and neither interrupts a clean-up (see conformance.lab.resources); an xdist
    controller holds nothing, so it stops at once (its workers stop at their next safe point)."""
    install_stop_handlers(immediate=session.config.pluginmanager.hasplugin("dsession"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    try:
        return (yield)
    except KeyboardInterrupt:
        # Interrupted in setup or call, the item has no report; pytest's own tmp_path teardown (run later, at
        # session finish) then fails with a KeyError on its report stash. Give it the empty record it expects.
        from _pytest import tmpdir

        key = getattr(tmpdir, "tmppath_result_key", None)
        if key is not None:
            item.stash.setdefault(key, {})
        raise
    finally:
        reason = stop_requested()
        if reason:
            item.session.shouldstop = f"stopped by {reason}; teardowns ran"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    with deferred_stop(raise_after=False):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None, object, object]:
    with deferred_stop(raise_after=False):  # session fixtures (simulator, sessions) are torn down here
        return (yield)
