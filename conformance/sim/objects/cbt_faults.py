"""The lies a server can tell about where a disk changed or holds data (integrity faults of sim_faults.toml, played
with `--sim-fault`): each takes the true answer and returns the one the faulty server gives. Off, every function
returns its input unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conformance.sim.storage.cbt import ChangeTracker

if TYPE_CHECKING:
    from conformance.sim.instance import SimContext

Extents = list[tuple[int, int]]


def allocated(ctx: SimContext, extents: Extents) -> Extents:
    """allocated-blocks-drop-last: the disk's last allocated extent is left out (a map that ends too early)."""
    if ctx.faults.playing("allocated-blocks-drop-last"):
        return extents[:-1]
    return extents


def changed(ctx: SimContext, extents: Extents, tracker: ChangeTracker, capacity: int) -> Extents:
    """The changed areas as a faulty server reports them: cbt-misses-after-extend drops what lies in a region an
    extend added; cbt-off-by-one-block moves the first area one CBT block later (clipped to the capacity)."""
    if ctx.faults.playing("cbt-misses-after-extend"):
        for old, new in tracker.grown:
            extents = _without(extents, old, new)
    if extents and ctx.faults.playing("cbt-off-by-one-block"):
        offset, length = extents[0]
        moved = offset + ChangeTracker.BLOCK
        extents = [(moved, min(length, capacity - moved)), *extents[1:]] if moved < capacity else extents[1:]
    return extents


def first_page(ctx: SimContext, page: Any, capacity: int) -> Any:
    """cbt-first-page-only: a reply that stops at its page limit still claims to cover the disk to its end, so
    a caller that pages correctly stops after it."""
    if ctx.faults.playing("cbt-first-page-only"):
        page.length = capacity - int(page.startOffset)
    return page


def _without(extents: Extents, start: int, end: int) -> Extents:
    """The extents with [start, end) cut out."""
    out: Extents = []
    for offset, length in extents:
        stop = offset + length
        if offset < start:
            out.append((offset, min(stop, start) - offset))
        if stop > end:
            out.append((max(offset, end), stop - max(offset, end)))
    return out
