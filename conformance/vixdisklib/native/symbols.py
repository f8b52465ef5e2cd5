"""Exact C prototypes of the VixDiskLib functions the backend calls, and which of them a library must have.

Why only a core is required: the harness must load what a backup product would load. nbdkit's VDDK plugin, for
as long as it accepted libraries older than 6.7, dlsym'd as required only the calls without which no backup can
run (InitEx, Exit, ConnectEx, Disconnect, Open, Close, GetInfo, FreeInfo, Read, Write, GetErrorText,
FreeErrorText) and treated the rest as optional (Flush, QueryAllocatedBlocks, FreeBlockList,
AllocateConnectParams; for a while also ReadAsync, WriteAsync and Wait). The harness requires exactly those twelve:
with them a backup connects, opens, sizes, reads, writes and explains its failures. It additionally treats as
optional what nbdkit required but the harness can live without: GetTransportMode (the transport is then unknown)
and FreeConnectParams (only ever paired with AllocateConnectParams; without the pair a zeroed struct of our own is
used). Everything else (ListTransportModes, async I/O, Flush, Attach, PrepareForAccess/EndAccess, Cleanup,
QueryAllocatedBlocks) is a feature that is off when its symbol is absent: calling it raises VixError
VIX_E_NOT_SUPPORTED naming the function, and loading logs one warning line naming every missing symbol.

A library without a required symbol is refused in one line naming every missing one and the file: no release
number is blamed, since a missing Read is a broken or foreign library, not an old one.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char, c_char_p, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.native.abi import CompletionCB, LogFunc, SectorType
from conformance.vixdisklib.native.abi import VixError as CVixError

_P = c_void_p  # opaque handles and struct pointers the backend casts itself


@dataclass(frozen=True)
class Prototype:
    restype: Any
    argtypes: tuple[Any, ...]
    #: None for a required symbol, else the feature that is off without it
    feature: str | None = None


ASYNC_IO = "asynchronous I/O (emulated with synchronous Read/Write)"
ACCESS = "PrepareForAccess/EndAccess (vMotion is not blocked during a backup)"
QUERY = "QueryAllocatedBlocks (6.7+)"
#: only with both: a struct allocated without its Free would leak (params.library_allocates)
CONNECT_PARAMS = "library-allocated connect parameters (6.7+, a zeroed struct of ours instead)"
#: every async call goes through the library only when all three exist: without Wait nothing can be waited for
ASYNC_TRIO = ("VixDiskLib_ReadAsync", "VixDiskLib_WriteAsync", "VixDiskLib_Wait")

PROTOTYPES: dict[str, Prototype] = {
    "VixDiskLib_InitEx": Prototype(CVixError, (c_uint32, c_uint32, LogFunc, LogFunc, LogFunc, c_char_p, c_char_p)),
    "VixDiskLib_Exit": Prototype(None, ()),
    "VixDiskLib_ListTransportModes": Prototype(c_char_p, (), feature="listing transport modes"),
    "VixDiskLib_ConnectEx": Prototype(CVixError, (_P, c_char, c_char_p, c_char_p, POINTER(c_void_p))),
    "VixDiskLib_Disconnect": Prototype(CVixError, (_P,)),
    "VixDiskLib_Open": Prototype(CVixError, (_P, c_char_p, c_uint32, POINTER(c_void_p))),
    "VixDiskLib_Close": Prototype(CVixError, (_P,)),
    "VixDiskLib_GetInfo": Prototype(CVixError, (_P, POINTER(c_void_p))),
    "VixDiskLib_FreeInfo": Prototype(None, (_P,)),
    "VixDiskLib_GetTransportMode": Prototype(c_char_p, (_P,), feature="the transport Open chose (unknown)"),
    "VixDiskLib_Read": Prototype(CVixError, (_P, SectorType, SectorType, _P)),
    "VixDiskLib_Write": Prototype(CVixError, (_P, SectorType, SectorType, _P)),
    "VixDiskLib_ReadAsync": Prototype(CVixError, (_P, SectorType, SectorType, _P, CompletionCB, _P), feature=ASYNC_IO),
    "VixDiskLib_WriteAsync": Prototype(CVixError, (_P, SectorType, SectorType, _P, CompletionCB, _P), feature=ASYNC_IO),
    "VixDiskLib_Wait": Prototype(CVixError, (_P,), feature=ASYNC_IO),
    "VixDiskLib_Flush": Prototype(CVixError, (_P,), feature="Flush"),
    "VixDiskLib_Attach": Prototype(CVixError, (_P, _P), feature="Attach"),
    "VixDiskLib_PrepareForAccess": Prototype(CVixError, (_P, c_char_p), feature=ACCESS),
    "VixDiskLib_EndAccess": Prototype(CVixError, (_P, c_char_p), feature=ACCESS),
    "VixDiskLib_Cleanup": Prototype(
        CVixError, (_P, POINTER(c_uint32), POINTER(c_uint32)), feature="Cleanup of stale sessions"
    ),
    "VixDiskLib_GetErrorText": Prototype(c_void_p, (c_uint64, c_char_p)),  # char *, freed with FreeErrorText
    "VixDiskLib_FreeErrorText": Prototype(None, (c_void_p,)),
    "VixDiskLib_FreeConnectParams": Prototype(None, (_P,), feature=CONNECT_PARAMS),
    "VixDiskLib_QueryAllocatedBlocks": Prototype(
        CVixError, (_P, SectorType, SectorType, SectorType, POINTER(c_void_p)), feature=QUERY
    ),
    "VixDiskLib_FreeBlockList": Prototype(CVixError, (_P,), feature=QUERY),
    "VixDiskLib_AllocateConnectParams": Prototype(c_void_p, (), feature=CONNECT_PARAMS),
}


class MissingSymbolError(OSError):
    """Required functions are not in the library: the one-line message names every one and the file."""


@dataclass
class Symbols:
    """The bound functions of one loaded library, by C name; optional ones absent are in `missing`."""

    path: Path
    functions: dict[str, Any]
    #: missing optional symbol -> the feature that is off without it
    missing: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        """The bound function; a missing optional one raises VixError VIX_E_NOT_SUPPORTED naming it (not KeyError:
        the caller asked for a feature this library does not have)."""
        if name in self.missing:
            raise VixError(
                VixCode.NOT_SUPPORTED, name, f"{name} is not in {self.path.name}: {self.missing[name]} is off"
            )
        return self.functions[name]

    def has(self, name: str) -> bool:
        return name in self.functions

    def feature_off(self) -> list[str]:
        """One line per missing optional symbol and the feature it turns off."""
        return [f"{name} not in {self.path.name}: {feature} off" for name, feature in sorted(self.missing.items())]

    def warning(self) -> str | None:
        """The one line loading logs: every missing optional symbol, then every feature off (None: nothing missing);
        features are joined with "; ", so none of them contains one."""
        if not self.missing:
            return None
        names = sorted(self.missing)
        features = list(dict.fromkeys(self.missing[name] for name in names))
        return (
            f"{self.path} lacks {len(names)} optional symbol(s) {', '.join(names)}; "
            f"off or degraded: {'; '.join(features)}"
        )


def bind(
    library: ctypes.CDLL, path: Path, prototypes: dict[str, Prototype] | None = None, needs: str | None = None
) -> Symbols:
    """Look up every prototype (VixDiskLib's by default) in `library`; missing required symbols raise
    MissingSymbolError naming all of them (and `needs`, what the caller's API demands, when given)."""
    functions: dict[str, Any] = {}
    missing: dict[str, str] = {}
    absent: list[str] = []
    for name, prototype in (PROTOTYPES if prototypes is None else prototypes).items():
        try:
            function = getattr(library, name)
        except AttributeError:
            if prototype.feature is None:
                absent.append(name)
            else:
                missing[name] = prototype.feature
            continue
        function.restype = prototype.restype
        function.argtypes = list(prototype.argtypes)
        functions[name] = function
    if absent:
        hint = f" ({needs} has them)" if needs else ""
        raise MissingSymbolError(f"{path} lacks required symbol(s) {', '.join(absent)}{hint}: it cannot be used")
    return Symbols(path, functions, missing)
