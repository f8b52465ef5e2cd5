"""Changed block tracking (vSphere CBT) for one virtual disk.

vSphere hands out changeIds such as "52 1f 0a 3b 4c 5d 6e 7f-80 91 a2 b3 c4 d5 e6 8c/17": the tracker's
epoch UUID (replaced whenever tracking is reset, which invalidates every older id) and a sequence
number. Here writes are logged per sequence; taking a changeId closes the current sequence, so
"what changed since id X" is the union of the sequences after X (a changeId only advances when
a snapshot closes the sequence, as in vSphere). Each sequence is a block bitmap,
so memory depends on the regions touched, not on the number of writes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from .space import BlockBitmap

__all__ = ["ChangeTracker", "InvalidChangeId"]

_FORMAT = 1
_CHANGE_ID = re.compile(r"^\s*(?P<uuid>(?:[0-9a-fA-F]{2}[ -]?){15}[0-9a-fA-F]{2})\s*/\s*(?P<seq>\d+)\s*$")


class InvalidChangeId(ValueError):  # noqa: N818 - the name is part of the contract
    """A changeId that is malformed, from another epoch (tracking was reset) or not yet issued."""


def _new_epoch() -> str:
    """A random epoch UUID as 32 hex digits (vSphere's start with 52)."""
    return "52" + secrets.token_hex(15)


class ChangeTracker:
    """Per-disk changed-block log (vSphere CBT); persisted as JSON beside the disk (NAME-ctk.json)."""

    BLOCK = 64 * 1024

    def __init__(self, path: Path, capacity: int, epoch: str, sequences: list[BlockBitmap]) -> None:
        self.path = path
        self.capacity = capacity
        self._epoch = epoch
        # sequences[i] holds the writes of sequence i + 1; the last one is open for writes
        self._sequences = sequences or [BlockBitmap()]
        self._lock = threading.Lock()
        #: (old capacity, new capacity) of each extend since tracking started
        self.grown: list[tuple[int, int]] = []

    @staticmethod
    def path_for(disk_path: Path) -> Path:
        """Where the tracker of the disk whose descriptor is `disk_path` lives (NAME-ctk.json)."""
        return disk_path.with_name(f"{disk_path.stem}-ctk.json")

    @classmethod
    def load_or_create(cls, path: Path, capacity: int) -> ChangeTracker:
        """Load the tracker at `path` (a disk's .vmdk path means its NAME-ctk.json), or start one.

        A new tracker is saved at once so the file exists beside the disk like a real ctk file.
        """
        path = Path(path)
        if path.suffix == ".vmdk":
            path = cls.path_for(path)
        if not path.exists():
            tracker = cls(path, capacity, _new_epoch(), [BlockBitmap()])
            tracker.save()
            return tracker
        try:
            state: Any = json.loads(path.read_text(encoding="utf-8"))
            if state.get("format") != _FORMAT or state.get("block") != cls.BLOCK:
                raise ValueError(f"unsupported format {state.get('format')!r}")
            epoch = str(state["epoch"])
            if not re.fullmatch(r"[0-9a-f]{32}", epoch):
                raise ValueError(f"bad epoch {epoch!r}")
            sequences = [BlockBitmap.from_runs((int(s), int(e)) for s, e in runs) for runs in state["sequences"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: corrupt change tracking file: {exc}") from exc
        # A capacity change (disk extended) keeps the log; new records clip to the new size.
        tracker = cls(path, capacity, epoch, sequences)
        tracker.grown = [(int(a), int(b)) for a, b in state.get("grown", [])]
        return tracker

    def _format(self, sequence: int) -> str:
        pairs = [self._epoch[i : i + 2] for i in range(0, 32, 2)]
        return " ".join(pairs[:8]) + "-" + " ".join(pairs[8:]) + f"/{sequence}"

    def _parse(self, change_id: str, what: str = "changeId") -> int:
        """The sequence number of a changeId issued by this tracker in its current epoch."""
        if change_id == "*":
            raise InvalidChangeId(
                f"{what} '*' means all allocated areas; ask the disk's "
                "allocated_extents() instead of the change tracker"
            )
        match = _CHANGE_ID.match(change_id) if isinstance(change_id, str) else None
        if not match:
            raise InvalidChangeId(
                f"malformed {what} {change_id!r}: expected 'xx xx xx xx xx xx xx xx-xx xx xx xx xx xx xx xx/N'"
            )
        epoch = re.sub(r"[ -]", "", match["uuid"]).lower()
        sequence = int(match["seq"])
        if epoch != self._epoch:
            raise InvalidChangeId(
                f"{what} {change_id!r} is not valid for this disk: change tracking was reset "
                f"(or the id belongs to another disk); the current changeId is "
                f"{self._format(len(self._sequences) - 1)!r}"
            )
        if sequence > len(self._sequences) - 1:
            raise InvalidChangeId(
                f"{what} {change_id!r} was never issued: the latest sequence of this disk is {len(self._sequences) - 1}"
            )
        return sequence

    def record(self, offset: int, length: int) -> None:
        """Log a write of `length` bytes at `offset` (called on every write while CBT is on)."""
        end = min(offset + length, self.capacity)
        offset = max(0, offset)
        if end <= offset:
            return
        with self._lock:
            self._sequences[-1].add(offset // self.BLOCK, -(-end // self.BLOCK))

    def extend(self, capacity: int) -> None:
        """The disk grew: later writes up to the new capacity are tracked (earlier changeIds stay valid, as
        vSphere keeps them across a hot-extend); `grown` keeps each region an extend added."""
        with self._lock:
            if capacity > self.capacity:
                self.grown.append((self.capacity, capacity))
                self.capacity = capacity

    def current_change_id(self) -> str:
        """The disk's current changeId: the latest frozen point (start of tracking or last mark).

        Like vSphere it only advances when a snapshot is taken (`mark`), so it has no side effect
        and polling it cannot grow the log; changes since it may include writes made before the
        call but after the last mark (over-reporting is what CBT allows, under-reporting is not).
        """
        with self._lock:
            return self._format(len(self._sequences) - 1)

    def mark(self) -> str:
        """Freeze the current sequence (a snapshot was taken) and return the changeId of this point."""
        with self._lock:
            return self._mark_locked()

    def _mark_locked(self) -> str:
        frozen = len(self._sequences)
        self._sequences.append(BlockBitmap())
        return self._format(frozen)

    def changed_since(self, change_id: str, until_change_id: str | None = None) -> list[tuple[int, int]]:
        """Merged (offset, length) byte extents written after `change_id` and up to
        `until_change_id` (or now), 64 KiB aligned and clipped to the capacity."""
        with self._lock:
            since = self._parse(change_id)
            until = len(self._sequences)
            if until_change_id is not None:
                until = self._parse(until_change_id, "until changeId")
                if until < since:
                    raise InvalidChangeId(f"until changeId {until_change_id!r} is older than changeId {change_id!r}")
            changed = BlockBitmap.union(self._sequences[since:until])
            capacity = self.capacity
        extents: list[tuple[int, int]] = []
        for start, end in changed.runs():
            offset = start * self.BLOCK
            stop = min(end * self.BLOCK, capacity)
            if stop > offset:
                extents.append((offset, stop - offset))
        return extents

    def reset(self) -> None:
        """Start a new epoch (CBT turned off and on): every earlier changeId becomes invalid."""
        with self._lock:
            self._epoch = _new_epoch()
            self._sequences = [BlockBitmap()]
            self.grown = []

    def save(self) -> None:
        """Write the tracker to its JSON file atomically."""
        with self._lock:
            state = {
                "format": _FORMAT,
                "block": self.BLOCK,
                "capacity": self.capacity,
                "epoch": self._epoch,
                "sequences": [bitmap.runs() for bitmap in self._sequences],
                "grown": self.grown,
            }
            temporary = self.path.with_name(self.path.name + ".tmp")
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(state, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
