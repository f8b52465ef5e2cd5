"""`--shard K/N`: one spelling for the run's test slices and the nightly matrix's pair slices."""

from __future__ import annotations


class ShardError(ValueError):
    """A malformed --shard value; one line saying how to write it."""


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3): the K-th of N slices, 1 <= K <= N."""
    try:
        index, total = (int(p) for p in text.split("/"))
    except ValueError:
        raise ShardError(f"--shard {text!r}: use K/N, e.g. 1/2") from None
    if not 1 <= index <= total:
        raise ShardError(f"--shard {text!r}: K must be between 1 and N")
    return index, total
