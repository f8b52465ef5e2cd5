"""The matrix page as HTML: one cell per item and run, cells link to their tests, nothing external, no secret."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from conformance.knowledge.catalog import load_catalog
from conformance.reports.matrix import build_matrix
from conformance.reports.matrix_page import render, write_page
from conformance.reports.runs import load_runs
from tests.reports.conftest import SECRET


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def select(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in a.get("class", "").split())]


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def test_one_cell_per_item_and_run_in_catalog_order(two_runs: list[Path]) -> None:
    page = parse(render(build_matrix(load_runs(two_runs))))
    assert len(page.select("td", "cell")) == len(load_catalog()) * 2
    assert [a["id"] for a in page.select("tr") if "id" in a] == list(load_catalog().ids())
    verdicts = [a["data-verdict"] for a in page.select("td", "cell")]
    assert verdicts[:2] == ["pass", "not applicable"]  # F1 on 7.0.3, then on 7.0.2
    assert verdicts.count("fail") == 1


def test_every_cell_link_leads_to_a_details_section_with_its_tests(two_runs: list[Path]) -> None:
    html = render(build_matrix(load_runs(two_runs)))
    page = parse(html)
    details = {a["id"] for a in page.select("details", "cell-details")}
    links = [a["href"][1:] for a in page.select("a") if a.get("href", "").startswith("#cell-")]
    assert links and set(links) == details
    section = html[html.index('id="cell-R5-0"') :].split("</details>")[0]
    assert "suites/test_r5.py::test_full[nbd]" in section and "VixError: 13 &lt;disk full&gt;" in section


def test_the_page_is_self_contained_and_shows_no_secret(two_runs: list[Path]) -> None:
    html = render(build_matrix(load_runs(two_runs)), allure_href="allure/index.html")
    page = parse(html)
    assert not page.select("link") and not [a for t, a in page.tags if "src" in a]
    assert re.findall(r"https?://[^\s\"']+", html) == ["http://www.w3.org/2000/svg"]  # the SVG namespace only
    assert SECRET not in html and "password" not in html.lower()
    assert len(page.select("script")) == 1 and len(page.select("style")) == 1
    assert [a["href"] for a in page.select("a") if a.get("id") == "allure-link"] == ["allure/index.html"]


def test_test_names_and_reasons_are_escaped(make_run: Callable[..., Path]) -> None:
    hostile = [("suites/t.py::test[<script>alert(1)</script>]", "C4", "failed", "pass", '"><img src=x>', None)]
    html = render(build_matrix(load_runs([make_run("hostile", tests=hostile)])))
    assert "<script>alert(1)" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert len(parse(html).select("script")) == 1


def test_the_chart_has_one_bar_per_figure_and_is_omitted_without_figures(
    two_runs: list[Path], make_run: Callable[..., Path]
) -> None:
    with_figures = parse(render(build_matrix(load_runs(two_runs))))
    assert len(with_figures.select("svg")) == 1 and len(with_figures.select("rect", "bar")) == 4
    without = render(build_matrix(load_runs([two_runs[1]])))
    assert "<svg" not in without and "No F1 throughput figures" in without


def test_write_page_creates_the_folder(two_runs: list[Path], tmp_path: Path) -> None:
    path = write_page(build_matrix(load_runs(two_runs)), tmp_path / "deep" / "matrix.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
