"""The NFC memory budget of each simulated host (D3): NFC's own error text, buffers given back when a request
ends or its session dies (no leak), and accounting per host, over the data plane as clients see it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.dataplane.client import DataPlaneClient
from conformance.sim.dataplane.nfc_memory import DEFAULT_MAX_MEMORY, HEADER_BYTES, NfcMemory, ledger
from conformance.sim.dataplane.protocol import DataPlaneError
from conformance.sim.instance import Simulator
from tests.sim.conftest import find
from tests.sim.test_dataplane import cookie, disk_path, hot_add

MiB = 2**20
Open = Callable[..., tuple[DataPlaneClient, int]]


def refusal(call: Callable[[], Any]) -> DataPlaneError:
    with pytest.raises(DataPlaneError) as info:
        call()
    return info.value


def test_a_request_over_the_budget_fails_with_nfc_text_counting_the_header() -> None:
    memory = NfcMemory()
    memory.set_max_memory("esx-01", 4 * MiB)
    first = memory.allocate("esx-01", "s1", 2 * MiB)
    assert memory.in_use("esx-01") == 2 * MiB + HEADER_BYTES
    error = refusal(lambda: memory.allocate("esx-01", "s2", 2 * MiB))
    assert error.kind == "nfc_no_memory"
    assert error.message == "Failed to allocate the requested 2097176 bytes"  # 2 MiB + 24, as ESXi reports it
    assert error.extra["in_use"] == 2 * MiB + HEADER_BYTES and error.extra["max_memory"] == 4 * MiB
    memory.free(first, "s1")
    memory.allocate("esx-01", "s2", 2 * MiB)  # fits again once the first request ended


def test_buffers_go_back_when_requests_end_and_when_a_session_dies() -> None:
    memory = NfcMemory()
    ids = [memory.allocate("esx-01", "s1", MiB) for _ in range(8)]
    for buffer_id in ids[:5]:
        memory.free(buffer_id, "s1")
    assert memory.in_use("esx-01") == 3 * (MiB + HEADER_BYTES)
    assert refusal(lambda: memory.free(ids[5], "s2")).kind == "invalid"  # not the other session's to free
    assert memory.end_session("s1") == 3
    assert memory.in_use("esx-01") == 0
    assert memory.peaks["esx-01"] == 8 * (MiB + HEADER_BYTES)


def test_each_host_has_its_own_budget_and_the_default_is_48_mib() -> None:
    memory = NfcMemory()
    assert memory.max_memory("esx-02") == DEFAULT_MAX_MEMORY == 48 * MiB
    memory.set_max_memory("esx-01", MiB)
    assert refusal(lambda: memory.allocate("esx-01", "s1", MiB)).kind == "nfc_no_memory"
    memory.allocate("esx-02", "s1", 40 * MiB)  # another host's budget is untouched
    memory.set_max_memory("esx-01", None)
    memory.allocate("esx-01", "s1", 40 * MiB)
    assert refusal(lambda: memory.allocate("esx-02", "s1", 8 * MiB)).kind == "nfc_no_memory"
    with pytest.raises(ValueError, match="byte count"):
        memory.set_max_memory("esx-01", -1)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as instance:
        yield instance


@pytest.fixture
def open_disk(sim: Simulator, si: Any) -> Iterator[Open]:
    """open_disk(transport, vm name, **hello options) -> (client, handle) of the VM's first disk, read-only."""
    clients: list[DataPlaneClient] = []
    info = sim.connection_info()

    def make(transport: str, vm_name: str, **options: Any) -> tuple[DataPlaneClient, int]:
        tls = transport == "nbdssl"
        port = info["nbdssl_port" if tls else "nbd_port"]
        client = DataPlaneClient(sim.host, port, tls=tls, thumbprint=sim.thumbprint)
        clients.append(client)
        client.hello(cookie(si), transport, **options)
        vm = find(si.RetrieveContent(), vim.VirtualMachine, vm_name)
        return client, int(client.open(vm=vm._moId, path=disk_path(vm))["handle"])

    yield make
    for client in clients:
        client.shutdown()


def alloc(client: DataPlaneClient, handle: int, size: int) -> Any:
    return client.call("nfc_alloc", handle=handle, bytes=size)[0]["buffer"]


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_budget_is_per_host_over_the_wire_and_a_dead_client_leaks_nothing(sim: Simulator, open_disk: Open) -> None:
    assert sim.ctx is not None
    memory = ledger(sim.ctx)
    sim.set_nfc_max_memory("esx-01.sim.local", 3 * MiB)
    on_01, handle_01 = open_disk("nbd", "target-vmfs")  # esx-01
    on_02, handle_02 = open_disk("nbdssl", "target-nfs41")  # esx-02
    held = alloc(on_01, handle_01, 2 * MiB)
    error = refusal(lambda: alloc(on_01, handle_01, 2 * MiB))
    assert (error.kind, error.message) == ("nfc_no_memory", "Failed to allocate the requested 2097176 bytes")
    assert alloc(on_02, handle_02, 16 * MiB) is not None  # esx-02 keeps its own 48 MiB
    on_01.call("nfc_free", buffer=held)
    assert memory.in_use("esx-01.sim.local") == 0
    alloc(on_01, handle_01, 2 * MiB)
    on_01.shutdown()  # dies holding a buffer: the session's end gives it back
    assert wait_for(lambda: memory.in_use("esx-01.sim.local") == 0)
    with pytest.raises(ValueError, match="unknown host"):
        sim.set_nfc_max_memory("esx-99", MiB)


def test_hotadd_never_uses_nfc(sim: Simulator, si: Any, open_disk: Open) -> None:
    sim.set_nfc_max_memory("esx-01.sim.local", 0)
    client, handle = open_disk("nbd", "target-vmfs")
    assert refusal(lambda: alloc(client, handle, 512)).kind == "nfc_no_memory"
    content = si.RetrieveContent()
    proxy, vm = find(content, vim.VirtualMachine, "proxy-rhel83"), find(content, vim.VirtualMachine, "target-vmfs")
    hot_add(proxy, disk_path(vm))
    client, handle = open_disk("hotadd", "target-vmfs", proxy_vm=proxy._moId)
    assert alloc(client, handle, 64 * MiB) is None  # the disk is the proxy's: no NFC buffer, no budget
