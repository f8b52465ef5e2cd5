"""The simulator's data plane (its stand-in for NFC/HotAdd/SAN): sessions, transport rules, data and CBT.

Every control-plane step (snapshots, hot-add, relocation, maintenance mode, CBT) goes through pyVmomi;
disk data goes only through `DataPlaneClient`.
"""

from __future__ import annotations

import http.cookies
import socket
import struct
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.dataplane.client import DataPlaneClient, ThumbprintMismatch, discover
from conformance.sim.dataplane.protocol import DataPlaneError
from conformance.sim.instance import Simulator
from conformance.sim.inventory import InventorySpec
from conformance.vsphere.connection import Endpoint, disconnect
from conformance.vsphere.connection import connect as connect_vsphere
from tests.sim.conftest import find, wait

KiB, MiB = 1024, 1024 * 1024
PATTERN = bytes(range(256)) * 256  # 64 KiB


def cookie(si: Any) -> str:
    jar = http.cookies.SimpleCookie()
    jar.load(si._stub.cookie)
    return jar["vmware_soap_session"].value


def disks(config: Any) -> list[Any]:
    return [d for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def disk_path(vm: Any) -> str:
    return str(disks(vm.config)[0].backing.fileName)


def frozen_path(snapshot: Any) -> str:
    return str(disks(snapshot.config)[0].backing.fileName)


def hot_add(proxy: Any, file_name: str) -> None:
    device = vim.vm.device.VirtualDisk(
        key=-1,
        controllerKey=1000,
        unitNumber=-1,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=file_name, diskMode="independent_nonpersistent"),
    )
    wait(
        proxy.ReconfigVM_Task(
            vim.vm.ConfigSpec(deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=device)])
        )
    )


def kind_of(call: Callable[[], Any]) -> DataPlaneError:
    with pytest.raises(DataPlaneError) as info:
        call()
    return info.value


@pytest.fixture
def connect(sim: Simulator, si: Any) -> Iterator[Callable[..., DataPlaneClient]]:
    """connect(transport, **hello options) -> a client that said hello on the port the transport needs."""
    opened: list[DataPlaneClient] = []
    info = sim.connection_info()

    def make(transport: str = "nbd", tls: bool | None = None, **options: Any) -> DataPlaneClient:
        use_tls = transport == "nbdssl" if tls is None else tls
        port = info["nbdssl_port"] if use_tls else info["nbd_port"]
        client = DataPlaneClient(sim.host, port, tls=use_tls, thumbprint=sim.thumbprint)
        opened.append(client)
        client.hello(cookie(si), transport, **options)
        return client

    yield make
    for client in opened:
        client.shutdown()


def test_hello_needs_a_live_vsphere_session(sim: Simulator, si: Any) -> None:
    client = DataPlaneClient(sim.host, sim.connection_info()["nbd_port"], tls=False, thumbprint=None)
    try:
        assert kind_of(lambda: client.hello("not-a-session", "nbd")).kind == "auth"
        assert kind_of(lambda: client.info(1)).kind == "auth"  # nothing but hello/ping before a session
        client.ping()
        reply = client.hello(si._stub.cookie, "nbd", client={"product": "AcmeBackup", "version": "4.2"})
        assert reply["session"] and reply["host"].startswith("esx-")
        assert kind_of(lambda: client.hello(cookie(si), "nbd")).kind == "invalid"  # one session per connection
    finally:
        client.bye()
    seen = discover(sim.host, sim.port, cookie(si), sim.thumbprint)
    assert seen["nbd_port"] == sim.connection_info()["nbd_port"]
    assert {"product": "AcmeBackup", "version": "4.2"}.items() <= seen["clients"][-1].items()
    assert discover(sim.host, sim.port, si._stub.cookie, str(sim.cert_file))["nbdssl_port"] == seen["nbdssl_port"]
    assert kind_of(lambda: discover(sim.host, sim.port, "bogus", sim.thumbprint)).kind == "auth"  # HTTP 401


def test_nbd_and_nbdssl_must_use_their_own_ports(connect: Callable[..., DataPlaneClient]) -> None:
    assert kind_of(lambda: connect("nbd", tls=True)).kind == "invalid"
    assert kind_of(lambda: connect("nbdssl", tls=False)).kind == "invalid"
    assert kind_of(lambda: connect("file")).kind == "invalid"
    connect("nbd").ping()
    connect("nbdssl").ping()


def test_tls_pins_the_thumbprint(sim: Simulator) -> None:
    port = sim.connection_info()["nbdssl_port"]
    with pytest.raises(ThumbprintMismatch):
        DataPlaneClient(sim.host, port, tls=True, thumbprint="00:" * 19 + "00")
    with pytest.raises(ThumbprintMismatch):
        DataPlaneClient(sim.host, port, tls=True, thumbprint=None)
    assert sim.ctx is not None
    for pin in (sim.thumbprint.lower(), sim.ctx.certificate.sha256_thumbprint):
        DataPlaneClient(sim.host, port, tls=True, thumbprint=pin).shutdown()


def test_snapshot_read_sees_data_from_before_the_snapshot_only(
    connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    vm = vm_named("target-vmfs")
    client = connect("nbdssl")
    restore = client.open(vm=vm._moId, path=disk_path(vm), write=True)  # no snapshot: the current disk
    assert restore["num_links"] == 1 and restore["parent_hint"] is None and restore["adapter"] == "pvscsi"
    assert client.write(restore["handle"], 3 * MiB, PATTERN) == len(PATTERN)
    client.close(restore["handle"])
    snapshot = wait(vm.CreateSnapshot_Task("backup", None, False, False))
    current = client.open(vm=vm._moId, path=disk_path(vm), write=True)
    assert current["num_links"] == 2 and current["parent_hint"]
    client.write(current["handle"], 3 * MiB, b"\xee" * len(PATTERN))
    frozen = client.open(vm=vm._moId, snapshot=snapshot._moId, path=frozen_path(snapshot))
    assert frozen["capacity"] == 256 * MiB and frozen["uuid"] == current["uuid"]
    assert client.read(frozen["handle"], 3 * MiB, len(PATTERN)) == PATTERN
    assert client.read(current["handle"], 3 * MiB, len(PATTERN)) == b"\xee" * len(PATTERN)
    assert client.info(frozen["handle"])["num_links"] == 1
    # a snapshot's disk is read-only; the current disk is not a disk of the snapshot and vice versa
    assert (
        kind_of(lambda: client.open(vm=vm._moId, snapshot=snapshot._moId, path=frozen_path(snapshot), write=True)).kind
        == "read_only"
    )
    assert kind_of(lambda: client.open(vm=vm._moId, snapshot=snapshot._moId, path=disk_path(vm))).kind == "not_found"
    assert kind_of(lambda: client.open(vm=vm._moId, path=frozen_path(snapshot))).kind == "not_found"
    assert kind_of(lambda: client.open(vm="vm-999999", path=disk_path(vm))).kind == "not_found"
    assert kind_of(lambda: client.open(vm=vm._moId, path="[vmfs-01] nowhere/x.vmdk")).kind == "not_found"


def test_allocated_extents_are_chunk_aligned_and_clipped(
    connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    vm = vm_named("target-nfs")
    client = connect("nbd")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    client.write(handle, 3 * MiB + 100, b"x" * 4096)
    client.write(handle, 10 * MiB, b"y" * (2 * 64 * KiB))
    assert client.allocated(handle, 0, 256 * MiB, 64 * KiB) == [(3 * MiB, 64 * KiB), (10 * MiB, 128 * KiB)]
    assert client.allocated(handle, 0, 256 * MiB, MiB) == [(3 * MiB, MiB), (10 * MiB, MiB)]
    assert client.allocated(handle, 10 * MiB + 64 * KiB, MiB, 64 * KiB) == [(10 * MiB + 64 * KiB, 64 * KiB)]
    assert client.allocated(handle, 4 * MiB, MiB, MiB) == []
    assert kind_of(lambda: client.allocated(handle, 0, MiB, 1000)).kind == "invalid"


def test_out_of_range_and_bad_requests(connect: Callable[..., DataPlaneClient], vm_named: Any) -> None:
    vm = vm_named("target-nfs")
    client = connect("nbd")
    opened = client.open(vm=vm._moId, path=disk_path(vm), write=True)
    handle, capacity = opened["handle"], opened["capacity"]
    assert client.read(handle, capacity - 512, 512) == bytes(512)
    error = kind_of(lambda: client.read(handle, capacity - 512, 1024))
    assert error.kind == "out_of_range" and error.extra["capacity"] == capacity
    assert kind_of(lambda: client.write(handle, capacity, b"z")).kind == "out_of_range"
    assert kind_of(lambda: client.allocated(handle, 0, capacity + 1, MiB)).kind == "out_of_range"
    assert kind_of(lambda: client.read(handle, -1, 1)).kind == "invalid"
    assert kind_of(lambda: client.read(12345, 0, 1)).kind == "invalid"
    assert kind_of(lambda: client.call("frobnicate")).kind == "invalid"
    assert kind_of(lambda: client.read(handle, 0, 64 * MiB + 1)).kind == "invalid"
    client.close(handle)
    assert kind_of(lambda: client.info(handle)).kind == "invalid"


def test_oversized_payload_and_garbage_never_kill_the_listener(
    sim: Simulator, si: Any, connect: Callable[..., DataPlaneClient]
) -> None:
    port = sim.connection_info()["nbd_port"]
    with socket.create_connection((sim.host, port)) as raw:
        raw.sendall(struct.pack(">I", 5) + b"{nope")
        assert raw.recv(1) == b""  # broken framing: the server hangs up
    client = connect("nbd")
    error = kind_of(lambda: client.call("write", b"\0" * (64 * MiB + 1), handle=1, offset=0))
    assert error.kind == "invalid" and "64" in error.message
    client.ping()


def test_hotadd_needs_the_disk_attached_to_the_proxy(connect: Callable[..., DataPlaneClient], vm_named: Any) -> None:
    target, proxy = vm_named("target-vmfs"), vm_named("proxy-rhel83")
    snapshot = wait(target.CreateSnapshot_Task("backup", None, False, False))
    client = connect("hotadd", proxy_vm=proxy._moId)
    request = {"vm": target._moId, "snapshot": snapshot._moId, "path": frozen_path(snapshot)}
    error = kind_of(lambda: client.open(**request))
    assert error.kind == "not_attached" and error.extra["proxy_vm"] == proxy._moId
    hot_add(proxy, frozen_path(snapshot))
    opened = client.open(**request)
    assert opened["transport"] == "hotadd"
    assert client.read(opened["handle"], 0, 4096) == bytes(4096)
    assert kind_of(lambda: connect("hotadd", proxy_vm="vm-424242")).kind == "not_found"


def test_hotadd_of_a_vsan_disk_needs_a_proxy_on_vsan(
    connect: Callable[..., DataPlaneClient], content: Any, vm_named: Any
) -> None:
    """K4: a vSAN target's disk cannot be hot-added to a proxy whose home is not on vSAN."""
    target, proxy = vm_named("target-vsan"), vm_named("proxy-rhel83")
    snapshot = wait(target.CreateSnapshot_Task("backup", None, False, False))
    client = connect("hotadd", proxy_vm=proxy._moId)
    request = {"vm": target._moId, "snapshot": snapshot._moId, "path": frozen_path(snapshot)}
    assert kind_of(lambda: client.open(**request)).kind == "transport_unsupported"
    wait(proxy.RelocateVM_Task(vim.vm.RelocateSpec(datastore=find(content, vim.Datastore, "vsanDatastore"))))
    assert kind_of(lambda: client.open(**request)).kind == "not_attached"
    hot_add(proxy, frozen_path(snapshot))
    assert client.open(**request)["capacity"] == 256 * MiB


def test_san_transport_rules(connect: Callable[..., DataPlaneClient], vm_named: Any) -> None:
    client = connect("san", physical_proxy="san-proxy-01")
    vmfs = vm_named("target-win2019")
    opened = client.open(vm=vmfs._moId, path=disk_path(vmfs), write=True)  # base disk on VMFS: fine
    assert opened["adapter"] == "lsilogic"
    client.write(opened["handle"], 0, PATTERN)
    for name in ("target-vsan", "target-vvol", "target-nfs"):  # C2: no SAN path to vSAN, VVOL (or NFS)
        vm = vm_named(name)
        with pytest.raises(DataPlaneError) as info:
            client.open(vm=vm._moId, path=disk_path(vm))
        assert info.value.kind == "san_unsupported_datastore", name
    target = vm_named("target-vmfs")
    snapshot = wait(target.CreateSnapshot_Task("backup", None, False, False))
    assert client.open(vm=target._moId, snapshot=snapshot._moId, path=frozen_path(snapshot))["num_links"] == 1
    error = kind_of(lambda: client.open(vm=target._moId, path=disk_path(target), write=True))
    assert error.kind == "san_redo_write"
    assert kind_of(lambda: connect("san", physical_proxy="nobody")).kind == "not_found"


def test_san_needs_the_proxy_zoned_to_the_datastore() -> None:
    inventory = (
        InventorySpec()
        .datastore("vmfs-a", "VMFS")
        .datastore("vmfs-b", "VMFS")
        .vm("on-a", "vmfs-a", power_on=False)
        .vm("on-b", "vmfs-b", power_on=False)
        .physical_proxy("san-a", "Linux", ["vmfs-a"])
    )
    with Simulator(inventory=inventory) as instance:
        service = connect_vsphere(
            Endpoint(instance.host, instance.port, instance.thumbprint), instance.user, instance.password
        )
        try:
            content = service.RetrieveContent()
            client = DataPlaneClient(
                instance.host, instance.connection_info()["nbdssl_port"], tls=True, thumbprint=instance.thumbprint
            )
            client.hello(cookie(service), "san", physical_proxy="san-a")
            on_a, on_b = (find(content, vim.VirtualMachine, name) for name in ("on-a", "on-b"))
            client.open(vm=on_a._moId, path=disk_path(on_a))
            error = kind_of(lambda: client.open(vm=on_b._moId, path=disk_path(on_b)))
            assert (error.kind, error.extra["datastore"]) == ("not_zoned", "vmfs-b")
            client.bye()
        finally:
            disconnect(service)


def test_maintenance_mode_is_reported_as_host_state(
    sim: Simulator, connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    sim.faults.update(maintenance_entering_seconds=1.0)
    vm = vm_named("target-nfs41")
    wait(vm.PowerOffVM_Task())  # a powered-off VM stays on its host
    host = vm.runtime.host
    client = connect("nbd")
    task = host.EnterMaintenanceMode_Task(0)
    time.sleep(0.3)
    error = kind_of(lambda: client.open(vm=vm._moId, path=disk_path(vm)))
    assert (error.kind, error.extra["state"]) == ("host_state", "entering")
    WaitForTask(task)
    error = kind_of(lambda: client.open(vm=vm._moId, path=disk_path(vm)))
    assert (error.kind, error.extra["state"]) == ("host_state", "in")
    wait(host.ExitMaintenanceMode_Task(0))
    client.open(vm=vm._moId, path=disk_path(vm))


def test_disk_full_keeps_what_was_written(
    sim: Simulator, connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    vm = vm_named("target-nfs")
    client = connect("nbdssl")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    sim.set_datastore_free_space("nfs-01", 128 * KiB)
    data = PATTERN * 16  # 1 MiB
    error = kind_of(lambda: client.write(handle, 0, data))
    assert error.kind == "disk_full" and error.message == "not enough space on datastore nfs-01"
    written = error.extra["bytes_written"]
    assert 0 < written < len(data)
    sim.set_datastore_free_space("nfs-01", None)
    assert client.read(handle, 0, written) == data[:written]


def test_pipelined_reads_overlap_storage_latency(
    sim: Simulator, connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    vm = vm_named("target-vmfs")
    client = connect("nbd")
    handle = client.open(vm=vm._moId, path=disk_path(vm))["handle"]
    sim.faults.update(disk_latency=0.02)
    started = time.monotonic()
    for i in range(16):
        client.read(handle, i * 64 * KiB, 64 * KiB)
    serial = time.monotonic() - started
    started = time.monotonic()
    futures = [
        client.submit({"op": "read", "handle": handle, "offset": i * 64 * KiB, "length": 64 * KiB}) for i in range(16)
    ]
    assert all(len(f.result()[1]) == 64 * KiB for f in futures)
    pipelined = time.monotonic() - started
    assert serial >= 16 * 0.02
    assert pipelined < 0.5 * 16 * 0.02, (serial, pipelined)


def test_many_threads_share_one_client(connect: Callable[..., DataPlaneClient], vm_named: Any) -> None:
    vm = vm_named("target-nfs41")
    client = connect("nbdssl")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]

    def worker(n: int) -> bool:
        block = bytes([n]) * (64 * KiB)
        for i in range(8):
            client.write(handle, (n * 8 + i) * 64 * KiB, block)
        return all(client.read(handle, (n * 8 + i) * 64 * KiB, 64 * KiB) == block for i in range(8))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(worker, range(1, 9)))


def test_a_dropped_connection_fails_every_pending_request(
    sim: Simulator, connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    vm = vm_named("target-vmfs")
    client = connect("nbd")
    handle = client.open(vm=vm._moId, path=disk_path(vm))["handle"]
    sim.faults.update(disk_latency=0.5)
    futures = [client.submit({"op": "read", "handle": handle, "offset": 0, "length": 512}) for _ in range(4)]
    time.sleep(0.1)
    assert sim.ctx is not None
    sim.ctx.dataplane.stop()  # type: ignore[attr-defined]
    for future in futures:
        with pytest.raises(DataPlaneError) as info:
            future.result(timeout=10)
        assert info.value.kind == "connection_lost"
    assert kind_of(lambda: client.ping()).kind == "connection_lost"


def test_prepare_access_disables_relocation_until_end_access(
    content: Any, connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    vm = vm_named("target-vmfs")
    other = find(content, vim.HostSystem, "esx-02.sim.local")
    client = connect("nbd")
    client.prepare_access(vm._moId, "backup-app-1")
    assert "RelocateVM_Task" in vm.disabledMethod
    with pytest.raises(vim.fault.MethodDisabled):
        wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=other)))
    client.end_access(vm._moId, "backup-app-1")
    assert "RelocateVM_Task" not in (vm.disabledMethod or [])
    wait(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=other)))
    assert vm.runtime.host == other


def test_writes_are_tracked_by_cbt(connect: Callable[..., DataPlaneClient], vm_named: Any) -> None:
    vm = vm_named("target-vmfs")
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    first = wait(vm.CreateSnapshot_Task("cbt-1", None, False, False))
    client = connect("nbd")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    client.write(handle, 5 * MiB + 1000, b"c" * 70000)  # touches two 64 KiB blocks
    client.close(handle)
    second = wait(vm.CreateSnapshot_Task("cbt-2", None, False, False))
    key = disks(second.config)[0].key
    change_id = disks(first.config)[0].backing.changeId
    areas = vm.QueryChangedDiskAreas(second, key, 0, change_id).changedArea
    assert [(a.start, a.length) for a in areas] == [(5 * MiB, 128 * KiB)]


def test_a_disk_open_for_writing_is_not_consolidated(connect: Callable[..., DataPlaneClient], vm_named: Any) -> None:
    vm = vm_named("target-nfs41")
    client = connect("nbd")
    handle = client.open(vm=vm._moId, path=disk_path(vm), write=True)["handle"]
    snapshot = wait(vm.CreateSnapshot_Task("backup", None, False, False))
    client.write(handle, 0, PATTERN)  # the handle follows the current disk: the new delta
    wait(snapshot.RemoveSnapshot_Task(False, True))
    assert vm.runtime.consolidationNeeded is True  # the delta is open for writing: locked
    client.close(handle)
    wait(vm.ConsolidateVMDisks_Task())
    assert vm.runtime.consolidationNeeded is False
    handle = client.open(vm=vm._moId, path=disk_path(vm))["handle"]
    assert client.info(handle)["num_links"] == 1
    assert client.read(handle, 0, len(PATTERN)) == PATTERN


def test_bye_closes_the_sessions_handles(
    sim: Simulator, connect: Callable[..., DataPlaneClient], vm_named: Any
) -> None:
    assert sim.ctx is not None
    vm = vm_named("target-nfs")
    client = connect("nbd")
    client.open(vm=vm._moId, path=disk_path(vm), write=True)
    client.open(vm=vm._moId, path=disk_path(vm))  # read-only opens lock nothing
    dataplane: Any = sim.ctx.dataplane  # type: ignore[attr-defined]
    locked = dataplane.paths_open_for_writing()
    assert len(locked) == 1 and locked <= sim.ctx.links_used_elsewhere(object())[1]
    client.bye()
    deadline = time.monotonic() + 5
    while dataplane.paths_open_for_writing() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dataplane.paths_open_for_writing() == set()


def test_first_class_disks_open_by_id(content: Any, connect: Callable[..., DataPlaneClient]) -> None:
    ds = find(content, vim.Datastore, "vmfs-01")
    spec = vim.vslm.CreateSpec(
        name="fcd-dp",
        capacityInMB=16,
        keepAfterDeleteVm=True,
        backingSpec=vim.vslm.CreateSpec.DiskFileBackingSpec(datastore=ds, provisioningType="thin"),
    )
    fcd = wait(content.vStorageObjectManager.CreateDisk_Task(spec))
    client = connect("nbd")
    opened = client.open(fcd=fcd.config.id.id, datastore=ds._moId, write=True)
    assert opened["capacity"] == 16 * MiB
    client.write(opened["handle"], MiB, PATTERN)
    snap_id = wait(content.vStorageObjectManager.VStorageObjectCreateSnapshot_Task(fcd.config.id, ds, "b"))
    frozen = client.open(fcd=fcd.config.id.id, datastore=ds._moId, snapshot=snap_id.id)
    assert client.read(frozen["handle"], MiB, len(PATTERN)) == PATTERN
    assert (
        kind_of(lambda: client.open(fcd=fcd.config.id.id, datastore=ds._moId, snapshot=snap_id.id, write=True)).kind
        == "read_only"
    )
    assert kind_of(lambda: client.open(fcd="no-such-disk", datastore=ds._moId)).kind == "not_found"


def test_stopping_the_simulator_stops_the_listeners() -> None:
    with Simulator() as instance:
        port = instance.connection_info()["nbd_port"]
        socket.create_connection((instance.host, port)).close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection((instance.host, port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.05)
    pytest.fail(f"port {port} still accepts connections")
