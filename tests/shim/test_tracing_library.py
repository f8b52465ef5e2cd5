"""The tracing libvixDiskLib: a product loads it instead of VMware's library; it forwards every call to the real
one (here: the harness's C double of it, in VDDKC_SHIM_FORWARD) unchanged and appends a trace line per call.

What must hold: the bytes a backup reads through it are the real library's; every call is in the trace with its
thread, handle and result, and no secret is; a folder without a real library, or one holding only the tracing
library itself, fails InitEx with one line instead of looping or crashing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.shim.build import build
from conformance.vixdisklib.types import OpenFlags
from tests.native.conftest import PASSWORD, DiskSet, Kits, disks, kits, remote_params, vddk_conf

__all__ = ["disks", "kits", "vddk_conf"]  # fixtures used by the tests below


@pytest.fixture(scope="module")
def shim_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the tracing library cannot be built")
    return build(tmp_path_factory.mktemp("shim"), majors=(7,))[7]


@pytest.fixture
def tracing_kit(shim_build: Path, tmp_path: Path) -> Path:
    """A fresh copy of the library (dlopen loads a new copy, so each test picks its own backend)."""
    kit = tmp_path / "tracing"
    kit.mkdir()
    shutil.copy2(shim_build, kit / shim_build.name)
    return kit


@pytest.fixture
def traced(tracing_kit: Path, kits: Kits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("VDDKC_SHIM_FORWARD", str(kits.flat))
    monkeypatch.setenv("VDDKC_TRACE", str(trace))
    yield trace


def lines(trace: Path) -> list[dict]:
    return [json.loads(line) for line in trace.read_text().splitlines()]


def test_a_backup_through_the_tracing_library_reads_the_real_librarys_bytes_and_traces_every_call(
    traced: Path, tracing_kit: Path, disks: DiskSet, vddk_conf: Path
) -> None:
    lib = VixDiskLib(NativeVixDiskLib("7.0.3", tracing_kit, 7))
    lib.init_ex(vddk_conf)
    try:
        connection = lib.connect_ex(remote_params(), read_only=True, transport_modes="nbdssl")
        disk = lib.open(connection, disks.delta, OpenFlags.READ_ONLY)
        capacity = lib.get_info(disk).capacity
        blocks = lib.query_allocated_blocks(disk, 0, capacity, 128)
        data = lib.read(disk, 0, capacity)
        lib.close(disk)
        lib.disconnect(connection)
    finally:
        lib.exit()
    assert hashlib.sha256(data).digest() == hashlib.sha256(disks.contents).digest()
    assert blocks
    records = lines(traced)
    assert records[0]["kind"] == "start" and records[0]["mode"] == "forward"
    assert records[0]["library"].endswith("libvixDiskLib.so.7") and str(tracing_kit) not in records[0]["library"]
    calls = [r["call"] for r in records if r["kind"] == "call"]
    for expected in ("VixDiskLib_InitEx", "VixDiskLib_ConnectEx", "VixDiskLib_Open", "VixDiskLib_GetInfo",
                     "VixDiskLib_QueryAllocatedBlocks", "VixDiskLib_Read", "VixDiskLib_Close",
                     "VixDiskLib_Disconnect", "VixDiskLib_Exit"):  # fmt: skip
        assert expected in calls, f"{expected} missing from the trace: {calls}"
    by_call = {r["call"]: r for r in records if r["kind"] == "call"}
    opened = by_call["VixDiskLib_Open"]
    assert opened["handle"].startswith("disk-") and opened["args"]["path"] == disks.delta
    assert opened["args"]["transport"] == "nbdssl" and opened["error"] is None
    assert by_call["VixDiskLib_Read"]["handle"] == opened["handle"]
    assert by_call["VixDiskLib_QueryAllocatedBlocks"]["args"]["numBlocks"] == len(blocks)
    connect = by_call["VixDiskLib_ConnectEx"]
    assert connect["args"]["params"]["password"] == "<redacted>"
    assert connect["args"]["params"]["vmxSpec"] == "moref=vm-42"
    assert all(r["tid"] > 0 and r["duration_ns"] >= 0 for r in records if r["kind"] == "call")
    assert PASSWORD not in traced.read_text()


def test_a_failing_call_is_traced_with_the_real_librarys_error(
    traced: Path, tracing_kit: Path, disks: DiskSet, vddk_conf: Path
) -> None:
    lib = VixDiskLib(NativeVixDiskLib("7.0.3", tracing_kit, 7))
    lib.init_ex(vddk_conf)
    try:
        connection = lib.connect_ex(remote_params(), read_only=True)
        with pytest.raises(VixError):
            lib.open(connection, "[ds1] vm/missing.vmdk", OpenFlags.READ_ONLY)
        lib.disconnect(connection)
    finally:
        lib.exit()
    failed = [r for r in lines(traced) if r.get("call") == "VixDiskLib_Open"]
    assert failed and failed[0]["error"] not in (None, 0) and failed[0]["handle"] is None


@pytest.mark.parametrize("where", ["empty", "itself"])
def test_a_folder_without_a_real_library_fails_init_in_one_line(
    where: str,
    tracing_kit: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    vddk_conf: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.setenv("VDDKC_SHIM_FORWARD", str(folder if where == "empty" else tracing_kit))
    lib = VixDiskLib(NativeVixDiskLib("7.0.3", tracing_kit, 7))
    with pytest.raises(VixError):
        lib.init_ex(vddk_conf)
    said = [r.getMessage() for r in caplog.records if "tracing library" in r.getMessage()]
    assert len(said) == 1 and "other than this tracing library under VDDKC_SHIM_FORWARD" in said[0], said
