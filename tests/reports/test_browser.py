"""The matrix page in headless Chromium: it renders one cell per item and run, its links work, no console error."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.knowledge.catalog import load_catalog
from conformance.reports.build import build_report
from tests.reports.cdp import Browser, find_chromium

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    assert CHROMIUM is not None
    session = Browser(CHROMIUM, tmp_path / "profile")
    yield session
    session.close()


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def test_matrix_page_renders_every_cell_without_console_errors(
    two_runs: list[Path], tmp_path: Path, browser: Browser
) -> None:
    built = build_report(two_runs, tmp_path / "out", allure=False)
    browser.open(built.matrix.as_uri())
    assert browser.evaluate("document.querySelectorAll('#matrix tbody tr').length") == len(load_catalog())
    assert browser.evaluate("document.querySelectorAll('#matrix td.cell').length") == len(load_catalog()) * 2
    assert browser.evaluate("document.querySelectorAll('#throughput-chart rect.bar').length") == 4
    width = browser.evaluate("document.querySelector('#matrix td.cell').getBoundingClientRect().width")
    assert width > 50  # laid out, not collapsed
    screenshot = browser.screenshot(tmp_path / "matrix.png")
    assert png_size(screenshot)[0] >= 1000 and screenshot.stat().st_size > 20_000
    # a cell link opens the section listing its tests
    browser.evaluate("document.querySelector('#matrix tr#R5 td.cell a').click()")
    assert browser.evaluate("location.hash") == "#cell-R5-0"
    assert browser.evaluate("document.getElementById('cell-R5-0').open") is True
    # the filter keeps only rows with a failure or a known issue (R5 and K4 here)
    browser.evaluate("var b=document.getElementById('only-problems'); b.click();")
    visible = browser.evaluate("[...document.querySelectorAll('#matrix tbody tr:not([hidden])')].map(r => r.id)")
    assert visible == ["R5", "K4"]
    assert browser.errors() == []


def test_the_console_check_catches_errors(tmp_path: Path, browser: Browser) -> None:
    """The check above can fail: a page with a script error is reported."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><body><script>console.error('boom'); missingFunction();</script></body>")
    browser.open(page.as_uri())
    errors = browser.errors()
    assert any("boom" in e for e in errors) and any("missingFunction" in e for e in errors)
