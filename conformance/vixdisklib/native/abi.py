"""The C ABI of VixDiskLib in ctypes: struct layouts per major version and the callback types.

Layouts are Linux x86-64 (LP64, natural alignment); offsets and sizes are checked by the tests against
the figures in the reference notes. Only the fields the harness fills or reads are named the C way.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_char,
    c_char_p,
    c_int,
    c_long,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any

VixError = c_uint64
SectorType = c_uint64
Bool = c_char  # VMware's Bool is a char
VIX_OK = 0
VIX_ASYNC = 25000

#: void fn(const char *fmt, va_list args): on x86-64 SysV a va_list argument arrives as a pointer
LogFunc = CFUNCTYPE(None, c_char_p, c_void_p)
#: void fn(void *cbData, VixError result) (the 6.5+ form; 6.0 had a third argument)
CompletionCB = CFUNCTYPE(None, c_void_p, c_uint64)
#: Bool fn(void *progressData, int percentCompleted)
ProgressFunc = CFUNCTYPE(c_char, c_void_p, c_int)


class Geometry(Structure):
    _fields_ = [("cylinders", c_uint32), ("heads", c_uint32), ("sectors", c_uint32)]


class InfoV6(Structure):
    """VixDiskLibInfo up to 6.7: 56 bytes."""

    _fields_ = [
        ("biosGeo", Geometry),
        ("physGeo", Geometry),
        ("capacity", SectorType),
        ("adapterType", c_int),
        ("numLinks", c_int),
        ("parentFileNameHint", c_char_p),
        ("uuid", c_char_p),
    ]


class InfoV7(Structure):
    """VixDiskLibInfo from 7.0: the sector sizes appended, 64 bytes."""

    _fields_ = [*InfoV6._fields_, ("logicalSectorSize", c_uint32), ("physicalSectorSize", c_uint32)]


class UidCreds(Structure):
    _fields_ = [("userName", c_char_p), ("password", c_char_p)]


class SessionIdCreds(Structure):
    _fields_ = [("cookie", c_char_p), ("userName", c_char_p), ("key", c_char_p)]


class Creds(Union):
    _fields_ = [("uid", UidCreds), ("sessionId", SessionIdCreds), ("ticketId", c_void_p)]


class VStorageObjSpec(Structure):
    _fields_ = [("id", c_char_p), ("datastoreMoRef", c_char_p), ("ssId", c_char_p)]


class Spec(Union):
    _fields_ = [("vStorageObjSpec", VStorageObjSpec)]


_CONNECT_60: list[tuple[str, Any]] = [
    ("vmxSpec", c_char_p),
    ("serverName", c_char_p),
    ("thumbPrint", c_char_p),
    ("privateUse", c_long),
    ("credType", c_int),
    ("creds", Creds),
    ("port", c_uint32),
    ("nfcHostPort", c_uint32),
]


class ConnectParamsV60(Structure):
    """VixDiskLibConnectParams of the 6.0-era header (ends at nfcHostPort): 72 bytes."""

    _fields_ = _CONNECT_60


class ConnectParamsV65(Structure):
    """6.5 appended vimApiVer: 80 bytes."""

    _fields_ = [*_CONNECT_60, ("vimApiVer", c_char_p)]


class ConnectParamsV67(Structure):
    """6.7 (and 7.x, 8.x) appended reserved[8], state, spec and specType: 128 bytes."""

    _fields_ = [
        *_CONNECT_60,
        ("vimApiVer", c_char_p),
        ("reserved", c_char * 8),
        ("state", c_void_p),
        ("spec", Spec),
        ("specType", c_int),
    ]


class Block(Structure):
    _fields_ = [("offset", SectorType), ("length", SectorType)]


class BlockList(Structure):
    """VixDiskLibBlockList: numBlocks, then the blocks from offset 8 (read them with `blocks_of`)."""

    _fields_ = [("numBlocks", c_uint32), ("blocks", Block * 1)]


InfoStruct = type[InfoV6] | type[InfoV7]
ConnectParamsStruct = type[ConnectParamsV60] | type[ConnectParamsV65] | type[ConnectParamsV67]


def info_struct(major: int) -> InfoStruct:
    """The VixDiskLibInfo layout a library of this major version allocates."""
    return InfoV7 if major >= 7 else InfoV6


def connect_params_struct(major: int, has_allocate: bool) -> ConnectParamsStruct:
    """The ConnectParams layout to fill: 6.7+ when AllocateConnectParams exists (it came with 6.7) or the
    library is 7.x or later; a 6.x library without it is treated as 6.5."""
    return ConnectParamsV67 if has_allocate or major >= 7 else ConnectParamsV65


def blocks_of(pointer: ctypes._Pointer[BlockList]) -> list[tuple[int, int]]:
    """(offset, length) sector pairs of a library-allocated block list."""
    count = int(pointer.contents.numBlocks)
    if not count:
        return []
    array = (Block * count).from_address(ctypes.addressof(pointer.contents) + BlockList.blocks.offset)
    return [(int(b.offset), int(b.length)) for b in array]


InfoPointer = POINTER(InfoV6)
BlockListPointer = POINTER(BlockList)
