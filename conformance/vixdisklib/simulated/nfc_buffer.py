"""The host's NFC buffer that each NBD/NBDSSL Read or Write of the simulated VixDiskLib holds while it runs.

The server grants or refuses it (`conformance.sim.dataplane.nfc_memory`). A refusal is reported as VDDK
reports it: the library logs the NFC layer's line ("[NFC ERROR] NfcFssrvrProcessErrorMsg: received NFC error 5
from server: Failed to allocate the requested N bytes", the text partners quote) and the call fails with
VIX_E_FAIL carrying that text.

Why VIX_E_FAIL: public reports show only the NFC log line, never a dedicated VIX code, and VixDiskLib reports
server-side NFC failures it has no code for as VIX_E_FAIL (as it does for a thumbprint refused at Open);
VIX_E_OUT_OF_MEMORY would claim the proxy ran out of memory, which it did not. The harness therefore recognises
the failure by its text, in the error or in the library's log, never by the code alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from conformance.sim.dataplane import DataPlaneError
from conformance.vixdisklib.errors import VixCode, VixError
from conformance.vixdisklib.simulated.disk import SimDisk, map_dataplane_error
from conformance.vixdisklib.types import SECTOR_SIZE

log = logging.getLogger("conformance.vixdisklib.simulated.nfc")
NFC_TRANSPORTS = ("nbd", "nbdssl")
#: NFC's error number for a buffer the server cannot allocate (as VDDK logs it)
NFC_NO_MEMORY = 5


@contextlib.contextmanager
def nfc_buffer(disk: SimDisk, start: int, count: int, call: str) -> Iterator[None]:
    """Hold the host's NFC buffer for a request of `count` sectors at `start` (NBD/NBDSSL only) while the body
    runs; the library's own checks (closed handle, range) come first, as they need no server."""
    disk._check(call, start, count)
    num_bytes = count * SECTOR_SIZE
    if disk.transport not in NFC_TRANSPORTS or disk.client is None or num_bytes <= 0:
        yield
        return
    try:
        reply = disk.client.submit({"op": "nfc_alloc", "handle": disk.handle, "bytes": num_bytes}).result()
    except DataPlaneError as exc:
        if exc.kind != "nfc_no_memory":
            raise map_dataplane_error(exc, disk.behaviour, call) from exc
        line = f"NfcFssrvrProcessErrorMsg: received NFC error {NFC_NO_MEMORY} from server: {exc.message}"
        log.error("[NFC ERROR] %s", line)
        raise VixError(VixCode.FAIL, call, line) from exc
    buffer = reply[0].get("buffer")
    try:
        yield
    finally:
        if buffer is not None:  # not waited for: the server frees in frame order, before this client's next alloc
            disk.client.submit({"op": "nfc_free", "buffer": buffer})


__all__ = ["NFC_NO_MEMORY", "nfc_buffer"]
