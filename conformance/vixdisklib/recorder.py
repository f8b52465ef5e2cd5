"""Recording every VixDiskLib call (thread, time, arguments without secrets) for the usage-rule checker."""

from __future__ import annotations

import itertools
import json
import threading
import time
import weakref
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

SECRET_KEYS = ("password", "passwd", "pwd", "cookie", "key", "secret", "token")


def redact(value: Any) -> Any:
    """Arguments as they may be recorded: secrets replaced, bytes summarised, objects named."""
    if isinstance(value, dict):
        return {
            k: ("<redacted>" if any(s in k.lower() for s in SECRET_KEYS) and v else redact(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    redacted = getattr(value, "redacted", None)
    if callable(redacted):
        return redact(redacted())
    return repr(value)


@dataclass
class CallRecord:
    seq: int
    call: str  # "VixDiskLib_Open", or "vsphere.RemoveSnapshot" for a control-plane step of a sequence
    thread_id: int  # one number per thread for the recorder's lifetime (OS idents are reused once a thread ends)
    thread_name: str
    start: float
    duration: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)
    handle: str | None = None  # the disk or connection handle the call acted on or created
    error: int | None = None


class CallRecorder:
    """Thread-safe list of CallRecords; one per VixDiskLib instance (per process)."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._thread_ids: weakref.WeakKeyDictionary[threading.Thread, int] = weakref.WeakKeyDictionary()
        self._next_thread_id = itertools.count(1)
        self.threads_before_init: set[int] = set()

    def thread_id(self, thread: threading.Thread) -> int:
        """The recorder's number for `thread`: by Thread object, so a new thread that gets the OS ident of an
        ended one is not taken for it."""
        with self._lock:
            number = self._thread_ids.get(thread)
            if number is None:
                number = self._thread_ids[thread] = next(self._next_thread_id)
            return number

    @contextmanager
    def call(self, name: str, handle: str | None = None, **args: Any) -> Iterator[CallRecord]:
        thread = threading.current_thread()
        record = CallRecord(
            next(self._seq), name, self.thread_id(thread), thread.name, time.time(), args=redact(args), handle=handle
        )
        started = time.perf_counter()
        try:
            yield record
        except Exception as exc:
            record.error = int(getattr(exc, "code", 1))
            raise
        finally:
            record.duration = time.perf_counter() - started
            with self._lock:
                self._records.append(record)

    def note(self, name: str, **args: Any) -> None:
        """Record a step that is not a VixDiskLib call (e.g. the snapshot removal of a sequence)."""
        with self.call(name, **args):
            pass

    def mark_init(self) -> None:
        """Remember which threads exist at InitEx: any of them calling VixDiskLib later predates InitEx (R1)."""
        current = threading.current_thread()
        self.threads_before_init = {self.thread_id(t) for t in threading.enumerate() if t is not current}

    def import_records(self, records: list[CallRecord], threads_before_init: Collection[int] = ()) -> None:
        """Calls another process made (a partner's product, from its trace), appended in their order with this
        recorder's sequence numbers and thread numbers of their own, so the rules and verdicts judge them like the
        harness's own calls; `threads_before_init` are their threads (by their ids) that predate their InitEx."""
        with self._lock:
            numbers: dict[int, int] = {}
            for record in records:
                thread = numbers.setdefault(record.thread_id, next(self._next_thread_id))
                self._records.append(replace(record, seq=next(self._seq), thread_id=thread))
            self.threads_before_init |= {numbers[t] for t in threads_before_init if t in numbers}

    def records(self) -> list[CallRecord]:
        with self._lock:
            return sorted(self._records, key=lambda r: r.seq)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def to_json(self) -> str:
        return json.dumps([asdict(r) for r in self.records()], indent=1)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())
