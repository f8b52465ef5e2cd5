"""Exact C prototypes of the VixDiskLib functions the backend calls, and which of them a library must have.

Required symbols are those of VDDK 6.5 (the oldest library whose async callback ABI the harness speaks);
a library without one of them is refused in one line naming the symbol and the file. Optional symbols
arrived later (6.7: QueryAllocatedBlocks, FreeBlockList, AllocateConnectParams); without one, the feature
it carries is off and `feature_off()` says why.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_char, c_char_p, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.vixdisklib.native.abi import CompletionCB, LogFunc, SectorType, VixError

_P = c_void_p  # opaque handles and struct pointers the backend casts itself


@dataclass(frozen=True)
class Prototype:
    restype: Any
    argtypes: tuple[Any, ...]
    #: None for a required symbol, else the feature that is off without it
    feature: str | None = None


PROTOTYPES: dict[str, Prototype] = {
    "VixDiskLib_InitEx": Prototype(VixError, (c_uint32, c_uint32, LogFunc, LogFunc, LogFunc, c_char_p, c_char_p)),
    "VixDiskLib_Exit": Prototype(None, ()),
    "VixDiskLib_ListTransportModes": Prototype(c_char_p, ()),
    "VixDiskLib_ConnectEx": Prototype(VixError, (_P, c_char, c_char_p, c_char_p, POINTER(c_void_p))),
    "VixDiskLib_Disconnect": Prototype(VixError, (_P,)),
    "VixDiskLib_Open": Prototype(VixError, (_P, c_char_p, c_uint32, POINTER(c_void_p))),
    "VixDiskLib_Close": Prototype(VixError, (_P,)),
    "VixDiskLib_GetInfo": Prototype(VixError, (_P, POINTER(c_void_p))),
    "VixDiskLib_FreeInfo": Prototype(None, (_P,)),
    "VixDiskLib_GetTransportMode": Prototype(c_char_p, (_P,)),
    "VixDiskLib_Read": Prototype(VixError, (_P, SectorType, SectorType, _P)),
    "VixDiskLib_Write": Prototype(VixError, (_P, SectorType, SectorType, _P)),
    "VixDiskLib_ReadAsync": Prototype(VixError, (_P, SectorType, SectorType, _P, CompletionCB, _P)),
    "VixDiskLib_WriteAsync": Prototype(VixError, (_P, SectorType, SectorType, _P, CompletionCB, _P)),
    "VixDiskLib_Wait": Prototype(VixError, (_P,)),
    "VixDiskLib_Flush": Prototype(VixError, (_P,)),
    "VixDiskLib_Attach": Prototype(VixError, (_P, _P)),
    "VixDiskLib_PrepareForAccess": Prototype(VixError, (_P, c_char_p)),
    "VixDiskLib_EndAccess": Prototype(VixError, (_P, c_char_p)),
    "VixDiskLib_Cleanup": Prototype(VixError, (_P, POINTER(c_uint32), POINTER(c_uint32))),
    "VixDiskLib_GetErrorText": Prototype(c_void_p, (c_uint64, c_char_p)),  # char *, freed with FreeErrorText
    "VixDiskLib_FreeErrorText": Prototype(None, (c_void_p,)),
    "VixDiskLib_FreeConnectParams": Prototype(None, (_P,)),
    "VixDiskLib_QueryAllocatedBlocks": Prototype(
        VixError, (_P, SectorType, SectorType, SectorType, POINTER(c_void_p)), feature="QueryAllocatedBlocks (6.7+)"
    ),
    "VixDiskLib_FreeBlockList": Prototype(VixError, (_P,), feature="QueryAllocatedBlocks (6.7+)"),
    "VixDiskLib_AllocateConnectParams": Prototype(
        c_void_p, (), feature="library-allocated connect parameters (6.7+); using a zeroed struct instead"
    ),
}


class MissingSymbolError(OSError):
    """A required VixDiskLib function is not in the library: the one-line message names both."""


@dataclass
class Symbols:
    """The bound functions of one loaded library, by C name; optional ones absent are in `missing`."""

    path: Path
    functions: dict[str, Any]
    missing: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.functions[name]

    def has(self, name: str) -> bool:
        return name in self.functions

    def feature_off(self) -> list[str]:
        """One line per feature turned off by a missing optional symbol."""
        return [f"{name} not in {self.path.name}: {feature} off" for name, feature in sorted(self.missing.items())]


def bind(
    library: ctypes.CDLL, path: Path, prototypes: dict[str, Prototype] | None = None, needs: str = "VDDK 6.5"
) -> Symbols:
    """Look up every prototype (VixDiskLib's by default) in `library`; a missing required symbol raises
    MissingSymbolError."""
    functions: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for name, prototype in (PROTOTYPES if prototypes is None else prototypes).items():
        try:
            function = getattr(library, name)
        except AttributeError:
            if prototype.feature is None:
                raise MissingSymbolError(
                    f"{path}: required symbol {name} is missing (the harness needs {needs} or later)"
                ) from None
            missing[name] = prototype.feature
            continue
        function.restype = prototype.restype
        function.argtypes = list(prototype.argtypes)
        functions[name] = function
    return Symbols(path, functions, missing)
