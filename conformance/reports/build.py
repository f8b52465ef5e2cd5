"""``vddk-conformance report``: the Allure HTML report and the matrix page of one or more runs, in one folder.

Why this order: the Allure report is optional (it needs Node and the npm package) and the matrix page is not, so
a missing or failing Allure becomes one line in ``notes`` and the matrix page is written in every case, linking the
Allure report only when it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conformance.reports.allure_html import AllureError, build_allure_html
from conformance.reports.matrix import build_matrix
from conformance.reports.matrix_page import write_page
from conformance.reports.runs import load_runs

MATRIX_NAME = "matrix.html"


@dataclass
class Built:
    """What the report command wrote, and one line per thing it could not do."""

    matrix: Path
    allure: Path | None = None
    notes: list[str] = field(default_factory=list)


def build_report(run_dirs: Sequence[Path], out: Path, *, allure: bool = True, cache: Path | None = None) -> Built:
    """Load the runs (ReportError on bad input), build the Allure HTML if asked, then write the matrix page."""
    runs = load_runs(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    index: Path | None = None
    notes: list[str] = []
    if allure:
        try:
            index = build_allure_html(runs, out, cache=cache, matrix_name=MATRIX_NAME)
        except AllureError as exc:
            notes.append(f"Allure HTML skipped: {exc}")
    href = index.relative_to(out).as_posix() if index is not None else None
    matrix = write_page(build_matrix(runs), out / MATRIX_NAME, allure_href=href)
    return Built(matrix, index, notes)
