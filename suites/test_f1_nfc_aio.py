"""F1: configurable NFC AIO buffers (NBD and NBDSSL only).

`vixDiskLib.nfcAio.Session.BufSizeIn64KB` (default 1) x `vixDiskLib.nfcAio.Session.BufCount` (default 4) x
64 KiB is the session's buffer memory: up to 16 MiB a disk opens over NBD/NBDSSL, above it Open fails. Each
library here is initialised with its own InitEx configuration and opens the same snapshot disk of the
target's VMFS VM. Malformed values are the harness's own config check's business, before any connection
(tests/vixdisklib/test_config.py, formerly F1-003).
With storage latency injected, a tuned session (16 x 4) reads at least SPEEDUP times as fast as the default one
(1 x 4); the MB/s of each setting are recorded as the test's metrics.

Why a margin and this latency: a build that ignores the keys (7.0.2) reads both settings alike, and "at least as
fast" then passes or fails on noise. With 50 ms per request the default needs ~32 round trips for 8 MiB and the
tuned setting ~2, so reading is latency-bound, not CPU-bound: measured on a loaded 2-core machine (3 runs each,
NBD and NBDSSL), 7.0.3 gave a tuned/default ratio of 7.9 to 10.5 (about 4 MB/s against 32 to 48 MB/s) and
7.0.2's behaviour 0.86 to 1.04; SPEEDUP = 3 leaves a factor of 2.6 below the one and 2.9 above the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.lab.targets import Target
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import KEY_AIO_BUF_COUNT, KEY_AIO_BUF_SIZE
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.types import SECTOR_SIZE, ConnectParams, OpenFlags
from conformance.vsphere.session import VsphereSession, disks_of

pytestmark = [pytest.mark.release_note("F1")]

MiB = 2**20
NFC_TRANSPORTS = ("nbd", "nbdssl")
#: (BufSizeIn64KB, BufCount); None: the key is left out (the defaults, 1 x 4)
WITHIN_LIMIT = [(16, 16), (256, 1), (1, 256), (None, None)]  # 16 MiB exactly, and the defaults
OVER_LIMIT = [(16, 17), (257, 1), (1, 257)]  # one buffer or one 64 KiB unit over 16 MiB
LATENCY = 0.05  # seconds per data-plane request
SPEEDUP = 3.0  # the tuned setting must read at least this many times as fast as the defaults
THROUGHPUT_BYTES = 8 * MiB
TUNED, DEFAULT = (16, 4), (1, 4)


@dataclass(frozen=True)
class SnapshotDisk:
    params: ConnectParams
    snapshot: str  # moref
    path: str


@pytest.fixture(scope="module")
def snapshot_disk(vddk_target: Target, vsphere: VsphereSession) -> Iterator[SnapshotDisk]:
    """The first disk of the target's VMFS VM, as a snapshot taken for this module records it."""
    name = vddk_target.target_vms.get("VMFS")
    if name is None:
        pytest.skip(f"target {vddk_target.name} has no VM on a VMFS datastore")
    vm = vsphere.vm(name)
    snapshot = vsphere.create_snapshot(vm, "vddk-conformance-f1", quiesce=False)
    try:
        yield SnapshotDisk(vddk_target.connect_params(vm._moId), snapshot._moId, disks_of(snapshot)[0].file_name)
    finally:
        vsphere.remove_snapshot(snapshot, f"vddk-conformance-f1 of {name}")


def aio_config(size: int | None, count: int | None) -> dict[str, str | int]:
    values: dict[str, str | int] = {}
    if size is not None:
        values[KEY_AIO_BUF_SIZE] = size
    if count is not None:
        values[KEY_AIO_BUF_COUNT] = count
    return values


def case_id(case: tuple[int | None, int | None]) -> str:
    return "defaults" if case == (None, None) else f"{case[0]}x{case[1]}"


def open_and_read(lib: VixDiskLib, disk: SnapshotDisk, transport: str, num_bytes: int) -> bytes:
    with (
        lib.connected(disk.params, True, disk.snapshot, transport) as connection,
        lib.opened(connection, disk.path, OpenFlags.READ_ONLY) as handle,
    ):
        assert lib.get_transport_mode(handle) == transport
        return lib.read(handle, 0, num_bytes // SECTOR_SIZE)


@pytest.mark.test_id(
    "F1-001",
    uuid="02086a75-1da8-476f-bc27-180cfacdee26",
    since="vddk-7.0.3-v1",
    description="A session of at most 16 mib opens and reads",
)
@pytest.mark.parametrize("transport", NFC_TRANSPORTS)
@pytest.mark.parametrize("case", WITHIN_LIMIT, ids=case_id)
def test_a_session_of_at_most_16_mib_opens_and_reads(
    vixdisklib_factory: Callable[..., VixDiskLib],
    snapshot_disk: SnapshotDisk,
    transport: str,
    case: tuple[int | None, int | None],
) -> None:
    lib = vixdisklib_factory(config=aio_config(*case))
    assert len(open_and_read(lib, snapshot_disk, transport, MiB)) == MiB


@pytest.mark.test_id(
    "F1-002",
    uuid="6f4b9579-4456-4275-9633-551fe4f71f0c",
    since="vddk-7.0.3-v1",
    description="A session over 16 mib fails at open",
)
@pytest.mark.parametrize("transport", NFC_TRANSPORTS)
@pytest.mark.parametrize("case", OVER_LIMIT, ids=case_id)
def test_a_session_over_16_mib_fails_at_open(
    vixdisklib_factory: Callable[..., VixDiskLib],
    snapshot_disk: SnapshotDisk,
    transport: str,
    case: tuple[int, int],
) -> None:
    lib = vixdisklib_factory(config=aio_config(*case))
    with (
        lib.connected(snapshot_disk.params, True, snapshot_disk.snapshot, transport) as connection,
        pytest.raises(VixError) as caught,
    ):
        lib.open(connection, snapshot_disk.path, OpenFlags.READ_ONLY)
    assert caught.value.call == "VixDiskLib_Open"


def throughput(
    vixdisklib_factory: Callable[..., VixDiskLib], disk: SnapshotDisk, transport: str, setting: tuple[int, int]
) -> float:
    """MB/s of one read of THROUGHPUT_BYTES over `transport` with a library configured with `setting`."""
    lib = vixdisklib_factory(config=aio_config(*setting))
    with (
        lib.connected(disk.params, True, disk.snapshot, transport) as connection,
        lib.opened(connection, disk.path, OpenFlags.READ_ONLY) as handle,
    ):
        started = time.perf_counter()
        lib.read(handle, 0, THROUGHPUT_BYTES // SECTOR_SIZE)
        seconds = time.perf_counter() - started
    return THROUGHPUT_BYTES / 1e6 / seconds


@pytest.mark.test_id(
    "F1-004",
    uuid="ba0eac93-0685-4e80-a6c6-e349838c7584",
    since="vddk-7.0.3-v1",
    description="Tuned buffers read several times as fast as the defaults under latency",
)
@pytest.mark.parametrize("transport", NFC_TRANSPORTS)
def test_tuned_buffers_read_several_times_as_fast_as_the_defaults_under_latency(
    request: pytest.FixtureRequest,
    vixdisklib_factory: Callable[..., VixDiskLib],
    snapshot_disk: SnapshotDisk,
    controls: Any,
    transport: str,
) -> None:
    controls.set(disk_latency=LATENCY)
    rates = {
        f"{size}x{count}": throughput(vixdisklib_factory, snapshot_disk, transport, (size, count))
        for size, count in (DEFAULT, TUNED)
    }
    request.node.user_properties.append(
        ("metrics", {"unit": "MB/s", "transport": transport, "disk_latency_s": LATENCY, **rates})
    )
    assert rates["16x4"] >= SPEEDUP * rates["1x4"], f"tuned {rates['16x4']:.1f} MB/s, defaults {rates['1x4']:.1f} MB/s"
