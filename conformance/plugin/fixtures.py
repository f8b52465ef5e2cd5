"""Fixtures the suites share: the target, a vSphere session, the VixDiskLib facade, sequences, fresh VMs.

Session fixtures live once per xdist worker (each worker has its own embedded simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.plugin.settings import RunSettings
from conformance.resources import ResourceTracker
from conformance.sequences.app import BackupAppError, BackupApplication, load_backup_app
from conformance.sequences.context import SequenceContext
from conformance.targets import CREATE_VMS, FAULT_INJECTION, GUEST_OPERATIONS, Target, simulator_target
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.factory import make_library
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession
from conformance.vsphere.tasks import wait_for_task

__all__ = [
    "backup_app",
    "controls",
    "fresh_vm",
    "guest",
    "require",
    "resources",
    "sequence",
    "vddk_config_file",
    "vddk_labels",
    "vddk_settings",
    "vddk_target",
    "vddk_tmp_directory",
    "vixdisklib",
    "vixdisklib_factory",
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
    if vddk_settings.target != "sim":
        pytest.exit(f"--vddk-target {vddk_settings.target}: target files are not supported yet; use 'sim'", 2)
    from conformance.sim.instance import Simulator

    with Simulator(vsphere=vddk_settings.vsphere) as simulator:
        yield simulator_target(simulator)


@pytest.fixture(scope="session")
def vsphere(vddk_target: Target) -> Iterator[VsphereSession]:
    session = VsphereSession(vddk_target.endpoint, vddk_target.user, vddk_target.password, vddk_target.datacenter)
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


def _library(settings: RunSettings, target: Target, proxy_vm: str | None = None) -> VixDiskLib:
    return make_library(
        settings.sim_behaviour, proxy_vm=proxy_vm or target.default_proxy, physical_proxy=target.physical_proxy
    )


@pytest.fixture(scope="session")
def vixdisklib(vddk_settings: RunSettings, vddk_target: Target, vddk_config_file: Path) -> Iterator[VixDiskLib]:
    lib = _library(vddk_settings, vddk_target)
    lib.init_ex(vddk_config_file)
    yield lib
    lib.exit()


@pytest.fixture
def vixdisklib_factory(
    vddk_settings: RunSettings, vddk_target: Target, tmp_path: Path
) -> Iterator[Callable[..., VixDiskLib]]:
    """A library initialised with its own InitEx configuration (tests of configuration keys)."""
    made: list[VixDiskLib] = []

    def make(config: dict[str, str | int] | None = None, proxy_vm: str | None = None) -> VixDiskLib:
        values = {"tmpDirectory": str(tmp_path / f"vddk-tmp-{len(made)}"), **(config or {})}
        path = tmp_path / f"vddk-{len(made)}.conf"
        path.write_text(render_config(values))
        lib = _library(vddk_settings, vddk_target, proxy_vm)
        lib.init_ex(path)
        made.append(lib)
        return lib

    yield make
    for lib in made:
        lib.exit()


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
) -> SequenceContext:
    return SequenceContext(
        target=vddk_target,
        vsphere=vsphere,
        lib=vixdisklib,
        resources=resources,
        repository=tmp_path / "repository",
        tmp_directory=vddk_tmp_directory,
        proxy_vm=vddk_target.default_proxy,
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
        from pyVmomi import vim

        source = vsphere.vm(source_name)
        name = resources.name(f"vm-{datastore_type}")
        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(datastore=vsphere.datastore(datastore)), powerOn=False)
        vm = wait_for_task(source.CloneVM_Task(source.parent, name, spec), f"clone {source_name} to {name}")
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
        from conformance.catalog import load_catalog

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
