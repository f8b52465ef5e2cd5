"""Known issues end as expected failures only on their documented symptom.

A known-issue expectation (conformance/plugin/expectations.py) is ``xfail(strict=True,
raises=KnownIssueSymptom)``: the test reaches its expected failure only by calling :func:`symptom` after the
harness itself observed what the release notes describe (the proxy VM became invalid, Open failed with the
documented error, Cleanup found nothing, ...). Anything else a reproducer raises — a VixError or RuntimeError
from a crashing backup application, a fixture error, a lab without the needed VM — is a failure, an error or a
skip, never "the known issue".

Why a dedicated exception rather than ``raises=AssertionError``: a bare AssertionError comes from anywhere (a
backup application's own ``assert``, a library's internal check, a fixture's precondition), and several
reproducers observe their symptom as an exception of the library (Open failing) rather than as a failed
comparison. Why the provenance check (:func:`raised_by_test`): the symptom is the harness's observation, so it
counts only when raised by :func:`symptom` called from the test's own module — a backup application that raises
KnownIssueSymptom, or calls :func:`symptom` itself, does not grade itself into a known issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

__all__ = ["KnownIssueSymptom", "raised_by_test", "symptom"]


class KnownIssueSymptom(AssertionError):  # noqa: N818 - an observation, not an error of the harness
    """The documented symptom of a known issue, as the harness observed it."""

    def __init__(self, item: str, description: str, observed: Any = None) -> None:
        self.item = item
        self.description = description
        self.observed = observed
        suffix = "" if observed is None else f" (observed: {observed!r})"
        super().__init__(f"{item} known-issue symptom: {description}{suffix}")


def symptom(item: str, description: str, *, observed: Any = None) -> NoReturn:
    """State that the harness observed ``item``'s documented symptom (call it from the test module only)."""
    raise KnownIssueSymptom(item, description, observed)


def raised_by_test(exc: BaseException, traceback: Any, test_path: Path) -> bool:
    """True when ``exc`` is a KnownIssueSymptom raised by :func:`symptom` called from ``test_path``.

    ``traceback`` is pytest's ``ExceptionInfo.traceback`` (entries with ``.frame.code.raw`` and ``.path``)."""
    if not isinstance(exc, KnownIssueSymptom):
        return False
    entries = list(traceback)
    for position in range(len(entries) - 1, 0, -1):
        if entries[position].frame.code.raw is symptom.__code__:
            return Path(str(entries[position - 1].path)) == Path(test_path)
    return False
