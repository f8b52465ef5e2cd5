"""Finding and loading libvixDiskLib.so.N: lib64/ and flat layouts, major selection, and the one-line
errors for a missing library, missing required symbols (all named) and missing optional ones (feature off, one
warning line). More libraries lacking functions: test_optional_symbols.py."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.factory import BackendError, make_library
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.native.loader import LibraryNotFoundError, candidates, find_library, load
from conformance.vixdisklib.native.symbols import MissingSymbolError
from tests.native.conftest import MAJORS, DiskSet, Kits, MakeNative, double_state, remote_params


@pytest.mark.parametrize("major", MAJORS)
def test_finds_each_major_with_and_without_lib64(kits: Kits, major: int) -> None:
    assert find_library(kits.flat, major) == (kits.flat / f"libvixDiskLib.so.{major}", major)
    assert find_library(kits.lib64, major) == (kits.lib64 / "lib64" / f"libvixDiskLib.so.{major}", major)


def test_without_a_major_the_newest_wins_and_lib64_comes_first(kits: Kits, tmp_path: Path) -> None:
    assert find_library(kits.flat) == (kits.flat / "libvixDiskLib.so.8", 8)
    both = tmp_path / "both"
    (both / "lib64").mkdir(parents=True)
    shutil.copy2(kits.flat / "libvixDiskLib.so.7", both / "lib64" / "libvixDiskLib.so.7")
    shutil.copy2(kits.flat / "libvixDiskLib.so.7", both / "libvixDiskLib.so.7")
    assert find_library(both)[0] == both / "lib64" / "libvixDiskLib.so.7"
    assert candidates(both, 7) == [both / "lib64" / "libvixDiskLib.so.7", both / "libvixDiskLib.so.7"]


def test_a_missing_library_is_one_line_naming_every_path_tried(tmp_path: Path) -> None:
    with pytest.raises(LibraryNotFoundError) as caught:
        find_library(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "--vddk-libdir" in message
    for path in candidates(tmp_path):
        assert str(path) in message


def test_a_libdir_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LibraryNotFoundError, match="is not a directory"):
        find_library(tmp_path / "nowhere")


def test_a_file_that_is_not_a_library_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "libvixDiskLib.so.7").write_text("not ELF")
    with pytest.raises(LibraryNotFoundError) as caught:
        load(tmp_path, 7)
    assert str(caught.value).startswith(f"cannot load {tmp_path / 'libvixDiskLib.so.7'}")


def test_missing_required_symbols_are_all_named_with_the_library(kits: Kits) -> None:
    """Read and Write both missing: one line names both (not only the first) and the file, and blames no release."""
    with pytest.raises(MissingSymbolError) as caught:
        NativeVixDiskLib("7.0.3", kits.no_io, 7)
    message = str(caught.value)
    assert "\n" not in message
    assert "VixDiskLib_Read" in message and "VixDiskLib_Write" in message
    assert str(kits.no_io / "libvixDiskLib.so.7") in message
    assert "6.5" not in message and "or later" not in message


def test_a_missing_optional_symbol_turns_its_feature_off(
    kits: Kits, make_native: MakeNative, disks: DiskSet, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conformance.vixdisklib.native"):
        lib = make_native(6, kit=kits.v65)
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib)
    assert any("VixDiskLib_QueryAllocatedBlocks" in line and "off" in line for line in backend.features_off)
    assert any("VixDiskLib_AllocateConnectParams" in line for line in backend.features_off)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "optional" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one line for all three, not one per feature
    for name in ("VixDiskLib_QueryAllocatedBlocks", "VixDiskLib_FreeBlockList", "VixDiskLib_AllocateConnectParams"):
        assert name in warnings[0]
    assert str(kits.v65 / "libvixDiskLib.so.6") in warnings[0] and "\n" not in warnings[0]
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.base) as disk:
        with pytest.raises(VixError) as caught:
            lib.query_allocated_blocks(disk, 0, 1024, 128)
        assert caught.value.code == VixCode.NOT_SUPPORTED and "needs VDDK 6.7" in caught.value.text
        assert lib.read(disk, 2048, 1) == disks.contents[1024 * 1024 : 1024 * 1024 + 512]  # the rest works
    assert double_state(lib)["live"] == "0"  # our own struct: FreeConnectParams must not be called on it


def test_factory_builds_the_native_backend_for_the_build_major(kits: Kits) -> None:
    lib = make_library("8.0.1", backend="native", libdir=kits.lib64)
    assert isinstance(lib.backend, NativeVixDiskLib)
    assert lib.backend.path == kits.lib64 / "lib64" / "libvixDiskLib.so.8" and lib.backend.build == "8.0.1"


def test_factory_refuses_native_without_libdir_or_with_a_bad_build(kits: Kits) -> None:
    with pytest.raises(BackendError, match="needs --vddk-libdir"):
        make_library("7.0.3", backend="native")
    with pytest.raises(BackendError, match="major version"):
        make_library("latest", backend="native", libdir=kits.flat)
    with pytest.raises(LibraryNotFoundError, match=r"libvixDiskLib\.so\.9"):
        make_library("9.0.0", backend="native", libdir=kits.flat)
