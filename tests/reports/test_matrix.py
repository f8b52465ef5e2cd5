"""The matrix as data: catalog rows, run columns, the verdict rules and the F1 figures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.knowledge.catalog import load_catalog
from conformance.reports.matrix import FAIL, KNOWN, NO_TEST, NOT_APPLICABLE, PASS, Cell, build_matrix, throughput
from conformance.reports.runs import load_runs


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        (["passed", "xfailed", "failed"], FAIL),
        (["passed", "error"], FAIL),
        (["xpassed"], FAIL),
        (["passed", "xfailed", "skipped"], KNOWN),
        (["passed", "skipped"], PASS),
        (["skipped", "skipped"], NOT_APPLICABLE),
        ([], NO_TEST),
    ],
)
def test_cell_verdict_first_rule_that_fires(outcomes: list[str], verdict: str) -> None:
    cell = Cell("K4", 0, [{"nodeid": f"t{i}", "outcome": o} for i, o in enumerate(outcomes)])
    assert cell.verdict == verdict


def test_cell_counts_are_in_verdict_order_without_zeros() -> None:
    cell = Cell("K4", 0, [{"nodeid": "a", "outcome": "passed"}, {"nodeid": "b", "outcome": "xfailed"},
                          {"nodeid": "c", "outcome": "passed"}])  # fmt: skip
    assert list(cell.counts.items()) == [(KNOWN, 1), (PASS, 2)]


def test_rows_are_the_catalog_items_and_columns_the_runs(two_runs: list[Path]) -> None:
    matrix = build_matrix(load_runs(two_runs))
    assert [item.id for item in matrix.items] == list(load_catalog().ids())
    assert len(matrix.items) == len(load_catalog()) and len(matrix.cells) == 2 * len(load_catalog())
    assert matrix.cell("R5", 0).verdict == FAIL and matrix.cell("R5", 1).verdict == KNOWN
    assert matrix.cell("F1", 0).verdict == PASS and matrix.cell("F1", 1).verdict == NOT_APPLICABLE
    assert matrix.cell("K4", 0).counts == {KNOWN: 1, PASS: 1}
    assert matrix.cell("K1", 0).verdict == NO_TEST
    assert [test["nodeid"] for _, test in matrix.unlinked] == ["suites/test_helpers.py::test_unlinked"]
    assert matrix.totals(1) == {KNOWN: 2, PASS: 1, NOT_APPLICABLE: 1, NO_TEST: len(load_catalog()) - 4}


def test_throughput_takes_the_buffer_settings_of_each_run(two_runs: list[Path]) -> None:
    rows = throughput(load_runs(two_runs))
    label = "VDDK 7.0.3 · vSphere 7.0U3"
    assert rows == [
        (label, "nbd", "1x4", 40.0), (label, "nbd", "16x4", 310.0),
        (label, "nbdssl", "1x4", 38.5), (label, "nbdssl", "16x4", 300.25),
    ]  # fmt: skip


def test_throughput_ignores_other_units_and_non_numbers(make_run: Callable[..., Path]) -> None:
    odd = [
        ("t::a", "F1", "passed", "pass", "", {"unit": "IOPS", "transport": "nbd", "1x4": 5.0}),
        ("t::b", "F1", "passed", "pass", "", {"unit": "MB/s", "transport": "nbd", "1x4": "fast", "16x4": True}),
    ]
    assert throughput(load_runs([make_run("odd", tests=odd)])) == []
