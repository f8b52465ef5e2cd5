"""D3 in the simulated library: an NBD/NBDSSL Read or Write that the host's NFC memory cannot hold fails as VDDK
reports it (VIX_E_FAIL with NFC's text, and the NFC line in the library's log), its buffer never outlives the
call, and HotAdd reads ignore the budget."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyVmomi import vim

from conformance.sim.dataplane.nfc_memory import ledger
from conformance.sim.instance import Simulator
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import SECTOR_SIZE, ConnectParams
from tests.sim.conftest import find
from tests.vixdisklib.conftest import MakeLib, disk_path, snapshot, wait

MiB = 2**20
HOST = "esx-01.sim.local"  # target-vmfs's host


@pytest.fixture
def budget(sim: Simulator) -> Iterator[Callable[[int | None], None]]:
    """budget(bytes): esx-01's NFC maxMemory for this test (back to the default afterwards)."""
    yield lambda value: sim.set_nfc_max_memory(HOST, value)
    sim.set_nfc_max_memory(HOST, None)


def all_given_back(sim: Simulator, seconds: float = 5.0) -> bool:
    """Whether esx-01's NFC memory is all free again (the library does not wait for its nfc_free answers)."""
    assert sim.ctx is not None
    memory, deadline = ledger(sim.ctx), time.monotonic() + seconds
    while memory.in_use(HOST) and time.monotonic() < deadline:
        time.sleep(0.01)
    return memory.in_use(HOST) == 0


def failure(call: Callable[[], Any]) -> VixError:
    with pytest.raises(VixError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("transport", ["nbd", "nbdssl"])
def test_a_read_the_host_cannot_buffer_fails_with_nfc_text_and_leaks_nothing(
    make_lib: MakeLib,
    sim: Simulator,
    content: Any,
    vm_params: Callable[[str], ConnectParams],
    budget: Callable[[int | None], None],
    caplog: pytest.LogCaptureFixture,
    transport: str,
) -> None:
    lib = make_lib()
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    budget(MiB)
    with (
        caplog.at_level(logging.ERROR, logger="conformance.vixdisklib"),
        lib.connected(vm_params("target-vmfs"), True, None, transport) as connection,
        lib.opened(connection, disk_path(vm)) as disk,
    ):
        error = failure(lambda: lib.read(disk, 0, 2 * MiB // SECTOR_SIZE))
        assert (error.code, error.call) == (VixCode.FAIL, "VixDiskLib_Read")
        assert error.text.endswith("Failed to allocate the requested 2097176 bytes")
        assert "received NFC error 5 from server: Failed to allocate the requested 2097176 bytes" in caplog.text
        assert all_given_back(sim)
        assert len(lib.read(disk, 0, 512 * 1024 // SECTOR_SIZE)) == 512 * 1024  # a smaller request fits
        assert all_given_back(sim)  # given back when the call ended
        done: list[int] = []
        finished = threading.Event()

        def completed(code: int) -> None:
            done.append(code)
            finished.set()

        lib.read_async(disk, 0, 2 * MiB // SECTOR_SIZE, bytearray(2 * MiB), completed)
        lib.wait(disk)
        assert finished.wait(5) and done == [VixCode.FAIL]


def test_a_write_counts_against_the_budget_too(
    make_lib: MakeLib, content: Any, vm_params: Callable[[str], ConnectParams], budget: Callable[[int | None], None]
) -> None:
    lib = make_lib()
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    budget(MiB)
    with (
        lib.connected(vm_params("target-vmfs"), False, None, "nbd") as connection,
        lib.opened(connection, disk_path(vm), 0) as disk,
    ):
        error = failure(lambda: lib.write(disk, 0, bytes(MiB)))  # 1 MiB + the 24-byte header > 1 MiB
        assert (error.code, error.call) == (VixCode.FAIL, "VixDiskLib_Write")
        assert "Failed to allocate the requested 1048600 bytes" in error.text
        lib.write(disk, 0, bytes(MiB // 2))


def test_hotadd_reads_do_not_use_nfc_memory(
    make_lib: MakeLib, content: Any, vm_params: Callable[[str], ConnectParams], budget: Callable[[int | None], None]
) -> None:
    lib = make_lib()
    vm = find(content, vim.VirtualMachine, "target-vmfs")
    frozen = snapshot(vm, "d3-hotadd")
    budget(0)
    try:
        with (
            lib.connected(vm_params("target-vmfs"), True, frozen._moId, "hotadd") as connection,
            lib.opened(connection, disk_path(frozen)) as disk,
        ):
            assert lib.get_transport_mode(disk) == "hotadd"
            assert len(lib.read(disk, 0, 4 * MiB // SECTOR_SIZE)) == 4 * MiB
    finally:
        lib.cleanup(vm_params("target-vmfs"))
        wait(frozen.RemoveSnapshot_Task(False))
