"""The release-note matrix as data: one cell per (catalog item, run) with its verdict and the tests behind it.

Why separate from the HTML: the verdict rules are what a release manager relies on, so they are tested on their own.
A cell's verdict, first rule that fires: any failed, error or unexpected pass -> "fail"; any expected failure ->
"known issue"; any pass -> "pass"; only skips -> "not applicable"; no test of that item in the run -> "no test".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from conformance.knowledge.catalog import Catalog, ReleaseNoteItem, load_catalog
from conformance.reports.runs import Run

FAIL, KNOWN, PASS, NOT_APPLICABLE, NO_TEST = "fail", "known issue", "pass", "not applicable", "no test"
VERDICTS = (FAIL, KNOWN, PASS, NOT_APPLICABLE, NO_TEST)
#: summary.json outcome -> the word a cell counts it under
OUTCOME_WORD = {
    "passed": PASS,
    "xfailed": KNOWN,
    "skipped": NOT_APPLICABLE,
    "failed": FAIL,
    "error": FAIL,
    "xpassed": FAIL,
}


@dataclass
class Cell:
    """The tests of one release-note item in one run."""

    item: str
    column: int
    tests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Verdict word -> number of tests, in VERDICTS order, zeros left out."""
        counted = Counter(OUTCOME_WORD[t["outcome"]] for t in self.tests)
        return {word: counted[word] for word in VERDICTS if counted[word]}

    @property
    def verdict(self) -> str:
        counts = self.counts
        for word in (FAIL, KNOWN, PASS, NOT_APPLICABLE):
            if counts.get(word):
                return word
        return NO_TEST

    @property
    def anchor(self) -> str:
        return f"cell-{self.item}-{self.column}"


@dataclass
class Matrix:
    """Rows are the catalog's items in catalog order, columns the runs in the order given."""

    items: tuple[ReleaseNoteItem, ...]
    runs: list[Run]
    cells: dict[tuple[str, int], Cell]
    unlinked: list[tuple[int, dict[str, Any]]]  # tests without a (known) release-note id: (column, test)

    def cell(self, item_id: str, column: int) -> Cell:
        return self.cells[(item_id, column)]

    def totals(self, column: int) -> dict[str, int]:
        """Number of items per verdict in one run."""
        counted = Counter(self.cell(item.id, column).verdict for item in self.items)
        return {word: counted[word] for word in VERDICTS if counted[word]}


def build_matrix(runs: list[Run], catalog: Catalog | None = None) -> Matrix:
    catalog = catalog or load_catalog()
    items = catalog.items()
    cells = {(item.id, column): Cell(item.id, column) for column in range(len(runs)) for item in items}
    unlinked: list[tuple[int, dict[str, Any]]] = []
    for column, run in enumerate(runs):
        for test in run.tests:
            item_id = test.get("release_note")
            if isinstance(item_id, str) and (item_id, column) in cells:
                cells[(item_id, column)].tests.append(test)
            else:
                unlinked.append((column, test))
    return Matrix(items, runs, cells, unlinked)


def throughput(runs: list[Run]) -> list[tuple[str, str, str, float]]:
    """F1 figures from summary.json ``metrics``: (run label, transport, buffer setting, MB/s), in run order.

    A setting is a ``SIZExCOUNT`` key (64 KiB units x buffers); other keys (unit, transport, latency) are context.
    """
    rows: list[tuple[str, str, str, float]] = []
    for run in runs:
        for test in run.tests:
            metrics = test.get("metrics")
            if not isinstance(metrics, dict) or metrics.get("unit", "MB/s") != "MB/s":
                continue
            transport = str(metrics.get("transport", "?"))
            for key, value in metrics.items():
                if _is_setting(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append((run.label, transport, key, float(value)))
    return rows


def _is_setting(key: str) -> bool:
    size, _, count = key.partition("x")
    return size.isdigit() and count.isdigit()
