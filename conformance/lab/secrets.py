"""The passwords this process has read, so that whatever the run writes can be scrubbed of them.

Why: pytest's own flags can put a password into a report no matter how carefully the harness holds it (``-l``
prints every local of a failing frame, a child's environment included). Every place that reads a secret
remembers it here; the plugin scrubs test reports before JUnit and Allure see them, and scans the run's report
folder at the end as a last line of defence.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["REDACTED", "forget_all", "known", "remember", "scrub", "scrub_object"]

REDACTED = "<redacted>"
#: shorter values would scrub ordinary words; a password that short is refused elsewhere
MIN_LENGTH = 4
_secrets: set[str] = set()
_lock = threading.Lock()


def remember(value: str | None) -> str | None:
    """Note a secret this process holds (a password, a guest password); returns it unchanged."""
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        with _lock:
            _secrets.add(value)
    return value


def known() -> tuple[str, ...]:
    """Every remembered secret, longest first (so a secret containing another is replaced whole)."""
    with _lock:
        return tuple(sorted(_secrets, key=len, reverse=True))


def forget_all() -> None:
    with _lock:
        _secrets.clear()


def scrub(text: str, secrets: tuple[str, ...] | None = None) -> str:
    """`text` with every remembered secret replaced by <redacted>."""
    for secret in known() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub_object(value: Any, secrets: tuple[str, ...] | None = None, _depth: int = 0) -> Any:
    """Scrub strings inside pytest's report objects in place (their attributes, lists, tuples, dicts), returning
    the scrubbed value; anything else is returned as it is."""
    secrets = known() if secrets is None else secrets
    if not secrets or _depth > 12:
        return value
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        value[:] = [scrub_object(v, secrets, _depth + 1) for v in value]
        return value
    if isinstance(value, tuple):
        return tuple(scrub_object(v, secrets, _depth + 1) for v in value)
    if isinstance(value, dict):
        for key in list(value):
            value[key] = scrub_object(value[key], secrets, _depth + 1)
        return value
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and type(value).__module__.startswith("_pytest"):
        for key, item in list(attributes.items()):
            try:
                object.__setattr__(value, key, scrub_object(item, secrets, _depth + 1))
            except (AttributeError, TypeError):
                continue
    return value
