"""Reading run directories: good ones load in the given order, bad ones give one line naming the folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.reports.runs import ReportError, load_run, load_runs


def test_runs_load_in_the_order_given(two_runs: list[Path]) -> None:
    runs = load_runs(list(reversed(two_runs)))
    assert [r.run_id for r in runs] == ["run-702", "run-703"]
    assert runs[1].label == "VDDK 7.0.3 · vSphere 7.0U3"
    assert runs[1].allure_results == two_runs[0] / "allure-results"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no summary.json"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"run_id": "x", "tests": []}', "missing vddk_build, vsphere"),
        ('{"run_id": "x", "vddk_build": "7.0.3", "vsphere": "7.0U3", "tests": [{"nodeid": "a", "outcome": "odd"}]}',
         "unknown outcome 'odd'"),
        ('{"run_id": "x", "vddk_build": "7.0.3", "vsphere": "7.0U3", "tests": [{}]}', "test #1 has no nodeid"),
    ],
)  # fmt: skip
def test_a_bad_run_directory_is_one_line_naming_it(tmp_path: Path, content: str | None, words: str) -> None:
    run = tmp_path / "run-x"
    run.mkdir()
    if content is not None:
        (run / "summary.json").write_text(content)
    with pytest.raises(ReportError) as caught:
        load_run(run)
    message = str(caught.value)
    assert words in message and str(run) in message and "\n" not in message


def test_missing_directory_and_duplicates_are_refused(tmp_path: Path, make_run: Callable[..., Path]) -> None:
    with pytest.raises(ReportError, match="no such run directory"):
        load_run(tmp_path / "absent")
    run = make_run("run-a")
    with pytest.raises(ReportError, match="given twice"):
        load_runs([run, run])
    with pytest.raises(ReportError, match="no RUN_DIR"):
        load_runs([])


def test_cli_report_exits_2_with_one_line_for_a_folder_without_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-run").mkdir()
    code = main(["report", str(tmp_path / "not-a-run"), "--out", str(tmp_path / "out"), "--no-allure"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no summary.json" in err
    assert not (tmp_path / "out" / "matrix.html").exists()


def test_cli_report_writes_the_matrix_page_without_allure(
    two_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", *map(str, two_runs), "--out", str(tmp_path / "out"), "--no-allure"])
    out = capsys.readouterr().out
    page = tmp_path / "out" / "matrix.html"
    assert code == 0 and page.is_file()
    assert f"matrix page {page}" in out
    assert json.loads((two_runs[0] / "summary.json").read_text())["run_id"] == "run-703"  # inputs untouched


@pytest.mark.parametrize("run_id", ["x/../../../../ESCAPED", "..", "a/b", "", "-leading-dash", "x" * 101])
def test_a_run_id_that_could_name_a_path_is_refused_and_nothing_is_written_outside_out(
    tmp_path: Path, make_run: Callable[..., Path], capsys: pytest.CaptureFixture[str], run_id: str
) -> None:
    run = make_run("run-forged")
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**summary, "run_id": run_id}))
    work = tmp_path / "work"
    (work / "a" / "b" / "c").mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*"))
    code = main(["report", str(run), "--out", str(work / "a" / "b" / "c" / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "run id" in err and "cannot hold a path" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # not one file anywhere, inside --out or outside


def test_run_and_merge_refuse_a_run_id_that_is_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--run-id=../../up", f"--reports={tmp_path}"]) == 2
    assert "--run-id: run id '../../up'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
