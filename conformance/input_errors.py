"""The base of every error about what a user or a partner handed the harness: always one printable line.

Why: messages quote the input (a key, a value, a path) and the input may hold a newline, a control character or
a megabyte of text; the user still gets one line saying what is wrong and how to fix it.
"""

from __future__ import annotations

__all__ = ["InputError", "one_line"]

#: the longest message shown; the rest is cut with a note
MAX_LENGTH = 2000


def one_line(message: str) -> str:
    """`message` with control characters escaped (a newline reads as \\n) and cut at MAX_LENGTH."""
    text = "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in message
    )
    if len(text) > MAX_LENGTH:
        text = text[:MAX_LENGTH] + f"... ({len(text) - MAX_LENGTH} more characters)"
    return text


class InputError(ValueError):
    """A bad input, reported in one line (see the module docstring)."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(str(message)), *args)
