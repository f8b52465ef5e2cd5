"""Hypothesis strategies for what users and partners hand the harness: documents derived from a valid one by
dropping keys, replacing values with values of the wrong type, path-traversing or oversized strings, and adding
unknown keys; and raw text or bytes, truncated or random."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

#: strings a hostile or careless input holds
NASTY_TEXT = st.sampled_from(
    ["", " ", "../../../../etc/passwd", "/etc/shadow", "x/../../ESCAPED", "..", "\x00", "🙂", "a" * 5000,
     "$(rm -rf /)", "%s%n", "{}", "[", "nan", "-1", "0x10", "C:\\Windows", "\\\\server\\share", "\n\n", "ü"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), NASTY_TEXT,
)  # fmt: skip
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)  # fmt: skip


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], max_changes: int = 3) -> dict[str, Any]:
    """`valid` with 1..max_changes changes: a key dropped, a value replaced, or an unknown key added."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=max_changes))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(VALUES)
    return doc


def without_none(value: Any) -> Any:
    """TOML has no null: drop None values (a missing key is its own case)."""
    if isinstance(value, dict):
        return {str(k): without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value if v is not None]
    return value


@st.composite
def damaged_text(draw: st.DrawFn, valid: str) -> str:
    """The valid text truncated, with a random slice replaced, or random text."""
    kind = draw(st.sampled_from(["truncate", "splice", "random"]))
    if kind == "truncate":
        return valid[: draw(st.integers(min_value=0, max_value=len(valid)))]
    if kind == "splice":
        start = draw(st.integers(min_value=0, max_value=len(valid)))
        stop = draw(st.integers(min_value=start, max_value=len(valid)))
        return valid[:start] + draw(st.text(max_size=30) | NASTY_TEXT) + valid[stop:]
    return draw(st.text(max_size=300))
