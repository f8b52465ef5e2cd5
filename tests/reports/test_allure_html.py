"""The Allure HTML report: staging fixes, the one-line answers without Node or Allure, and a real generation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.reports import allure_html
from conformance.reports.allure_html import (
    AllureError,
    allure_command,
    default_cache,
    stage_results,
    strip_analytics,
    write_config,
)
from conformance.reports.build import build_report
from conformance.reports.categories import CATEGORIES
from conformance.reports.runs import load_runs


def results(folder: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*-result.json"))]


def test_staging_links_the_matrix_page_adds_run_parameters_and_keeps_inputs(
    two_runs: list[Path], tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in (two_runs[0] / "allure-results").iterdir()}
    staged = stage_results(load_runs(two_runs), tmp_path / "staging", "../matrix.html")
    assert [p.name for p in staged] == ["run-0", "run-1"]
    assert {p.name: p.read_bytes() for p in (two_runs[0] / "allure-results").iterdir()} == before
    first, second = results(staged[0]), results(staged[1])
    links = sorted(link["url"] for r in first for link in r["links"])  # type: ignore[attr-defined]
    assert "../matrix.html#K4" in links and not [u for u in links if "release-notes" in u]
    assert all({"name": "VDDK build", "value": "7.0.3"} in r["parameters"] for r in first)  # type: ignore[operator]
    assert all({"name": "vSphere", "value": "7.0U3"} in r["parameters"] for r in second)  # type: ignore[operator]
    same_test = [r["historyId"] for r in first + second if r["name"] == "test_roundtrip"]
    assert len(set(same_test)) == 2  # one test on two builds: two histories, not one test retried
    assert {"name": "vddk_run", "value": "vddk-7-0-3-vsphere-7-0U3"} in first[0]["labels"]  # type: ignore[operator]
    assert (staged[0] / "categories.json").is_file() and (staged[1] / "categories.json").is_file()
    assert (staged[0] / "environment.properties").read_text() == "vddk.build=7.0.3 | 7.0.2\nvsphere=7.0U3\n"
    assert not (staged[1] / "environment.properties").exists()


def test_the_config_has_one_environment_per_run_and_keeps_history_in_out(two_runs: list[Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "allurerc.mjs", tmp_path / "out" / "allure", tmp_path / "h.jsonl", "R",
                          load_runs(two_runs)).read_text()  # fmt: skip
    assert '"vddk-7-0-3-vsphere-7-0U3": { name: "VDDK 7.0.3 \\u00b7 vSphere 7.0U3", matcher: run(' in config
    assert '"historyPath": "' + str(tmp_path / "h.jsonl") + '"' in config and '"singleFile": true' in config
    assert config.count("matchedStatuses") == len(CATEGORIES)  # every rule (two of them fill "Lab problem")


def test_a_run_without_allure_results_is_left_out_of_staging(make_run: Callable[..., Path], tmp_path: Path) -> None:
    runs = load_runs([make_run("bare", allure=False), make_run("full")])
    assert [p.name for p in stage_results(runs, tmp_path / "s", "../matrix.html")] == ["run-1"]


def test_strip_analytics_removes_the_tag_manager(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(
        '<body><div id="app"></div>\n    <script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n'
        "    <script>\n        window.dataLayer = window.dataLayer || [];\n"
        "        function gtag(){dataLayer.push(arguments);}\n"
        "        gtag('config', 'G-X', {});\n    </script>\n<script>window.data = 1;</script></body>"
    )
    assert strip_analytics(tmp_path) == 1
    text = page.read_text()
    assert "googletagmanager" not in text and "gtag" not in text and "window.data = 1" in text


def test_without_node_one_line_and_the_matrix_page_is_still_written(
    two_runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(allure_html.shutil, "which", lambda name: None)
    with pytest.raises(AllureError, match=r"Node\.js is not installed"):
        allure_command(tmp_path / "cache")
    built = build_report(two_runs, tmp_path / "out", cache=tmp_path / "cache")
    assert built.allure is None and built.matrix.is_file()
    assert len(built.notes) == 1 and "\n" not in built.notes[0] and built.notes[0].startswith("Allure HTML skipped")
    assert "allure-link" not in built.matrix.read_text()


def test_without_npm_and_without_a_cached_allure_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allure_html.shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)
    with pytest.raises(AllureError, match="npm is not available") as caught:
        allure_command(tmp_path / "empty-cache")
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def allure_cache() -> Path:
    """Allure 3 installed from npm (once per machine); skipped when Node or the npm registry is unreachable."""
    cache = default_cache()
    try:
        allure_command(cache)
    except AllureError as exc:
        pytest.skip(f"Allure 3 unavailable, cannot build the HTML report: {exc}")
    return cache


def test_allure_html_of_two_runs_with_history_across_reports(
    two_runs: list[Path], tmp_path: Path, allure_cache: Path
) -> None:
    out = tmp_path / "out"
    first = build_report(two_runs, out, cache=allure_cache)
    assert first.notes == [] and first.allure == out / "allure" / "index.html"
    html = first.allure.read_text(encoding="utf-8")
    assert "googletagmanager" not in html and len(html) > 10_000
    stats = json.loads((out / "allure" / "summary.json").read_text())["stats"]
    assert stats["total"] == 12 and stats["failed"] == 1  # 8 + 4 tests, the same test on two builds kept apart
    tests = json.loads((out / "allure" / "test-results.json").read_text())["byId"].values()
    assert {t["environment"] for t in tests} == {"VDDK 7.0.3 · vSphere 7.0U3", "VDDK 7.0.2 · vSphere 7.0U3"}
    assert 'id="allure-link" href="allure/index.html"' in first.matrix.read_text()
    build_report(two_runs, out, cache=allure_cache)
    history = (out / "history" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2 and all(json.loads(line)["testResults"] for line in history)
    assert not (out / ".allure-staging").exists()


def test_runs_that_differ_in_application_matrix_or_faults_are_separate_environments(
    make_run: Callable[..., Path],
) -> None:
    from conformance.reports.allure_html import environment_id, environment_label
    from conformance.reports.runs import load_run

    def run(run_id: str, **over: Any) -> Any:
        path = make_run(run_id)
        summary = json.loads((path / "summary.json").read_text())
        (path / "summary.json").write_text(json.dumps({**summary, **over}))
        return load_run(path)

    plain, again = run("r1"), run("r2")
    others = [run("r3", backup_app="vendor:App"), run("r4", matrix="full"), run("r5", sim_faults=["x"])]
    assert environment_id(plain) == environment_id(again) == "vddk-7-0-3-vsphere-7-0U3"
    ids = {environment_id(r) for r in others}
    assert len(ids) == 3 and environment_id(plain) not in ids
    assert "backup app vendor:App" in environment_label(others[0]) and "matrix full" in environment_label(others[1])
