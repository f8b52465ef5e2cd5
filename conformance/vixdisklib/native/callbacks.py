"""C callbacks into Python: VixDiskLib's log/warning/panic functions and async completion callbacks.

The CFUNCTYPE objects live at module level for the life of the process: VDDK keeps the log pointers
until Exit (and its threads may log a little later), and completion callbacks until the operation ends;
a collected trampoline would be a jump into freed memory. Completion callbacks arrive on the library's
own threads; ctypes takes the GIL for them. Secrets registered here are masked in every library message.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from conformance.vixdisklib.native.abi import CompletionCB, LogFunc

vddk_log = logging.getLogger("conformance.vixdisklib.native.vddk")
log = logging.getLogger("conformance.vixdisklib.native")

_libc = ctypes.CDLL(None)
_vsnprintf = _libc.vsnprintf
_vsnprintf.restype = ctypes.c_int
_vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
_MESSAGE_MAX = 8192

_secrets: dict[str, int] = {}
_secrets_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Mask `secret` in library messages until forget_secret (counted: several connections may share it)."""
    if secret:
        with _secrets_lock:
            _secrets[secret] = _secrets.get(secret, 0) + 1


def forget_secret(secret: str | None) -> None:
    if secret:
        with _secrets_lock:
            left = _secrets.get(secret, 0) - 1
            if left > 0:
                _secrets[secret] = left
            else:
                _secrets.pop(secret, None)


def redact(message: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        message = message.replace(secret, "********")
    return message


def format_message(fmt: bytes | None, args: int | None) -> str:
    """The message of a printf-style format and its va_list, formatted by libc once (a va_list is used up)."""
    if fmt is None:
        return ""
    if args is None:
        return fmt.decode("utf-8", "replace")
    buffer = ctypes.create_string_buffer(_MESSAGE_MAX)
    _vsnprintf(buffer, _MESSAGE_MAX, fmt, args)
    return buffer.value.decode("utf-8", "replace")


#: how VDDK names itself in its log at InitEx: "VMware VixDiskLib (7.0.3) Release build-18705167"
ANNOUNCEMENT = re.compile(r"VixDiskLib \((\d+\.\d+\.\d+)\) Release build-(\d+)")
_announced: list[tuple[str, str]] = []


def take_announcement() -> tuple[str, str] | None:
    """The (version, build number) the library last announced in its log since the previous call, or None."""
    with _secrets_lock:
        found = _announced[-1] if _announced else None
        _announced.clear()
    return found


def _note_announcement(message: str) -> None:
    match = ANNOUNCEMENT.search(message)
    if match:
        with _secrets_lock:
            _announced.append((match.group(1), match.group(2)))


#: per thread: the warnings the library logged on it during the C call it is in (see `begin_call`)
_call_log = threading.local()
#: at most this many of a call's warnings are kept (the last ones: a failure's reason comes last)
CALL_WARNINGS = 4


def begin_call() -> None:
    """A C call starts on this thread: forget the warnings of the previous one."""
    _call_log.warnings = []


def call_warnings() -> list[str]:
    """The warnings (and panics) the library logged on this thread since `begin_call`, oldest first, redacted.

    Why: VixDiskLib's functions return a code only; a failure's reason (a SAN refusal naming the datastore, the
    disk lock, NFC's "Failed to allocate the requested N bytes") reaches a product through the log callbacks, on
    the thread that made the call, as VDDK does and the simulated libvixDiskLib.so does."""
    return list(getattr(_call_log, "warnings", None) or [])


def _note_warning(message: str) -> None:
    kept = getattr(_call_log, "warnings", None)
    if kept is not None:
        kept.append(message)
        del kept[:-CALL_WARNINGS]


def _router(level: int) -> Any:
    def route(fmt: bytes | None, args: int | None) -> None:
        try:
            message = format_message(fmt, args).rstrip("\n")
            _note_announcement(message)
            if level >= logging.WARNING:
                _note_warning(redact(message))
            vddk_log.log(level, "%s", redact(message))
        except Exception:  # an exception must never unwind into C
            log.exception("formatting a VixDiskLib log message failed")

    return LogFunc(route)


#: passed to InitEx; alive for the process's lifetime
LOG = _router(logging.INFO)
WARNING = _router(logging.WARNING)
PANIC = _router(logging.CRITICAL)


class Completions:
    """Pending async operations by token (the cbData the library hands back): the Python callback and the
    buffers that must stay alive until the library is done with them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Callable[[int], None], tuple[Any, ...]]] = {}
        self._tokens = itertools.count(1)

    def add(self, callback: Callable[[int], None], *keep_alive: Any) -> int:
        with self._lock:
            token = next(self._tokens)
            self._pending[token] = (callback, keep_alive)
        return token

    def discard(self, token: int) -> None:
        """The library refused the submission: it will never call back."""
        with self._lock:
            self._pending.pop(token, None)

    def fire(self, token: int | None, result: int) -> None:
        with self._lock:
            entry = self._pending.pop(token or 0, None)
        if entry is None:
            log.error("VixDiskLib completed an unknown async operation (cbData %s)", token)
            return
        callback, _ = entry
        try:
            callback(int(result))
        except Exception:
            log.exception("async completion callback raised")

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


COMPLETIONS = Completions()


def _on_complete(cb_data: int | None, result: int) -> None:
    COMPLETIONS.fire(cb_data, result)


#: the one completion trampoline every ReadAsync/WriteAsync passes; alive for the process's lifetime
ON_COMPLETE = CompletionCB(_on_complete)
