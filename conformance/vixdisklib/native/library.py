"""The ctypes backend: VMware's libvixDiskLib.so.N (or a test double of it) behind the VixDiskLibBackend
protocol, one C call per method, failures raised as VixError with the library's own error text.

Loading follows nbdkit's VDDK plugin (see loader.py); struct layouts follow the library's major version
(abi.py). ctypes releases the GIL around every C call, so reads on different handles run in parallel.

Only the core a backup needs is required (symbols.py); a method whose optional function the library lacks raises
VixError VIX_E_NOT_SUPPORTED naming it, except where a backup product would carry on: GetTransportMode answers
"" (unknown), and async I/O without ReadAsync, WriteAsync and Wait is done synchronously with the completion
callback called before read_async/write_async return. A call that answers VIX_OK without its out handle is an
error here, so a NULL never reaches a later call.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.vixdisklib.backend import CompletionCallback
from conformance.vixdisklib.config import ConfigFileError, load_config
from conformance.vixdisklib.errors import VixCode, VixError, error_text
from conformance.vixdisklib.native import params as cparams
from conformance.vixdisklib.native.abi import VIX_ASYNC, VIX_OK, BlockList, blocks_of, info_struct
from conformance.vixdisklib.native.abi import connect_params_struct as params_layout
from conformance.vixdisklib.native.callbacks import (
    COMPLETIONS,
    LOG,
    ON_COMPLETE,
    PANIC,
    WARNING,
    begin_call,
    call_warnings,
    redact,
    take_announcement,
)
from conformance.vixdisklib.native.loader import find_mntapi, load
from conformance.vixdisklib.native.symbols import ASYNC_TRIO
from conformance.vixdisklib.types import SECTOR_SIZE, AdapterType, Block, ConnectParams, DiskInfo, Geometry

log = logging.getLogger("conformance.vixdisklib.native")

#: held while a library's InitEx runs with its `agent_env` in the process environment
_ENVIRONMENT_LOCK = threading.Lock()


@contextlib.contextmanager
def _environment(values: Mapping[str, str] | None) -> Iterator[None]:
    """`values` in os.environ ("" = unset) for the duration, restored afterwards; one library at a time."""
    if not values:
        yield
        return
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in values}
        try:
            for name, value in values.items():
                if value:
                    os.environ[name] = value
                else:
                    os.environ.pop(name, None)
            yield
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old


class NativeCleanupError(VixError):
    """VixDiskLib_Cleanup failed: carries numCleanedUp and numRemaining like the C API."""

    def __init__(self, code: int, cleaned: int, remaining: int, detail: str) -> None:
        super().__init__(code, "VixDiskLib_Cleanup", detail)
        self.cleaned = cleaned
        self.remaining = remaining

    def __reduce__(self) -> Any:
        return (type(self), (self.raw, self.cleaned, self.remaining, self.text))


class LibraryBuildMismatchError(VixError):
    """The loaded library announces another VDDK release than the run is configured for (one line).

    Why the run refuses rather than warns: expectations (the catalog) follow the configured build, so a run
    with a library of another release would judge it by the wrong expectations. InitEx is undone first.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(VixCode.FAIL, "VixDiskLib_InitEx", detail)

    def __reduce__(self) -> Any:
        return (type(self), (self.text,))


def _release_of(build: str) -> str | None:
    match = re.match(r"\s*(?:vddk\s*)?(\d+\.\d+\.\d+)", build, re.IGNORECASE)
    return match.group(1) if match else None


@dataclass
class NativeConnection:
    raw: int
    params: cparams.CParams


@dataclass
class NativeHandle:
    raw: int
    path: str
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


class NativeVixDiskLib:
    """A VixDiskLibBackend over libvixDiskLib.so.N found under `libdir` (major N, or the newest found)."""

    name = "native"

    def __init__(
        self, build: str, libdir: Path, major: int | None = None, agent_env: Mapping[str, str] | None = None
    ) -> None:
        #: the build the library announces at InitEx (until then, and if it announces none: the configured one)
        self.build = build
        self.configured_build = build
        #: (version, build number) from the library's "VMware VixDiskLib (x.y.z) Release build-n" log line
        self.announced: tuple[str, str] | None = None
        self.libdir = Path(libdir)
        #: where the library keeps its session state (what Cleanup in another process must be told), as far as
        #: the harness can know it: the InitEx configuration's tmpDirectory, else the default the simulated C
        #: library plays; "" for VMware's own default (set at InitEx)
        self.tmp_directory = ""
        #: the environment InitEx runs with (the simulated libvixDiskLib.so configures its private agent from it
        #: at InitEx: shim/kit.py); None for VMware's library, which reads no such thing
        self.agent_env = dict(agent_env) if agent_env is not None else None
        self.loaded = load(self.libdir, major)
        self.major = self.loaded.major
        self.path = self.loaded.path
        self.symbols = self.loaded.symbols
        self.info_type = info_struct(self.major)
        self.params_type = params_layout(self.major, self.symbols.has("VixDiskLib_AllocateConnectParams"))
        #: one line per feature off because the library lacks an optional symbol
        self.features_off = self.symbols.feature_off()
        #: the optional symbols the library lacks
        self.missing = sorted(self.symbols.missing)
        #: async calls go to the library only when it has the whole trio; otherwise they are done synchronously
        self.async_io = all(self.symbols.has(name) for name in ASYNC_TRIO)
        #: libvixMntapi.so.N of the same kit, if present (bind it with native.mntapi.NativeMntApi)
        self.mntapi_path = find_mntapi(self.libdir, self.major)

    def __repr__(self) -> str:
        return f"NativeVixDiskLib({str(self.path)!r}, build={self.build!r})"

    def _fn(self, name: str) -> Any:
        """The bound C function (calling it starts a new record of the warnings the library logs on this thread:
        `_failure_text`); VixError VIX_E_NOT_SUPPORTED naming it when the library lacks it."""
        function = self.symbols[name]

        def call(*args: Any) -> Any:
            begin_call()
            return function(*args)

        return call

    def _failure_text(self, rc: int) -> str:
        """The library's text for a failed call: GetErrorText's words for the code, followed by the warnings it
        logged on this thread during the call (its reason, which the C API carries only in the log)."""
        logged = [line.strip() for line in call_warnings() if line.strip()]  # before GetErrorText, a call itself
        text = self.get_error_text(rc)
        if not logged:
            return text
        return f"{text} (the library logged: {' | '.join(line[:500] for line in logged)})"

    def _check(self, rc: int, call: str) -> None:
        if rc != VIX_OK:
            raise VixError(rc, call, self._failure_text(rc))

    # --- library ---

    def init_ex(self, major: int, minor: int, lib_dir: Path | None, config_file: Path | None) -> None:
        """InitEx with our log callbacks; libDir defaults to the kit folder (as nbdkit passes its libdir), so
        the library finds its own plugins and message catalogs there."""
        lib_dir = lib_dir or self.libdir
        take_announcement()  # forget what another library said before this InitEx
        with _environment(self.agent_env):
            rc = self._fn("VixDiskLib_InitEx")(
                major,
                minor,
                LOG,
                WARNING,
                PANIC,
                str(lib_dir).encode(),
                str(config_file).encode() if config_file else None,
            )
        self._check(rc, "VixDiskLib_InitEx")
        log.info("%s initialised (VixDiskLib %d.%d requested)", self.path, major, minor)
        self.tmp_directory = self._tmp_directory(config_file)
        self._adopt_announced_build()

    def _tmp_directory(self, config_file: Path | None) -> str:
        """The tmpDirectory of the InitEx configuration (relative: to this process's folder, as the library
        reads it), else the simulated C library's played default for this process; "" when neither applies."""
        configured = None
        if config_file is not None:
            try:
                configured = load_config(config_file).tmp_directory
            except ConfigFileError:
                configured = None  # the library warned about it in its own log
        if configured is not None:
            return str(configured if configured.is_absolute() else Path.cwd() / configured)
        if self.agent_env is not None:
            from conformance.vixdisklib.shim.kit import played_tmp_directory

            return str(played_tmp_directory(self.agent_env, os.getpid()))
        return ""

    def _adopt_announced_build(self) -> None:
        """The build is what the loaded library says it is, not what the run was told; a different release
        than the configured one refuses the run (``LibraryBuildMismatchError``)."""
        self.announced = take_announcement()
        if self.announced is None:
            log.warning("%s announced no version at InitEx; taking the configured build %s", self.path, self.build)
            return
        version, number = self.announced
        if _release_of(self.configured_build) != version:
            self._fn("VixDiskLib_Exit")()
            raise LibraryBuildMismatchError(
                f"{self.path} announces VDDK {version} (build-{number}), the run is configured for "
                f"{self.configured_build} (fix: point the libdir at a {self.configured_build} kit or pass "
                f"--vddk-build {version})"
            )
        if "ep" not in self.configured_build.lower():  # an express patch ("6.5.2 EP1") is not in the line
            self.build = version

    def exit(self) -> None:
        self._fn("VixDiskLib_Exit")()

    def list_transport_modes(self) -> str:
        """The modes the kit offers; VIX_E_NOT_SUPPORTED when it cannot list them (nothing to guess from)."""
        return _text(self._fn("VixDiskLib_ListTransportModes")()) or ""

    def get_error_text(self, code: int) -> str:
        """The library's own text for `code` (our table's only if the library returns NULL)."""
        pointer = self._fn("VixDiskLib_GetErrorText")(code, None)
        if not pointer:
            return error_text(code)
        try:
            return redact(ctypes.string_at(pointer).decode("utf-8", "replace"))
        finally:
            self._fn("VixDiskLib_FreeErrorText")(pointer)

    # --- connections ---

    def connect_ex(
        self, params: ConnectParams, read_only: bool, snapshot_ref: str | None, transport_modes: str | None
    ) -> NativeConnection:
        c = cparams.build(self.symbols, self.params_type, params)
        out = ctypes.c_void_p()
        try:
            rc = self._fn("VixDiskLib_ConnectEx")(
                c.address,
                b"\x01" if read_only else b"\x00",
                snapshot_ref.encode() if snapshot_ref else None,
                transport_modes.encode() if transport_modes else None,
                ctypes.byref(out),
            )
            self._check(rc, "VixDiskLib_ConnectEx")
            if not out.value:  # a NULL connection must never reach Open or Disconnect
                raise VixError(
                    VixCode.FAIL,
                    "VixDiskLib_ConnectEx",
                    "VixDiskLib_ConnectEx returned VIX_OK without a connection (a library bug)",
                )
        except BaseException:
            cparams.release(self.symbols, c)
            raise
        return NativeConnection(out.value, c)

    def disconnect(self, connection: NativeConnection) -> None:
        try:
            self._check(self._fn("VixDiskLib_Disconnect")(connection.raw), "VixDiskLib_Disconnect")
        finally:
            cparams.release(self.symbols, connection.params)

    def _with_params(self, params: ConnectParams, call: Any) -> Any:
        c = cparams.build(self.symbols, self.params_type, params)
        try:
            return call(c.address)
        finally:
            cparams.release(self.symbols, c)

    # the function is looked up before the struct is built: a missing one costs no allocation
    def prepare_for_access(self, params: ConnectParams, identity: str) -> None:
        prepare = self._fn("VixDiskLib_PrepareForAccess")
        self._check(self._with_params(params, lambda p: prepare(p, identity.encode())), "VixDiskLib_PrepareForAccess")

    def end_access(self, params: ConnectParams, identity: str) -> None:
        end = self._fn("VixDiskLib_EndAccess")
        self._check(self._with_params(params, lambda p: end(p, identity.encode())), "VixDiskLib_EndAccess")

    def cleanup(self, params: ConnectParams) -> tuple[int, int]:
        clean = self._fn("VixDiskLib_Cleanup")
        cleaned, remaining = ctypes.c_uint32(), ctypes.c_uint32()
        rc = self._with_params(params, lambda p: clean(p, ctypes.byref(cleaned), ctypes.byref(remaining)))
        if rc != VIX_OK:
            text = f"{self._failure_text(rc)} ({cleaned.value} cleaned up, {remaining.value} remaining)"
            raise NativeCleanupError(rc, cleaned.value, remaining.value, text)
        return cleaned.value, remaining.value

    # --- disks ---

    def open(self, connection: NativeConnection, path: str, flags: int) -> NativeHandle:
        out = ctypes.c_void_p()
        rc = self._fn("VixDiskLib_Open")(connection.raw, path.encode("utf-8"), flags, ctypes.byref(out))
        self._check(rc, "VixDiskLib_Open")
        if not out.value:  # a NULL handle must never reach Read, Close or GetTransportMode
            raise VixError(
                VixCode.FAIL,
                "VixDiskLib_Open",
                f"VixDiskLib_Open returned VIX_OK without a handle for {path} (a library bug)",
            )
        return NativeHandle(out.value, path)

    def close(self, handle: NativeHandle) -> None:
        with handle._lock:
            if handle.closed:
                return
            self._check(self._fn("VixDiskLib_Close")(handle.raw), "VixDiskLib_Close")
            handle.closed = True

    def get_info(self, handle: NativeHandle) -> DiskInfo:
        out = ctypes.c_void_p()
        self._check(self._fn("VixDiskLib_GetInfo")(handle.raw, ctypes.byref(out)), "VixDiskLib_GetInfo")
        try:
            info = self.info_type.from_address(out.value or 0)
            sizes = (int(info.logicalSectorSize), int(info.physicalSectorSize)) if self.major >= 7 else (None, None)
            try:
                adapter = AdapterType(int(info.adapterType))
            except ValueError:
                adapter = AdapterType.UNKNOWN
            return DiskInfo(
                capacity=int(info.capacity),
                bios_geometry=Geometry(info.biosGeo.cylinders, info.biosGeo.heads, info.biosGeo.sectors),
                phys_geometry=Geometry(info.physGeo.cylinders, info.physGeo.heads, info.physGeo.sectors),
                adapter_type=adapter,
                num_links=int(info.numLinks),
                parent_file_name_hint=_text(info.parentFileNameHint),
                uuid=_text(info.uuid),
                logical_sector_size=sizes[0],
                physical_sector_size=sizes[1],
            )
        finally:
            self._fn("VixDiskLib_FreeInfo")(out)

    def get_transport_mode(self, handle: NativeHandle) -> str:
        """The transport Open chose; "" (unknown) when the library returns NULL or lacks the function: the facade
        asks at every Open, and a backup does not stop for want of a label."""
        if not self.symbols.has("VixDiskLib_GetTransportMode"):
            return ""
        return _text(self._fn("VixDiskLib_GetTransportMode")(handle.raw)) or ""

    def read(self, handle: NativeHandle, start_sector: int, num_sectors: int) -> bytes:
        buffer = ctypes.create_string_buffer(num_sectors * SECTOR_SIZE)
        rc = self._fn("VixDiskLib_Read")(handle.raw, start_sector, num_sectors, buffer)
        self._check(rc, "VixDiskLib_Read")
        return buffer.raw

    def write(self, handle: NativeHandle, start_sector: int, data: bytes) -> None:
        payload = bytes(data)
        rc = self._fn("VixDiskLib_Write")(handle.raw, start_sector, len(payload) // SECTOR_SIZE, payload)
        self._check(rc, "VixDiskLib_Write")

    def read_async(
        self, handle: NativeHandle, start_sector: int, num_sectors: int, buffer: bytearray, callback: CompletionCallback
    ) -> None:
        size = num_sectors * SECTOR_SIZE
        if len(buffer) < size:
            raise VixError(VixCode.INVALID_ARG, "VixDiskLib_ReadAsync", f"buffer of {len(buffer)} bytes < {size}")
        target = (ctypes.c_char * size).from_buffer(buffer)  # the library writes straight into `buffer`
        self._submit("VixDiskLib_ReadAsync", handle, start_sector, num_sectors, target, callback)

    def write_async(self, handle: NativeHandle, start_sector: int, data: bytes, callback: CompletionCallback) -> None:
        source = ctypes.create_string_buffer(bytes(data), len(data))
        self._submit("VixDiskLib_WriteAsync", handle, start_sector, len(data) // SECTOR_SIZE, source, callback)

    def _submit(self, call: str, handle: NativeHandle, start: int, count: int, buffer: Any, callback: Any) -> None:
        if not self.async_io:  # done now with Read/Write; the result goes to the callback like a completion's
            sync = "VixDiskLib_Read" if call == "VixDiskLib_ReadAsync" else "VixDiskLib_Write"
            rc = self._fn(sync)(handle.raw, start, count, buffer)
            COMPLETIONS.fire(COMPLETIONS.add(callback, buffer), rc)  # a raising callback is logged, as from C
            return
        token = COMPLETIONS.add(callback, buffer)  # before the call: the callback may come first
        rc = self._fn(call)(handle.raw, start, count, buffer, ON_COMPLETE, token)
        if rc != VIX_ASYNC:
            COMPLETIONS.discard(token)
            self._check(rc, call)  # VIX_OK without queueing would be a library bug; treat as done

    def wait(self, handle: NativeHandle) -> None:
        """Waits for the library's async operations; without the async trio nothing is ever pending."""
        if not self.async_io:
            return
        self._check(self._fn("VixDiskLib_Wait")(handle.raw), "VixDiskLib_Wait")

    def flush(self, handle: NativeHandle) -> None:
        self._check(self._fn("VixDiskLib_Flush")(handle.raw), "VixDiskLib_Flush")

    def query_allocated_blocks(
        self, handle: NativeHandle, start_sector: int, num_sectors: int, chunk_size: int
    ) -> list[Block]:
        call = "VixDiskLib_QueryAllocatedBlocks"
        if not (self.symbols.has(call) and self.symbols.has("VixDiskLib_FreeBlockList")):
            raise VixError(VixCode.NOT_SUPPORTED, call, f"{call} is not in {self.path.name} (it needs VDDK 6.7)")
        out = ctypes.c_void_p()
        self._check(self._fn(call)(handle.raw, start_sector, num_sectors, chunk_size, ctypes.byref(out)), call)
        try:
            pairs = blocks_of(ctypes.cast(out, ctypes.POINTER(BlockList))) if out.value else []
        finally:
            self._fn("VixDiskLib_FreeBlockList")(out)
        return [Block(offset, length) for offset, length in pairs]

    def attach(self, parent: NativeHandle, child: NativeHandle) -> None:
        self._check(self._fn("VixDiskLib_Attach")(parent.raw, child.raw), "VixDiskLib_Attach")
