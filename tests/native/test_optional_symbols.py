"""The ctypes backend loads what a backup product would load: only the twelve calls of a backup are required.

Libraries built from the C double without some functions show it: a library lacking optional ones loads, says so in
one warning line naming them all, and backs up; calling what it lacks is VIX_E_NOT_SUPPORTED naming the function
(never KeyError); async I/O without the library's trio is done synchronously with correct bytes and callbacks; a
library lacking required ones is refused naming every one; a library answering VIX_OK without its out handle is an
error and the NULL never reaches a later call; preflight's probe follows the same rules.
"""

from __future__ import annotations

import ctypes
import json
import logging
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.native.callbacks import COMPLETIONS
from conformance.vixdisklib.native.library import NativeCleanupError, NativeVixDiskLib
from conformance.vixdisklib.native.probe import library_problems
from conformance.vixdisklib.native.symbols import PROTOTYPES, MissingSymbolError, bind
from tests.native.conftest import DiskSet, Kits, MakeNative, double_state, remote_params

SECTORS = 8 * 1024 * 1024 // 512
REQUIRED = {
    f"VixDiskLib_{name}"
    for name in (
        "InitEx", "Exit", "ConnectEx", "Disconnect", "Open", "Close", "GetInfo", "FreeInfo", "Read", "Write",
        "GetErrorText", "FreeErrorText",
    )
}  # fmt: skip
OPTIONAL = set(PROTOTYPES) - REQUIRED
#: what the `lean` kit lacks
LEAN = ("VixDiskLib_ListTransportModes", "VixDiskLib_Attach", "VixDiskLib_PrepareForAccess", "VixDiskLib_EndAccess",
        "VixDiskLib_Cleanup")  # fmt: skip
LOGGER = "conformance.vixdisklib.native"


def load_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The loader's warning lines about missing optional symbols."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING and "optional symbol" in r.getMessage()
    ]


def backup(lib: VixDiskLib, disk: Disk) -> bytes:
    """The whole disk, read the way a backup reads it: capacity from GetInfo, then 1 MiB reads."""
    capacity = lib.get_info(disk).capacity
    return b"".join(lib.read(disk, start, min(2048, capacity - start)) for start in range(0, capacity, 2048))


def not_supported(call: object, *args: object) -> VixError:
    with pytest.raises(VixError) as caught:  # KeyError or AttributeError would fail the test here
        call(*args)  # type: ignore[operator]
    assert caught.value.code == VixCode.NOT_SUPPORTED == 6
    return caught.value


# --- which symbols are required: the classification itself ---


def fake_library(names: set[str]) -> ctypes.CDLL:
    """An object exporting exactly `names` (attributes that take restype/argtypes like ctypes functions)."""
    return cast(ctypes.CDLL, SimpleNamespace(**{name: SimpleNamespace() for name in names}))


def test_exactly_the_twelve_calls_of_a_backup_are_required() -> None:
    assert {name for name, prototype in PROTOTYPES.items() if prototype.feature is None} == REQUIRED
    assert not [p.feature for p in PROTOTYPES.values() if p.feature and ";" in p.feature]  # "; " joins them


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_any_required_symbol_missing_refuses_the_library(name: str) -> None:
    with pytest.raises(MissingSymbolError, match=name):
        bind(fake_library(set(PROTOTYPES) - {name}), Path("/kit/libvixDiskLib.so.7"))


def test_every_optional_symbol_missing_still_binds_and_warns_in_one_line() -> None:
    symbols = bind(fake_library(REQUIRED), Path("/kit/libvixDiskLib.so.7"))
    assert set(symbols.missing) == OPTIONAL
    warning = symbols.warning()
    assert warning is not None and "\n" not in warning and "/kit/libvixDiskLib.so.7" in warning
    assert all(name in warning for name in OPTIONAL)
    error = not_supported(lambda: symbols["VixDiskLib_Cleanup"])
    assert error.call == "VixDiskLib_Cleanup" and "VixDiskLib_Cleanup is not in libvixDiskLib.so.7" in error.text


# --- libraries lacking optional functions ---


def test_a_library_without_five_optional_functions_loads_warns_once_and_backs_up(
    kits: Kits, make_native: MakeNative, disks: DiskSet, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lib = make_native(7, kit=kits.lean)
    lines = load_warnings(caplog)
    assert len(lines) == 1, lines  # one line for all five, not one per feature
    assert all(name in lines[0] for name in LEAN) and "\n" not in lines[0]
    assert str(kits.lean / "libvixDiskLib.so.7") in lines[0]
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib) and backend.missing == sorted(LEAN)
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        assert backup(lib, disk) == disks.contents
        assert lib.get_transport_mode(disk) == "nbd"
    state = double_state(lib)
    assert (state["connections"], state["disks"], state["live"]) == ("0", "0", "0")


def test_calling_a_function_the_library_lacks_is_not_supported_naming_it(
    kits: Kits, make_native: MakeNative, disks: DiskSet
) -> None:
    lib = make_native(7, kit=kits.lean)
    params = remote_params()
    error = not_supported(lib.cleanup, params)
    assert error.call == "VixDiskLib_Cleanup" and "VixDiskLib_Cleanup" in str(error)
    assert not isinstance(error, NativeCleanupError)  # no counts: the library never ran
    assert not_supported(lib.prepare_for_access, params, "vddk-conformance").call == "VixDiskLib_PrepareForAccess"
    assert not_supported(lib.end_access, params, "vddk-conformance").call == "VixDiskLib_EndAccess"
    assert not_supported(lib.list_transport_modes).call == "VixDiskLib_ListTransportModes"
    with lib.connected(params) as conn, lib.opened(conn, disks.base) as parent, lib.opened(conn, disks.delta) as child:
        assert not_supported(lib.attach, parent, child).call == "VixDiskLib_Attach"
    assert double_state(lib)["live"] == "0"  # a refused call built no connect parameters it did not give back


def test_a_library_with_only_the_required_functions_backs_up(
    kits: Kits, make_native: MakeNative, disks: DiskSet, caplog: pytest.LogCaptureFixture
) -> None:
    """Without GetTransportMode the transport is unknown ("") and Open still works; without AllocateConnectParams
    and FreeConnectParams the parameters are a zeroed struct of ours."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        lib = make_native(7, kit=kits.core)
    lines = load_warnings(caplog)
    assert len(lines) == 1 and all(name in lines[0] for name in OPTIONAL), lines
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        assert lib.get_transport_mode(disk) == ""
        assert backup(lib, disk) == disks.contents
        assert not_supported(lib.flush, disk).call == "VixDiskLib_Flush"
        assert not_supported(lib.query_allocated_blocks, disk, 0, 1024, 128).call == "VixDiskLib_QueryAllocatedBlocks"
    opens = [r for r in lib.recorder.records() if r.call == "VixDiskLib_Open"]
    assert [(r.error, r.args["transport"]) for r in opens] == [(None, "")]
    state = double_state(lib)
    assert (state["allocated"], state["live"], state["disks"]) == ("0", "0", "0")


@pytest.mark.parametrize("kit", ["no_async", "no_wait", "core"])
def test_async_reads_without_the_trio_are_synchronous_with_correct_bytes_and_callbacks(
    kit: str, kits: Kits, make_native: MakeNative, disks: DiskSet, caplog: pytest.LogCaptureFixture
) -> None:
    """Without Wait (no_wait) the library's ReadAsync must not be used either: nothing could wait for it."""
    lib = make_native(7, kit=getattr(kits, kit))
    assert isinstance(lib.backend, NativeVixDiskLib) and not lib.backend.async_io
    caller = threading.get_ident()
    done: list[tuple[int, int, int]] = []

    def record(start: int, rc: int) -> None:
        done.append((start, rc, threading.get_ident()))

    def explode(rc: int) -> None:
        raise ZeroDivisionError(rc)

    buffers = {start: bytearray(64 * 1024) for start in (2048, 4096, 10240)}
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        for start, buffer in buffers.items():
            lib.read_async(disk, start, 128, buffer, partial(record, start))
            assert done[-1][0] == start  # called back before read_async returned
        lib.wait(disk)
        failed: list[int] = []
        lib.read_async(disk, SECTORS - 1, 2, bytearray(1024), failed.append)  # the error reaches the callback
        assert failed == [VixCode.DISK_OUTOFRANGE]
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            lib.read_async(disk, 0, 1, bytearray(512), explode)  # logged, never raised into the caller
        assert "async completion callback raised" in caplog.text
    assert [(s, rc, thread) for s, rc, thread in done] == [(s, 0, caller) for s in buffers]
    for start, buffer in buffers.items():
        assert bytes(buffer) == disks.contents[start * 512 : start * 512 + len(buffer)]
    assert len(COMPLETIONS) == 0


@pytest.mark.parametrize("kit", ["no_async", "core"])
def test_async_writes_without_the_trio_land_before_the_callback(
    kit: str, kits: Kits, make_native: MakeNative, disks: DiskSet
) -> None:
    lib = make_native(7, kit=getattr(kits, kit))
    results: list[int] = []
    data = bytes(range(256)) * 8
    with lib.connected(remote_params(), False) as conn, lib.opened(conn, disks.base, 0) as disk:
        lib.write_async(disk, 700, data, results.append)
        assert results == [0]
        lib.wait(disk)
        assert lib.read(disk, 700, 4) == data


# --- libraries lacking required functions, or answering VIX_OK without a handle ---


def test_a_library_without_read_and_write_is_refused_naming_both(kits: Kits) -> None:
    with pytest.raises(MissingSymbolError) as caught:
        NativeVixDiskLib("7.0.3", kits.no_io, 7)
    message = str(caught.value)
    assert "VixDiskLib_Read, VixDiskLib_Write" in message and "\n" not in message
    assert str(kits.no_io / "libvixDiskLib.so.7") in message and "needs VDDK" not in message


@pytest.mark.parametrize(("call", "what"), [("ConnectEx", "connection"), ("Open", "handle")])
def test_vix_ok_without_the_out_handle_is_an_error_and_the_null_goes_nowhere(
    call: str, what: str, make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7)
    nulls_before = double_state(lib)["null_args"]  # the double stays loaded: its counter spans tests
    monkeypatch.setenv("VIXDOUBLE_NULL_HANDLE", call)
    with pytest.raises(VixError) as caught, lib.connected(remote_params()) as conn:
        lib.open(conn, disks.base)
    monkeypatch.delenv("VIXDOUBLE_NULL_HANDLE")
    assert (caught.value.code, caught.value.call) == (VixCode.FAIL, f"VixDiskLib_{call}")
    assert f"VixDiskLib_{call} returned VIX_OK without a {what}" in str(caught.value)
    state = double_state(lib)
    assert state["null_args"] == nulls_before  # no Open, Disconnect, Close or GetTransportMode was handed the NULL
    assert (state["connections"], state["disks"], state["live"]) == ("0", "0", "0")


# --- preflight's probe follows the same rules ---


def probe_answer(libdir: Path) -> dict[str, object]:
    command = [sys.executable, "-m", "conformance.vixdisklib.native.probe", str(libdir), "7.0.3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(answer, dict)
    return answer


def test_the_probe_loads_a_library_lacking_optional_functions_and_names_them(kits: Kits) -> None:
    answer = probe_answer(kits.lean)
    assert answer["ok"] is True and answer["transports"] is None and answer["missing"] == sorted(LEAN)
    full = probe_answer(kits.flat)
    assert (full["ok"], full["missing"], full["transports"]) == (True, [], "file:san:hotadd:nbd:nbdssl")
    lines = library_problems("target t", kits.lean, "7.0.3", ("nbd", "nbdssl"))
    assert len(lines) == 1 and lines[0].startswith("warning: target t: vddk.libdir:"), lines
    assert all(name in lines[0] for name in LEAN) and "vddk.transports (nbd, nbdssl) not checked" in lines[0]


def test_the_probe_refuses_a_library_lacking_required_functions_naming_them_all(kits: Kits) -> None:
    answer = probe_answer(kits.no_io)
    assert answer["ok"] is False
    assert "VixDiskLib_Read, VixDiskLib_Write" in str(answer["problem"])
    lines = library_problems("target t", kits.no_io, "7.0.3", ("nbd",))
    assert len(lines) == 1 and not lines[0].startswith("warning:") and "VixDiskLib_Read, VixDiskLib_Write" in lines[0]
