"""VixDiskLibConnectParams in C memory, filled from the harness's ConnectParams, and freed safely.

With VDDK 6.7+ the struct comes from VixDiskLib_AllocateConnectParams and goes back through
FreeConnectParams (nbdkit does the same: the library warns otherwise); a library without both of them (older,
or missing either) gets a zeroed struct of our own: one allocated without its Free would leak. The strings
stay ours: they are kept alive while the library may use them, the secret ones are wiped when released, and
every string pointer is cleared before FreeConnectParams so the library can never free memory it does not own.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.native.abi import ConnectParamsStruct, ConnectParamsV67
from conformance.vixdisklib.native.callbacks import forget_secret, register_secret
from conformance.vixdisklib.native.symbols import Symbols
from conformance.vixdisklib.types import ConnectParams, SessionCredentials, UidCredentials


@dataclass
class CParams:
    """One ConnectParams struct in C memory and the buffers its pointers point into."""

    address: int
    struct: Any
    allocated: bool  # by AllocateConnectParams
    buffers: list[Any] = field(default_factory=list)
    secrets: list[tuple[Any, str]] = field(default_factory=list)  # (buffer, text) to wipe and unmask
    released: bool = False


def _string(params: CParams, text: str | None, secret: bool = False) -> ctypes.c_char_p | None:
    if text is None:
        return None
    buffer = ctypes.create_string_buffer(text.encode("utf-8"))
    params.buffers.append(buffer)
    if secret:
        params.secrets.append((buffer, text))
        register_secret(text)
    return ctypes.cast(buffer, ctypes.c_char_p)


def library_allocates(symbols: Symbols) -> bool:
    """Whether the struct comes from the library: only when it can also be given back."""
    return symbols.has("VixDiskLib_AllocateConnectParams") and symbols.has("VixDiskLib_FreeConnectParams")


def build(symbols: Symbols, layout: ConnectParamsStruct, params: ConnectParams) -> CParams:
    """A filled struct; released (wiped, freed) with `release`."""
    if library_allocates(symbols):
        address = symbols["VixDiskLib_AllocateConnectParams"]()
        if not address:
            raise VixError(VixCode.OUT_OF_MEMORY, "VixDiskLib_AllocateConnectParams")
        out = CParams(address, layout.from_address(address), True)
    else:
        struct = layout()
        out = CParams(ctypes.addressof(struct), struct, False)
    try:
        _fill(out, params)
    except BaseException:
        release(symbols, out)
        raise
    return out


def _fill(out: CParams, params: ConnectParams) -> None:
    s = out.struct
    s.vmxSpec = _string(out, params.vmx_spec)
    s.serverName = _string(out, params.server_name)
    s.thumbPrint = _string(out, params.thumbprint)
    s.port = params.port
    s.nfcHostPort = params.nfc_host_port
    creds = params.credentials
    if isinstance(creds, UidCredentials):
        s.credType = int(creds.cred_type)
        s.creds.uid.userName = _string(out, creds.user)
        s.creds.uid.password = _string(out, creds.password, secret=True)
    elif isinstance(creds, SessionCredentials):
        s.credType = int(creds.cred_type)
        s.creds.sessionId.cookie = _string(out, creds.cookie, secret=True)
        s.creds.sessionId.userName = _string(out, creds.user)
        s.creds.sessionId.key = _string(out, creds.key, secret=True)
    if isinstance(s, ConnectParamsV67):
        s.specType = int(params.spec_type)
        fcd = params.vstorage_object
        if fcd is not None:
            s.spec.vStorageObjSpec.id = _string(out, fcd.id)
            s.spec.vStorageObjSpec.datastoreMoRef = _string(out, fcd.datastore_moref)
            s.spec.vStorageObjSpec.ssId = _string(out, fcd.ssid)
    elif params.vstorage_object is not None:
        raise VixError(VixCode.NOT_SUPPORTED, "VixDiskLib_ConnectEx", "First Class Disks need VDDK 6.7 or later")


def release(symbols: Symbols, params: CParams) -> None:
    """Wipe secrets, clear the string pointers, give the struct back; idempotent."""
    if params.released:
        return
    params.released = True
    for buffer, text in params.secrets:
        ctypes.memset(buffer, 0, len(buffer))
        forget_secret(text)
    s = params.struct
    s.vmxSpec = s.serverName = s.thumbPrint = None
    ctypes.memset(ctypes.addressof(s.creds), 0, ctypes.sizeof(s.creds))
    if isinstance(s, ConnectParamsV67):
        ctypes.memset(ctypes.addressof(s.spec), 0, ctypes.sizeof(s.spec))
    if params.allocated:
        symbols["VixDiskLib_FreeConnectParams"](params.address)
    params.buffers.clear()
