"""Async completion callbacks from the library's own thread, fault injection surfacing as VixError, the
library's log/warning/panic callbacks reaching Python logging, and passwords never reaching a log."""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable

import pytest

from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.native.callbacks import COMPLETIONS
from conformance.vixdisklib.native.library import NativeVixDiskLib
from tests.native.conftest import PASSWORD, DiskSet, MakeNative, remote_params

MiB = 1024 * 1024


def test_async_reads_complete_on_another_thread(make_native: MakeNative, disks: DiskSet) -> None:
    lib = make_native(7)
    caller = threading.get_ident()
    done: list[tuple[int, int, int]] = []
    buffers = {start: bytearray(64 * 1024) for start in (2048, 4096, 10240)}

    def completion(start: int) -> Callable[[int], None]:
        return lambda rc: done.append((start, rc, threading.get_ident()))

    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk:
        for start, buffer in buffers.items():
            lib.read_async(disk, start, 128, buffer, completion(start))
        lib.wait(disk)
        assert len(COMPLETIONS) == 0
    assert sorted(s for s, _, _ in done) == sorted(buffers)
    assert all(rc == 0 for _, rc, _ in done)
    assert all(thread != caller for _, _, thread in done), "completions must come from the library's thread"
    for start, buffer in buffers.items():
        assert bytes(buffer) == disks.contents[start * 512 : start * 512 + len(buffer)]


def test_the_buffer_stays_pinned_until_the_completion(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the library may still write into it, the bytearray cannot be resized (or freed)."""
    monkeypatch.setenv("VIXDOUBLE_READ_DELAY_MS", "600")
    lib = make_native(7)
    buffer = bytearray(512)
    finished = threading.Event()
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.base) as disk:
        lib.read_async(disk, 2048, 1, buffer, lambda rc: finished.set())
        with pytest.raises(BufferError):
            buffer.extend(b"x")
        lib.wait(disk)
    assert finished.is_set()
    buffer.extend(b"x")  # released after the callback
    assert bytes(buffer[:512]) == disks.contents[MiB : MiB + 512]


def test_async_write_then_read_back(make_native: MakeNative, disks: DiskSet) -> None:
    lib = make_native(8)
    results: list[int] = []
    data = bytes(range(256)) * 8
    with lib.connected(remote_params(), False) as conn, lib.opened(conn, disks.base, 0) as disk:
        lib.write_async(disk, 700, data, results.append)
        lib.flush(disk)  # Flush waits for outstanding async writes
        assert results == [0]
        assert lib.read(disk, 700, 4) == data


def test_async_errors_immediate_and_deferred(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7)
    results: list[int] = []
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.base) as disk:
        with pytest.raises(VixError) as caught:  # refused at submission: no callback ever
            lib.read_async(disk, 16383, 2, bytearray(1024), results.append)
        assert (caught.value.code, caught.value.call) == (VixCode.DISK_OUTOFRANGE, "VixDiskLib_ReadAsync")
        with pytest.raises(VixError, match="buffer of 100 bytes"):
            lib.read_async(disk, 0, 1, bytearray(100), results.append)
        monkeypatch.setenv("VIXDOUBLE_FAIL_READ", "2:14011")  # the 2nd read since InitEx
        lib.read_async(disk, 0, 1, bytearray(512), results.append)
        lib.read_async(disk, 1, 1, bytearray(512), results.append)
        lib.wait(disk)
    assert results == [0, 14011]
    assert len(COMPLETIONS) == 0


def test_injected_read_failure_is_a_vix_error_with_the_library_text(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(6)
    monkeypatch.setenv("VIXDOUBLE_FAIL_READ", "3:16002")
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.base) as disk:
        lib.read(disk, 0, 1)
        lib.read(disk, 0, 1)
        with pytest.raises(VixError) as caught:
            lib.read(disk, 0, 1)
        assert lib.read(disk, 0, 1) == bytes(512)  # only the 3rd one fails
    assert (caught.value.code, caught.value.call) == (16002, "VixDiskLib_Read")
    # the double has no text for the code (its own words), then the reason it logged on the calling thread
    assert caught.value.text == "Unknown error code 16002 (the library logged: Read 3: injected failure 16002)"


def test_injected_write_failure_surfaces_from_sync_and_async_writes(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(8)
    results: list[int] = []
    monkeypatch.setenv("VIXDOUBLE_FAIL_WRITE", "1:8")  # VIX_E_DISK_FULL
    with lib.connected(remote_params(), False) as conn, lib.opened(conn, disks.base, 0) as disk:
        with pytest.raises(VixError) as caught:
            lib.write(disk, 0, bytes(512))
        monkeypatch.setenv("VIXDOUBLE_FAIL_WRITE", "3:14011")
        lib.write(disk, 0, bytes(512))
        lib.write_async(disk, 0, bytes(512), results.append)
        lib.wait(disk)
    assert (caught.value.code, caught.value.name, caught.value.call) == (8, "DISK_FULL", "VixDiskLib_Write")
    assert results == [14011]


@pytest.mark.parametrize(("variable", "code", "call"), [("VIXDOUBLE_FAIL_OPEN", 14009, "VixDiskLib_Open")])
def test_injected_open_failure(
    variable: str, code: int, call: str, make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7)
    with lib.connected(remote_params()) as conn:
        monkeypatch.setenv(variable, str(code))
        with pytest.raises(VixError) as caught:
            lib.open(conn, disks.base)
    assert (caught.value.code, caught.value.call, caught.value.name) == (code, call, "HOST_NETWORK_CONN_REFUSED")


def test_injected_connect_failure_frees_the_parameters(
    make_native: MakeNative, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = make_native(7)
    monkeypatch.setenv("VIXDOUBLE_FAIL_CONNECT", "35")
    with pytest.raises(VixError) as caught:
        lib.connect_ex(remote_params())
    assert (caught.value.code, caught.value.name) == (35, "AUTHENTICATION_FAIL")


def test_slow_reads_run_in_parallel_outside_the_gil(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read sleeps 400 ms in C; two handles read at once take ~400 ms, not 800 (ctypes drops the GIL)."""
    monkeypatch.setenv("VIXDOUBLE_READ_DELAY_MS", "400")
    lib = make_native(7)
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.base) as a, lib.opened(conn, disks.base) as b:
        started = time.monotonic()
        lib.read(a, 0, 1)
        single = time.monotonic() - started
        threads = [threading.Thread(target=lib.read, args=(disk, 0, 1)) for disk in (a, b)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        both = time.monotonic() - started
    assert single >= 0.4
    assert both < 0.7, f"two 400 ms reads on two threads took {both:.2f} s"


def test_wrong_thumbprint_fails_open_with_vix_e_fail(
    make_native: MakeNative, disks: DiskSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIXDOUBLE_THUMBPRINT", "11:22:33")
    lib = make_native(7)
    with lib.connected(remote_params()) as conn, pytest.raises(VixError) as caught:
        lib.open(conn, disks.base)
    assert (caught.value.code, caught.value.text) == (VixCode.FAIL, "Unknown error")


def test_library_log_warning_and_panic_reach_python_logging(
    make_native: MakeNative, disks: DiskSet, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="conformance.vixdisklib.native")
    lib = make_native(7)
    monkeypatch.setenv("VIXDOUBLE_FAIL_READ", "1:14011")
    with lib.connected(remote_params()) as conn, lib.opened(conn, disks.delta) as disk, pytest.raises(VixError):
        lib.read(disk, 0, 1)
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib)
    backend.loaded.cdll.VixDouble_Panic(b"disk 7 is on fire")
    by_level = {(r.levelname, r.getMessage()) for r in caplog.records if r.name.endswith(".vddk")}
    tmp_directory = disks.root.parent / "vddk-tmp"
    # libDir: the kit folder, which the backend passes when the caller names none (as nbdkit does)
    assert (
        "INFO",
        f"VixDiskLib double 7 (requested 7.0) initialised; libDir={backend.libdir} tmpDirectory={tmp_directory}",
    ) in by_level
    assert ("INFO", f"Open: {disks.delta} (2 links) over nbd, read-only") in by_level  # va_list formatting of %d
    assert ("WARNING", "Read 1: injected failure 14011") in by_level
    assert ("CRITICAL", "PANIC: disk 7 is on fire") in by_level


def test_passwords_never_reach_a_log(
    make_native: MakeNative, disks: DiskSet, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    lib = make_native(7)
    backend = lib.backend
    assert isinstance(backend, NativeVixDiskLib)
    params = remote_params()
    lib.prepare_for_access(params, "vddk-conformance")
    with lib.connected(params) as conn, lib.opened(conn, disks.base) as disk:
        lib.read(disk, 0, 1)
        # even if the library itself printed the password, the callback masks it while it is in use
        backend.loaded.cdll.VixDouble_Panic(f"login with {PASSWORD} failed".encode())
    lib.end_access(params, "vddk-conformance")
    lib.cleanup(params)
    monkeypatch.setenv("VIXDOUBLE_FAIL_CONNECT", "35")
    with pytest.raises(VixError) as caught:
        lib.connect_ex(params)
    assert PASSWORD not in str(caught.value)
    assert "login with ******** failed" in caplog.text
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in str(r.args) for r in caplog.records)


def test_the_log_callbacks_live_as_long_as_the_process() -> None:
    """The trampolines InitEx receives are module globals: a collected CFUNCTYPE would be a dangling pointer."""
    from conformance.vixdisklib.native import callbacks

    for trampoline in (callbacks.LOG, callbacks.WARNING, callbacks.PANIC, callbacks.ON_COMPLETE):
        assert ctypes.cast(trampoline, ctypes.c_void_p).value
    assert callbacks.format_message(b"%s has %d links", None) == "%s has %d links"
