"""Fixtures for the VixDiskLib facade and the simulated library: a simulator per module, a pinned pyVmomi
content, connect parameters, an InitEx configuration with tmpDirectory, and a library factory.

Test modules that need something else (their own simulator, their own factory) define a fixture of the
same name; it takes precedence over these.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import ConnectParams, UidCredentials
from conformance.vsphere.connection import Endpoint, connect, disconnect
from conformance.vsphere.guest import GuestCredentials, GuestWorkload
from tests.sim.conftest import find

PROXY_VM = "proxy-rhel83"
PHYSICAL_PROXY = "san-proxy-01"
MakeLib = Callable[..., VixDiskLib]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as instance:
        yield instance


@pytest.fixture(scope="module")
def content(sim: Simulator) -> Iterator[Any]:
    """RetrieveContent() of a pyVmomi connection pinned to the simulator's thumbprint."""
    service_instance = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
    yield service_instance.RetrieveContent()
    disconnect(service_instance)


@pytest.fixture(scope="module")
def server_params(sim: Simulator) -> ConnectParams:
    """Connect parameters for the simulator without a VM (what Cleanup takes)."""
    return connect_params(sim)


@pytest.fixture(scope="module")
def vm_params(server_params: ConnectParams, content: Any) -> Callable[[str], ConnectParams]:
    """ConnectParams for a VM by name (vmxSpec `moref=vm-N`)."""
    return lambda name: server_params.with_vm(find(content, vim.VirtualMachine, name)._moId)


@pytest.fixture
def vddk_config(tmp_path: Path) -> Path:
    """An InitEx configuration file with tmpDirectory set (to a directory of this test)."""
    return write_config(tmp_path / "vddk.conf", {"tmpDirectory": str(tmp_path / "vddk-tmp")})


@pytest.fixture
def make_lib(vddk_config: Path) -> Iterator[MakeLib]:
    """`make_lib(build="7.0.3", config=vddk_config, init=True)`: a VixDiskLib over the simulated library of
    `build` (proxy VM proxy-rhel83, physical proxy san-proxy-01); every one made gets Exit at teardown."""
    made: list[VixDiskLib] = []

    def make(build: str = "7.0.3", config: Path | None = vddk_config, init: bool = True) -> VixDiskLib:
        lib = VixDiskLib(SimulatedVixDiskLib(build, proxy_vm=PROXY_VM, physical_proxy=PHYSICAL_PROXY))
        made.append(lib)
        if init:
            lib.init_ex(config)
        return lib

    yield make
    for lib in made:
        lib.exit()


# --- helpers (imported by the test modules) ---


def connect_params(sim: Simulator) -> ConnectParams:
    """ConnectParams for a simulator, without a VM (add one with `.with_vm(moref)`)."""
    return ConnectParams(
        server_name=sim.host,
        port=sim.port,
        credentials=UidCredentials(sim.user, sim.password),
        thumbprint=sim.thumbprint,
    )


def write_config(path: Path, values: dict[str, str | int]) -> Path:
    path.write_text(render_config(values))
    return path


def wait(task: Any) -> Any:
    WaitForTask(task)
    return task.info.result


def disks_of(owner: Any) -> list[Any]:
    """The VirtualDisks of a VM or a snapshot, in controller and unit order (/dev/sda first)."""
    found = [d for d in owner.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    return sorted(found, key=lambda d: (d.controllerKey, d.unitNumber))


def disk_path(owner: Any) -> str:
    """`[datastore] dir/disk.vmdk` of the first disk of a VM or snapshot."""
    return str(disks_of(owner)[0].backing.fileName)


def snapshot(vm: Any, name: str) -> Any:
    return wait(vm.CreateSnapshot_Task(name, None, False, False))


def proxy_disk_count(content: Any) -> int:
    return len(disks_of(find(content, vim.VirtualMachine, PROXY_VM)))


def guest(sim: Simulator, content: Any, vm: Any) -> GuestWorkload:
    """Guest operations (dd) in a simulated VM, TLS verified against the simulator's certificate."""
    context = ssl.create_default_context(cafile=str(sim.cert_file))
    return GuestWorkload(content, vm, GuestCredentials("root", "guest-password"), context)
