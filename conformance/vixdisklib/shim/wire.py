"""The wire between the simulated libvixDiskLib.so (C, `c/agent_client.c`) and its agent (`agent.py`).

Why a wire at all: a partner's product loads a C library; the simulated VixDiskLib is Python. The C library
forwards every call over a Unix stream socket to an agent process that runs the simulated library, so the C
library behaves exactly as the selected build (`--sim-behaviour`) does for the Python facade.

Connections. The C library opens one connection per OS thread of the product that calls it, so the agent
serves each product thread on its own Python thread (thread rules like C1 see the product's threads). The
first message on every connection is HELLO; the first connection of a process (token null) opens a *session*
(one InitEx ... Exit of one process), later connections of the same process join it with the session's token.
When every connection of a session has closed without EXIT (the product died), the agent drops the session
the way a killed process leaves a real host: data-plane sockets close, hot-added disks and temp state stay.

Frames. Every message is `u32 length` (little endian, length of what follows) and a body of tagged values:
  b'u' + u64 (little endian)       an integer
  b's' + u32 n + n bytes (UTF-8)   a string; n = 0xFFFFFFFF is NULL
  b'b' + u32 n + n bytes           a byte string (sector data)
A request body is `u op` followed by the op's arguments. A response body is
  u error, s error_text, u n_logs, n_logs x s log_line, then the op's results
where error is the VixError of the call (0 = VIX_OK; 25000 = VIX_ASYNC), error_text the detail the C library
passes to the product's warning log on failure, and each log line starts with "I " (log) or "W " (warning)
and goes to the product's log or warning callback. Results are sent only when error is VIX_OK (or
VIX_ASYNC).

Ops (arguments -> results); PARAMS is the ConnectParams as 17 values: s vmxSpec, s serverName,
s thumbPrint, u credType, s userName, s password, s cookie, s key, u port, u nfcHostPort, s vimApiVer,
u specType, s fcdId, s fcdDatastoreMoRef, s fcdSnapshotId, u privateUse, u paramsSize.
  HELLO       u pid, u tid, s token, u abiMajor          -> s token
  INIT        u major, u minor, s libDir, s configFile    -> s transportModes
  EXIT                                                    -> (none)
  LIST_MODES                                              -> s transportModes
  CONNECT     PARAMS, u readOnly, s snapshotRef, s transportModes -> u connection
  DISCONNECT  u connection                                -> (none)
  OPEN        u connection, s path, u flags               -> u disk, s transport
  CLOSE       u disk                                      -> (none)
  GET_INFO    u disk -> u capacity, u adapterType, u numLinks, s parentFileNameHint, s uuid,
                        u biosCylinders, u biosHeads, u biosSectors, u physCylinders, u physHeads,
                        u physSectors, u logicalSectorSize, u physicalSectorSize
  TRANSPORT   u disk                                      -> s mode
  READ        u disk, u startSector, u numSectors         -> b data (numSectors x 512 bytes)
  WRITE       u disk, u startSector, b data               -> (none)
  READ_ASYNC  u disk, u startSector, u numSectors         -> u result, b data
  WRITE_ASYNC u disk, u startSector, b data               -> u result
  WAIT        u disk                                      -> (none)
  FLUSH       u disk                                      -> (none)
  QUERY_BLOCKS u disk, u startSector, u numSectors, u chunkSize -> u n, n x (u offset, u length)
  ATTACH      u parent, u child                           -> (none)
  PREPARE     PARAMS, s identity                          -> (none)
  END_ACCESS  PARAMS, s identity                          -> (none)
  CLEANUP     PARAMS                                      -> u numCleanedUp, u numRemaining
  ERROR_TEXT  u code                                      -> s text

The async ops are asked synchronously: the agent submits the operation to the simulated library, waits for
its completion and answers with the operation's result; the C library then runs the product's completion
callback on its own completion thread and returns VIX_ASYNC from ReadAsync/WriteAsync (the submission
error, if any, is the response's error). Wait in the C library waits for those callbacks, then sends WAIT.

CLEANUP answers error != 0 *with* its results (numCleanedUp, numRemaining), because the C API fills both
counts on failure too.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from enum import IntEnum

Value = int | str | bytes | None

NULL_STRING = 0xFFFFFFFF
#: a frame larger than this is refused (a read of the largest chunk VixDiskLib allows is 64 MiB)
MAX_FRAME = 96 * 1024 * 1024


class Op(IntEnum):
    HELLO = 1
    INIT = 2
    EXIT = 3
    LIST_MODES = 4
    CONNECT = 5
    DISCONNECT = 6
    OPEN = 7
    CLOSE = 8
    GET_INFO = 9
    TRANSPORT = 10
    READ = 11
    WRITE = 12
    READ_ASYNC = 13
    WRITE_ASYNC = 14
    WAIT = 15
    FLUSH = 16
    QUERY_BLOCKS = 17
    ATTACH = 18
    PREPARE = 19
    END_ACCESS = 20
    CLEANUP = 21
    ERROR_TEXT = 22


PARAMS_FIELDS = (
    "vmxSpec", "serverName", "thumbPrint", "credType", "userName", "password", "cookie", "key", "port",
    "nfcHostPort", "vimApiVer", "specType", "fcdId", "fcdDatastoreMoRef", "fcdSnapshotId", "privateUse", "paramsSize",
)  # fmt: skip


class WireError(Exception):
    """A malformed frame, or the peer went away; the one-line message says which."""


@dataclass(frozen=True)
class Bytes:
    """Marks a value to be sent as b'b' (sector data) rather than a string."""

    data: bytes


def encode(values: list[Value | Bytes]) -> bytes:
    """One frame (length prefix included) holding `values`: int -> u, str/None -> s, Bytes/bytes -> b."""
    parts: list[bytes] = []
    for value in values:
        if isinstance(value, (bool, int)):
            parts.append(b"u" + struct.pack("<Q", int(value) & 0xFFFFFFFFFFFFFFFF))
        elif value is None:
            parts.append(b"s" + struct.pack("<I", NULL_STRING))
        elif isinstance(value, str):
            raw = value.encode("utf-8", "replace")
            parts.append(b"s" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(value, Bytes):
            parts.append(b"b" + struct.pack("<I", len(value.data)) + value.data)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            parts.append(b"b" + struct.pack("<I", len(value)) + bytes(value))
        else:
            raise TypeError(f"cannot encode {type(value).__name__} on the shim wire")
    body = b"".join(parts)
    return struct.pack("<I", len(body)) + body


def decode(body: bytes) -> list[Value]:
    """The tagged values of one frame body (without its length prefix)."""
    values: list[Value] = []
    view = memoryview(body)
    at = 0
    while at < len(view):
        tag = bytes(view[at : at + 1])
        at += 1
        if tag == b"u":
            if at + 8 > len(view):
                raise WireError("truncated integer in a shim frame")
            values.append(struct.unpack_from("<Q", view, at)[0])
            at += 8
            continue
        if tag not in (b"s", b"b") or at + 4 > len(view):
            raise WireError(f"bad tag {tag!r} in a shim frame")
        (length,) = struct.unpack_from("<I", view, at)
        at += 4
        if tag == b"s" and length == NULL_STRING:
            values.append(None)
            continue
        if at + length > len(view):
            raise WireError("truncated string in a shim frame")
        raw = bytes(view[at : at + length])
        at += length
        values.append(raw.decode("utf-8", "replace") if tag == b"s" else raw)
    return values


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise WireError("the peer closed the shim connection")
        got += n
    return bytes(buffer)


def receive(sock: socket.socket) -> list[Value]:
    """The next frame's values; WireError when the peer closed or the frame is malformed or too large."""
    (length,) = struct.unpack("<I", _recv_exact(sock, 4))
    if length > MAX_FRAME:
        raise WireError(f"shim frame of {length} bytes is larger than {MAX_FRAME}")
    return decode(_recv_exact(sock, length))


def send(sock: socket.socket, values: list[Value | Bytes]) -> None:
    sock.sendall(encode(values))


def response(error: int, error_text: str | None, logs: list[str], results: list[Value | Bytes]) -> list[Value | Bytes]:
    """The values of a response body (see the module docstring)."""
    return [error, error_text, len(logs), *logs, *results]


def split_response(values: list[Value]) -> tuple[int, str | None, list[str], list[Value]]:
    """(error, error_text, log lines, results) of a response body."""
    if len(values) < 3 or not isinstance(values[0], int) or not isinstance(values[2], int):
        raise WireError("malformed shim response header")
    count = values[2]
    logs = [str(v) for v in values[3 : 3 + count]]
    text = values[1] if isinstance(values[1], str) else None
    return values[0], text, logs, values[3 + count :]
