"""Usage rules of VixDiskLib, checked over a recorded call trace.

Rules (release-note items in brackets):
- qab-thread [C1]: QueryAllocatedBlocks runs on the thread that opened the disk and will close it.
- open-close-thread [C1]: a disk is closed on the thread that opened it.
- threads-after-init [R1]: every thread that calls VixDiskLib was created after InitEx.
- cleanup-before-snapshot-removal: after a HotAdd connection, Cleanup runs before the snapshot is removed.
- access-pairing: each PrepareForAccess is paired with an EndAccess for the same VM.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.vixdisklib.recorder import CallRecord

OPEN, CLOSE, QAB = "VixDiskLib_Open", "VixDiskLib_Close", "VixDiskLib_QueryAllocatedBlocks"


@dataclass(frozen=True)
class Violation:
    rule: str
    item: str  # release-note id or "" for general good practice
    message: str
    seq: int
    call: str = ""  # the flagged call (so a report names it without looking the seq up)
    thread: str = ""  # the flagged call's thread name

    def __str__(self) -> str:
        return f"[{self.rule}{' ' + self.item if self.item else ''}] call #{self.seq}: {self.message}"


def check(records: list[CallRecord], threads_before_init: set[int] | None = None) -> list[Violation]:
    """Every violation in the trace, in call order."""
    found: list[Violation] = []
    found += _thread_affinity(records)
    found += _threads_after_init(records, threads_before_init or set())
    found += _cleanup_before_snapshot_removal(records)
    found += _access_pairing(records)
    return sorted(found, key=lambda v: v.seq)


def _thread_affinity(records: list[CallRecord]) -> list[Violation]:
    out = []
    opener: dict[str, tuple[int, str]] = {}
    for r in records:
        if r.error is not None or r.handle is None:
            continue
        if r.call == OPEN:
            opener[r.handle] = (r.thread_id, r.thread_name)
        elif r.call == QAB and r.handle in opener and opener[r.handle][0] != r.thread_id:
            out.append(
                Violation(
                    "qab-thread",
                    "C1",
                    f"QueryAllocatedBlocks on thread {r.thread_name!r}, but disk "
                    f"{r.handle} was opened on {opener[r.handle][1]!r}",
                    r.seq,
                    r.call,
                    r.thread_name,
                )
            )
        elif r.call == CLOSE and r.handle in opener:
            if opener[r.handle][0] != r.thread_id:
                out.append(
                    Violation(
                        "open-close-thread",
                        "C1",
                        f"disk {r.handle} closed on thread {r.thread_name!r}, opened on {opener[r.handle][1]!r}",
                        r.seq,
                        r.call,
                        r.thread_name,
                    )
                )
            del opener[r.handle]
    return out


def _threads_after_init(records: list[CallRecord], before: set[int]) -> list[Violation]:
    out = []
    flagged: set[int] = set()
    seen_init = False
    for r in records:
        if r.call in ("VixDiskLib_InitEx", "VixDiskLib_Init"):  # Init: the deprecated form
            seen_init = True
            continue
        if not r.call.startswith("VixDiskLib_") or r.thread_id in flagged:
            continue
        if not seen_init:
            out.append(
                Violation("threads-after-init", "R1", f"{r.call} called before InitEx", r.seq, r.call, r.thread_name)
            )
            flagged.add(r.thread_id)
        elif r.thread_id in before:
            out.append(
                Violation(
                    "threads-after-init",
                    "R1",
                    f"thread {r.thread_name!r} calls {r.call} but was created before InitEx",
                    r.seq,
                    r.call,
                    r.thread_name,
                )
            )
            flagged.add(r.thread_id)
    return out


def _cleanup_before_snapshot_removal(records: list[CallRecord]) -> list[Violation]:
    out = []
    hotadd: CallRecord | None = None  # the call that showed a HotAdd disk not yet released by Cleanup
    for r in records:
        if (r.call == "VixDiskLib_GetTransportMode" and r.args.get("result") == "hotadd") or (
            r.call == OPEN and r.error is None and r.args.get("transport") == "hotadd"
        ):
            hotadd = r
        elif r.call == "VixDiskLib_Cleanup" and r.error is None:
            hotadd = None
        elif r.call == "vsphere.RemoveSnapshot" and hotadd is not None:
            out.append(
                Violation(
                    "cleanup-before-snapshot-removal",
                    "",
                    f"snapshot removed after a HotAdd backup (call #{hotadd.seq} {hotadd.call} on thread "
                    f"{hotadd.thread_name!r}) before VixDiskLib_Cleanup released the hot-added disks",
                    r.seq,
                    r.call,
                    r.thread_name,
                )
            )
            hotadd = None
    return out


def _access_pairing(records: list[CallRecord]) -> list[Violation]:
    out = []
    pending: dict[str, CallRecord] = {}
    for r in records:
        vm = str(r.args.get("params", {}).get("vmxSpec", "")) if isinstance(r.args.get("params"), dict) else ""
        if r.call == "VixDiskLib_PrepareForAccess" and r.error is None:
            pending[vm] = r
        elif r.call == "VixDiskLib_EndAccess":
            pending.pop(vm, None)
    for vm, r in pending.items():
        out.append(
            Violation(
                "access-pairing",
                "",
                f"PrepareForAccess for {vm or 'a VM'} has no EndAccess",
                r.seq,
                r.call,
                r.thread_name,
            )
        )
    return out
