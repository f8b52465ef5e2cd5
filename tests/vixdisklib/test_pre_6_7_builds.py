"""Behaviours of VDDK 6.5 builds in the simulated library, against a server those builds support (vSphere
6.7U3: 6.5 supports 5.5 .. 6.7, so the module's 7.0U3 simulator would refuse them at ConnectEx, C4)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from conformance.sim.instance import Simulator
from conformance.vixdisklib.errors import VixCode
from tests.vixdisklib.conftest import MakeLib
from tests.vixdisklib.test_simulated_library import (
    CAPACITY,
    Backup,
    opened_backup,
    snapshots,
    vix_error,
    vmfs_backup,
)

__all__ = ["snapshots", "vmfs_backup"]  # module fixtures of test_simulated_library, over this module's sim


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(vsphere="6.7U3") as instance:
        yield instance


def test_c2_before_6_7_san_on_vsan_opens_and_fails_at_the_first_io(
    make_lib: MakeLib, snapshots: Callable[[str], Backup]
) -> None:
    lib = make_lib("6.5.4")
    backup = snapshots("target-vsan")
    with opened_backup(lib, backup, "san") as disk:
        assert lib.get_transport_mode(disk) == "san"
        assert vix_error(lambda: lib.read(disk, 0, 1)).code == VixCode.DISK_NOIO


@pytest.mark.parametrize("build", ["6.5.0", "6.5.4"])
def test_query_allocated_blocks_is_not_supported_before_6_7(make_lib: MakeLib, vmfs_backup: Backup, build: str) -> None:
    lib = make_lib(build)
    with opened_backup(lib, vmfs_backup, "nbd") as disk:
        error = vix_error(lambda: lib.query_allocated_blocks(disk, 0, 128, 128))
    assert error.code == VixCode.NOT_SUPPORTED


def test_get_info_has_no_sector_sizes_on_6_5(make_lib: MakeLib, vmfs_backup: Backup) -> None:
    lib = make_lib("6.5.0")
    with opened_backup(lib, vmfs_backup, "nbdssl") as disk:
        info = lib.get_info(disk)
    assert info.capacity == CAPACITY
    assert (info.logical_sector_size, info.physical_sector_size) == (None, None)
