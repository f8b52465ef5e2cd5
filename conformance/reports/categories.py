"""Allure categories: which failures are known issues, product defects, harness defects or lab problems.

Why: a lab engineer opening last night's failures first needs to know whose problem each one is. The same rules go
into ``allure-results/categories.json`` (read by Allure 2 and by Allure 3's results reader) and into the Allure 3
configuration the report command writes, and ``classify`` applies them in Python for tests and the matrix page.

Allure 3 takes the first category whose statuses and regular expressions match, with JavaScript's ``RegExp.test``
(a search); Allure 2 matches the whole text. Each pattern is therefore wrapped in ``[\\s\\S]*`` on both sides, and
uses no inline flags, which Node's regular expressions do not accept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

KNOWN_ISSUE = "Known issue"
LAB_PROBLEM = "Lab problem"
PRODUCT_DEFECT = "Product defect"
HARNESS_DEFECT = "Harness defect"

_LAB = (
    r"ConnectionRefused|ConnectionReset|[Cc]onnection refused|[Uu]nreachable|No route to host|"
    r"Name or service not known|[Tt]imed? ?out|TimeoutError|PermissionError|[Pp]ermission denied|NoPermission|"
    r"InvalidLogin|NotAuthenticated|certificate verify failed|lab problem: "
)
#: the line the run adds to a failure when the data plane is unreachable (conformance/lab/dataplane_check.py)
_LAB_NOTED = r"lab problem: "
_PRODUCT = r"VixError|VIX_E_[A-Z_]+|vim\.fault\.|vmodl\.fault\.|AssertionError|XPASS\(strict\)"


def _anywhere(pattern: str) -> str:
    return rf"[\s\S]*(?:{pattern})[\s\S]*"


@dataclass(frozen=True)
class Category:
    """One Allure category rule (the Allure 2 ``categories.json`` keys, which Allure 3 still accepts)."""

    name: str
    description: str
    statuses: tuple[str, ...]
    message: str | None = None
    trace: str | None = None

    def as_json(self) -> dict[str, object]:
        rule: dict[str, object] = {
            "name": self.name,
            "description": self.description,
            "matchedStatuses": list(self.statuses),
        }
        if self.message is not None:
            rule["messageRegex"] = self.message
        if self.trace is not None:
            rule["traceRegex"] = self.trace
        return rule

    def matches(self, status: str, message: str, trace: str) -> bool:
        if status not in self.statuses:
            return False
        if self.message is not None and not re.search(self.message, message):
            return False
        return self.trace is None or re.search(self.trace, trace) is not None


#: first match wins, so lab problems (a timeout may surface as a VixError) come before product defects
CATEGORIES: tuple[Category, ...] = (
    Category(
        KNOWN_ISSUE,
        "Expected failure: the release notes list this as a known or not-yet-fixed issue for the build and server.",
        ("skipped",),
        message=_anywhere(r"^XFAIL[\s\S]*known issue"),
    ),
    Category(
        LAB_PROBLEM,
        "The lab, not the product: a host unreachable, a timeout, missing permissions or a bad certificate.",
        ("failed", "broken"),
        message=_anywhere(_LAB),
    ),
    Category(
        LAB_PROBLEM,
        "The run found the target's data plane (the hosts' NFC port) unreachable and said so on the failure.",
        ("failed", "broken"),
        trace=_anywhere(_LAB_NOTED),
    ),
    Category(
        PRODUCT_DEFECT,
        "VDDK or the server misbehaved: a VixError, a vSphere fault, or an assertion about product behaviour.",
        ("failed", "broken"),
        message=_anywhere(_PRODUCT),
    ),
    Category(
        HARNESS_DEFECT,
        "An exception in the harness's own code (conformance/ or suites/) that is not a product error.",
        ("broken",),
    ),
)


def classify(status: str, message: str = "", trace: str = "") -> str | None:
    """The category Allure 3 would give a result with this status, message and trace (None: no category)."""
    for category in CATEGORIES:
        if category.matches(status, message, trace):
            return category.name
    return None


def categories_json() -> str:
    return json.dumps([c.as_json() for c in CATEGORIES], indent=2)


def write_categories(results_dir: Path) -> Path:
    """Write ``categories.json`` into an allure-results folder."""
    path = results_dir / "categories.json"
    path.write_text(categories_json(), encoding="utf-8")
    return path
