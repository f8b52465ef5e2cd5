"""How the reference application sizes its NBD/NBDSSL requests so that a host's NFC memory holds them (D3).

Every NBD/NBDSSL request needs a buffer of its size on the host's NFC server, and the host's budget (hostd
nfcsvc maxMemory, 48 MB by default on 6.x) is shared by every session on it: parallel sessions with large
requests fail with "Failed to allocate the requested N bytes". The application caps its requests at 2 MiB (the
cap nbdkit and virt-v2v adopted for that error) and, when a request is refused anyway, retries it in smaller
pieces after a short pause, so a busy host slows a backup down instead of failing it or losing data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from conformance.vixdisklib.api import Disk, VixDiskLib
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.types import SECTOR_SIZE

MiB = 2**20
#: the largest request the application sends
MAX_REQUEST = 2 * MiB
#: it never splits below this
MIN_REQUEST = 64 * 1024
#: refusals tolerated for one call before the error is the caller's (with pauses, about 10 s in all)
RETRIES = 24
PAUSE = 0.05
MAX_PAUSE = 1.0
NFC_TEXT = "Failed to allocate the requested"


def nfc_refused(error: VixError) -> bool:
    """A request the host's NFC server could not buffer: VIX_E_FAIL naming the allocation. Only that text counts:
    a bare VIX_E_FAIL is also what older builds return for a full datastore (R5), which no retry cures."""
    return error.code == VixCode.FAIL and NFC_TEXT in error.text


def request_size(io_size: int) -> int:
    """The application's request size: its I/O size, capped at MAX_REQUEST, whole sectors."""
    return max(SECTOR_SIZE, min(io_size, MAX_REQUEST) // SECTOR_SIZE * SECTOR_SIZE)


def _in_pieces(offset: int, length: int, io_size: int, move: Callable[[int, int], None], notes: list[str]) -> None:
    """Call move(offset, size) over [offset, offset + length) in requests of at most request_size(io_size);
    a request the host refuses is retried, halved down to MIN_REQUEST, after a growing pause."""
    size, position, end, refusals = request_size(io_size), offset, offset + length, 0
    while position < end:
        piece = min(size, end - position)
        try:
            move(position, piece)
        except VixError as exc:
            if not nfc_refused(exc) or refusals >= RETRIES:
                raise
            refusals += 1
            notes.append(f"NFC refused {piece} bytes at {position} ({exc.text}); retrying smaller")
            size = max(MIN_REQUEST, size // 2)
            time.sleep(min(MAX_PAUSE, PAUSE * refusals))
            continue
        position += piece


def read_range(lib: VixDiskLib, handle: Disk, offset: int, length: int, io_size: int, notes: list[str]) -> bytes:
    """The bytes of [offset, offset + length) (sector aligned), read within the host's NFC memory."""
    out = bytearray()

    def move(position: int, size: int) -> None:
        out.extend(lib.read(handle, position // SECTOR_SIZE, size // SECTOR_SIZE))

    _in_pieces(offset, length, io_size, move, notes)
    return bytes(out)


def write_range(lib: VixDiskLib, handle: Disk, offset: int, data: bytes, io_size: int, notes: list[str]) -> None:
    """Write `data` (whole sectors) at `offset` within the host's NFC memory."""
    view = memoryview(data)

    def move(position: int, size: int) -> None:
        lib.write(handle, position // SECTOR_SIZE, bytes(view[position - offset : position - offset + size]))

    _in_pieces(offset, len(data), io_size, move, notes)


__all__ = ["MAX_REQUEST", "MIN_REQUEST", "NFC_TEXT", "nfc_refused", "read_range", "request_size", "write_range"]
