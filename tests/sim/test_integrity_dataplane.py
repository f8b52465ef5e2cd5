"""The integrity faults the simulated server plays (`--sim-fault`), each shown playing at the simulator's level and
absent without it: the data plane answers, acknowledges and reports success, with the wrong bytes or state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.dataplane.client import DataPlaneClient
from conformance.sim.instance import Simulator
from conformance.vsphere.connection import Endpoint, connect, disconnect
from tests.sim.conftest import find, wait
from tests.sim.test_dataplane import cookie, disk_path, disks

KiB, MiB, GiB = 1024, 1024**2, 1024**3
BLOCK = bytes(range(256)) * 256  # 64 KiB


class World:
    """A simulator playing some faults, a pyVmomi content and data-plane clients of it."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.si = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
        self.content = self.si.RetrieveContent()
        self.clients: list[DataPlaneClient] = []

    def client(self, transport: str) -> DataPlaneClient:
        tls = transport == "nbdssl"
        info = self.sim.connection_info()
        client = DataPlaneClient(
            self.sim.host, info["nbdssl_port" if tls else "nbd_port"], tls=tls, thumbprint=self.sim.thumbprint
        )
        self.clients.append(client)
        client.hello(cookie(self.si), transport)
        return client

    def vm(self, name: str = "target-vmfs") -> Any:
        return find(self.content, vim.VirtualMachine, name)

    def close(self) -> None:
        for client in self.clients:
            client.shutdown()
        disconnect(self.si)


@pytest.fixture
def world() -> Iterator[Callable[..., World]]:
    """world(*faults): a fresh simulator playing them (none: the baseline)."""
    made: list[tuple[Simulator, World]] = []

    def make(*faults: str) -> World:
        sim = Simulator(sim_faults=faults)
        sim.start()
        made.append((sim, World(sim)))
        return made[-1][1]

    yield make
    for sim, w in made:
        w.close()
        sim.stop()


def new_vm(w: World, capacity: int) -> Any:
    """A VM made by CreateVM_Task with one thin disk of `capacity` bytes (how a restore to a new VM starts)."""
    vm = w.vm()
    datastore = vm.datastore[0].name
    disk = vim.vm.device.VirtualDisk(
        key=-1,
        controllerKey=1000,
        unitNumber=0,
        capacityInBytes=capacity,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            diskMode="persistent", thinProvisioned=True, fileName=f"[{datastore}]"
        ),
    )
    spec = vim.vm.ConfigSpec(
        name=f"restored-{capacity}",
        guestId="otherGuest64",
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)],
    )
    folder = w.content.rootFolder.childEntity[0].vmFolder
    return wait(folder.CreateVM_Task(spec, vm.resourcePool))


@pytest.mark.parametrize("fault", [False, True])
def test_stale_read_range_zeroes_24_mib_over_nbd_only(world: Callable[..., World], fault: bool) -> None:
    w = world(*(["stale-read-range"] if fault else []))
    vm = w.vm()
    writer = w.client("nbdssl")
    handle = writer.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    for offset in (0, 24 * MiB + 128 * KiB):
        writer.write(handle, offset, BLOCK)
    writer.close(handle)
    nbd, nbdssl = w.client("nbd"), w.client("nbdssl")
    plain = nbd.open(vm=vm._moId, path=disk_path(vm))["handle"]
    tls = nbdssl.open(vm=vm._moId, path=disk_path(vm))["handle"]
    assert nbd.read(plain, 0, len(BLOCK)) == BLOCK  # the first 8 MiB stay right
    assert nbdssl.read(tls, 24 * MiB + 128 * KiB, len(BLOCK)) == BLOCK
    stale = nbd.read(plain, 24 * MiB, 2 * MiB)
    assert (stale[128 * KiB : 192 * KiB] == bytes(len(BLOCK))) is fault
    assert stale[MiB:] == bytes(MiB)


@pytest.mark.parametrize("fault", [False, True])
def test_write_wrap_32bit_lands_writes_above_2_gib_lower(world: Callable[..., World], fault: bool) -> None:
    w = world(*(["write-wrap-32bit"] if fault else []))
    vm = new_vm(w, 4 * GiB)
    client = w.client("nbdssl")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    assert client.write(handle, 3 * GiB, BLOCK) == len(BLOCK)  # acknowledged either way
    assert client.write(handle, 2 * GiB - len(BLOCK), BLOCK) == len(BLOCK)  # below 2 GiB: right
    assert (client.read(handle, 3 * GiB, len(BLOCK)) == BLOCK) is not fault
    assert (client.read(handle, GiB, len(BLOCK)) == BLOCK) is fault
    assert client.read(handle, 2 * GiB - len(BLOCK), len(BLOCK)) == BLOCK


@pytest.mark.parametrize("fault", [False, True])
def test_snapshot_removal_keeps_the_delta_and_hides_it(world: Callable[..., World], fault: bool) -> None:
    w = world(*(["snapshot-remove-no-consolidate"] if fault else []))
    vm = w.vm()
    snapshot = wait(vm.CreateSnapshot_Task("backup", None, False, False))
    wait(snapshot.RemoveSnapshot_Task(False))
    assert vm.snapshot is None  # the snapshot left the tree either way
    assert vm.runtime.consolidationNeeded is False  # the lie: nothing to consolidate
    chain = disks(vm.config)[0].backing
    assert (chain.parent is not None) is fault  # the delta stays in the chain
    assert any("-000001" in f.name for f in vm.layoutEx.file) is fault


@pytest.mark.parametrize("fault", [False, True])
def test_a_created_disk_is_smaller_than_asked_and_drops_writes_past_its_end(
    world: Callable[..., World], fault: bool
) -> None:
    w = world(*(["restore-target-smaller"] if fault else []))
    vm = new_vm(w, 64 * MiB)
    assert disks(vm.config)[0].capacityInBytes == 64 * MiB - (MiB if fault else 0)  # the server's own view
    client = w.client("nbdssl")
    opened = client.open(vm=vm._moId, path=disk_path(vm), write=True)
    assert opened["capacity"] == 64 * MiB  # the data plane presents what was asked for
    handle = opened["handle"]
    assert client.write(handle, 64 * MiB - len(BLOCK), BLOCK) == len(BLOCK)  # acknowledged either way
    assert (client.read(handle, 64 * MiB - len(BLOCK), len(BLOCK)) == BLOCK) is not fault


@pytest.mark.parametrize("fault", [False, True])
def test_close_drops_the_last_acknowledged_write(world: Callable[..., World], fault: bool) -> None:
    w = world(*(["close-drops-last-write"] if fault else []))
    vm = w.vm()
    client = w.client("nbd")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    assert client.write(handle, MiB, BLOCK) == len(BLOCK)
    assert client.write(handle, 2 * MiB, BLOCK) == len(BLOCK)
    client.close(handle)
    again = client.open(vm=vm._moId, path=disk_path(vm))["handle"]
    assert client.read(again, MiB, len(BLOCK)) == BLOCK  # the next write put the held one on disk
    assert (client.read(again, 2 * MiB, len(BLOCK)) == BLOCK) is not fault
