"""Compare two runs (report directories): which tests and release-note items changed outcome.

A test moves into one of: fixed (failed or known issue → passed), regressed (passed → failed or known
issue), newly known (→ expected failure), newly not applicable (→ skipped), or other changes. Items are
summarised the same way from their tests.
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


def compare(run_a: Path, run_b: Path) -> Comparison:
    a, b = load_summary(run_a), load_summary(run_b)
    tests_a = {t["nodeid"]: t for t in a["tests"]}
    tests_b = {t["nodeid"]: t for t in b["tests"]}
    result = Comparison(str(run_a), str(run_b))
    for nodeid in sorted(tests_a.keys() & tests_b.keys()):
        before, after = tests_a[nodeid]["outcome"], tests_b[nodeid]["outcome"]
        kind = classify(before, after)
        if kind != "same":
            item = tests_b[nodeid].get("release_note") or tests_a[nodeid].get("release_note")
            result.changes.append(Change(nodeid, item, before, after, kind))
    result.only_in_a = sorted(tests_a.keys() - tests_b.keys())
    result.only_in_b = sorted(tests_b.keys() - tests_a.keys())
    for nodeid in (*result.only_in_a, *result.only_in_b):
        test = tests_a.get(nodeid) or tests_b[nodeid]
        result.missing_items[nodeid] = test.get("release_note")
    return result
