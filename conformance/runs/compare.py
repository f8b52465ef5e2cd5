"""Compare two runs (report directories): which tests and release-note items changed outcome.

A test moves into one of: fixed (failed or known issue → passed), regressed (passed → failed or known
issue), newly known (→ expected failure), newly not applicable (→ skipped), or other changes. Items are
summarised the same way from their tests.

Tests are matched by their permanent identity (UUID and case, plugin/identity.py) where both runs recorded one, so
a test renamed or moved between harness versions is still the same test; by node id otherwise (runs written
before identities existed). A change names the node id of run B.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance.input_errors import InputError

GOOD = {"passed"}
BAD = {"failed", "error", "xpassed"}
KNOWN = {"xfailed"}
SKIPPED = {"skipped"}


class CompareError(InputError):
    """A run directory that cannot be compared; the message names it and what is missing."""


@dataclass
class Change:
    nodeid: str
    release_note: str | None
    before: str
    after: str
    kind: str


@dataclass
class Comparison:
    run_a: str
    run_b: str
    changes: list[Change] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)

    #: release-note id of each test that ran in one run only
    missing_items: dict[str, str | None] = field(default_factory=dict)

    def items(self) -> dict[str, list[str]]:
        """Release-note id -> kinds of change among its tests (a test that ran in one run only is a change too)."""
        out: dict[str, set[str]] = {}
        for change in self.changes:
            if change.release_note:
                out.setdefault(change.release_note, set()).add(change.kind)
        for nodeid in self.only_in_a:
            if self.missing_items.get(nodeid):
                out.setdefault(str(self.missing_items[nodeid]), set()).add("missing in B")
        for nodeid in self.only_in_b:
            if self.missing_items.get(nodeid):
                out.setdefault(str(self.missing_items[nodeid]), set()).add("missing in A")
        return {item: sorted(kinds) for item, kinds in sorted(out.items())}

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_a": self.run_a,
                "run_b": self.run_b,
                "items": self.items(),
                "changes": [asdict(c) for c in self.changes],
                "only_in_a": self.only_in_a,
                "only_in_b": self.only_in_b,
            },
            indent=2,
        )

    def table(self) -> str:
        lines = [f"{'item':6} {'change':22} {'before':9} {'after':9} test", "-" * 78]
        for c in sorted(self.changes, key=lambda c: (c.release_note or "", c.kind, c.nodeid)):
            lines.append(f"{c.release_note or '-':6} {c.kind:22} {c.before:9} {c.after:9} {c.nodeid}")
        for label, nodeids in (("missing in B", self.only_in_a), ("missing in A", self.only_in_b)):
            for nodeid in nodeids:
                lines.append(f"{self.missing_items.get(nodeid) or '-':6} {label:22} {'':9} {'':9} {nodeid}")
        lines.append("")
        if self.only_in_a or self.only_in_b:
            lines.append(
                f"tests in one run only: {len(self.only_in_a)} only in A ({self.run_a}), "
                f"{len(self.only_in_b)} only in B ({self.run_b})"
            )
        lines.append("items changed: " + (", ".join(f"{k} ({'/'.join(v)})" for k, v in self.items().items()) or "none"))
        return "\n".join(lines)


def classify(before: str, after: str) -> str:
    if before == after:
        return "same"
    if after in GOOD and before in BAD | KNOWN:
        return "fixed"
    if before in GOOD and after in BAD:
        return "regressed"
    if after in KNOWN:
        return "newly known issue"
    if after in SKIPPED:
        return "newly not applicable"
    if before in SKIPPED and after in GOOD:
        return "newly applicable"
    return "changed"


def load_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json of a run directory, checked as the report command checks it (one line when unusable)."""
    from conformance.reports.runs import ReportError, load_run

    try:
        return load_run(Path(run_dir)).summary
    except ReportError as exc:
        raise CompareError(str(exc)) from None


def test_key(test: dict[str, Any]) -> str:
    """The permanent key of a test result: "uuid[case]" when the run recorded an identity, else its node id."""
    uuid, case = test.get("test_uuid"), test.get("test_case") or ""
    if isinstance(uuid, str) and uuid:
        return f"{uuid}[{case}]" if case else uuid
    return str(test["nodeid"])


def compare(run_a: Path, run_b: Path) -> Comparison:
    a, b = load_summary(run_a), load_summary(run_b)
    tests_a = {test_key(t): t for t in a["tests"]}
    tests_b = {test_key(t): t for t in b["tests"]}
    result = Comparison(str(run_a), str(run_b))
    for key in sorted(tests_a.keys() & tests_b.keys(), key=lambda k: str(tests_b[k]["nodeid"])):
        before, after = tests_a[key]["outcome"], tests_b[key]["outcome"]
        kind = classify(before, after)
        if kind != "same":
            item = tests_b[key].get("release_note") or tests_a[key].get("release_note")
            result.changes.append(Change(str(tests_b[key]["nodeid"]), item, before, after, kind))
    result.only_in_a = sorted(str(tests_a[k]["nodeid"]) for k in tests_a.keys() - tests_b.keys())
    result.only_in_b = sorted(str(tests_b[k]["nodeid"]) for k in tests_b.keys() - tests_a.keys())
    for test in (
        *(tests_a[k] for k in tests_a.keys() - tests_b.keys()),
        *(tests_b[k] for k in tests_b.keys() - tests_a.keys()),
    ):
        result.missing_items[str(test["nodeid"])] = test.get("release_note")
    return result
