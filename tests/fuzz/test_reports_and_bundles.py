"""Report folders and certification bundles, fuzzed: summaries with keys dropped or of the wrong type, run ids
that are paths, bundles truncated or with hostile members. `report`, `compare`, `merge` and `verify-bundle`
answer with their own one-line error or a verdict, and never write outside their output folder."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.certify import CertifyError
from conformance.certify.bundle import MANIFEST, build_files, manifest_text, write_bundle
from conformance.certify.product import load_product
from conformance.certify.profile import load_profile
from conformance.certify.verify import read_bundle, verify_bundle
from conformance.reports.build import build_report
from conformance.reports.runs import ReportError
from conformance.runs.compare import CompareError, compare
from conformance.runs.merge import MergeError, merge_runs
from tests.certify.conftest import GOOD_CASES, SMALL_PROFILE
from tests.certify.conftest import write_run as write_certify_run
from tests.fuzz.strategies import NASTY_TEXT, mutated
from tests.reports.conftest import TESTS_703
from tests.reports.conftest import write_run as write_report_run

#: examples per input kind; a deeper campaign: VDDKC_FUZZ_EXAMPLES=2000 python -m pytest tests/fuzz
FUZZ = settings(
    max_examples=int(os.environ.get("VDDKC_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _summary(folder: Path) -> dict[str, Any]:
    run = write_report_run(folder / "seed", "run-703", "7.0.3", "7.0U3", TESTS_703)
    return dict(json.loads((run / "summary.json").read_text()))


with tempfile.TemporaryDirectory() as _folder:
    VALID_SUMMARY = _summary(Path(_folder))


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _one_line(exc: Exception) -> None:
    assert str(exc).strip() and "\n" not in str(exc), str(exc)


@FUZZ
@given(summary=mutated(VALID_SUMMARY), other=mutated(VALID_SUMMARY))
def test_report_compare_and_merge_of_damaged_run_folders(summary: dict[str, Any], other: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        runs = []
        for name, data in (("a", summary), ("b", other)):
            run = write_report_run(root / name, "seed", "7.0.3", "7.0U3", TESTS_703)
            (run / "summary.json").write_text(json.dumps(data, default=str))
            runs.append(run)
        work = root / "work" / "deep" / "er"
        work.mkdir(parents=True)
        before = _files(root)
        try:
            build_report(runs, work / "report", allure=False)
        except ReportError as exc:
            _one_line(exc)
        try:
            compare(runs[0], runs[1])
        except CompareError as exc:
            _one_line(exc)
        try:
            merge_runs(runs, work / "merged")
        except MergeError as exc:
            _one_line(exc)
        outside = {p for p in _files(root) - before if work not in p.parents}
        assert outside == set(), sorted(outside)[:5]


def _bundle(folder: Path) -> bytes:
    profile = folder / "small.toml"
    profile.write_text(SMALL_PROFILE)
    product = folder / "product.yaml"
    product.write_text('name: Acme Backup\nversion: "2.10"\nvendor: Acme Corp\n')
    run = write_certify_run(folder, GOOD_CASES)
    files = build_files(run, load_product(product), product.read_text(), load_profile(str(profile)))
    write_bundle(files, folder / "b.tar.gz")
    return (folder / "b.tar.gz").read_bytes()


with tempfile.TemporaryDirectory() as _folder:
    VALID_BUNDLE = _bundle(Path(_folder))


@st.composite
def damaged_bundles(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["truncate", "member", "hostile-name", "json"]))
    if kind == "truncate":
        return VALID_BUNDLE[: draw(st.integers(min_value=0, max_value=len(VALID_BUNDLE) - 1))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "b.tar.gz"
        path.write_bytes(VALID_BUNDLE)
        files, _ = read_bundle(path)
    if kind == "member":
        name = draw(st.sampled_from(sorted(files)))
        files[name] = draw(st.binary(max_size=200))
    elif kind == "hostile-name":
        files[draw(NASTY_TEXT | st.text(min_size=1, max_size=30))] = b"x"
    else:
        name = draw(st.sampled_from(["summary.json", "certification.json", "environment.json"]))
        files[name] = json.dumps(draw(mutated(json.loads(files[name]))), default=str).encode()
        if draw(st.booleans()):
            files[MANIFEST] = manifest_text({k: v for k, v in files.items() if k != MANIFEST})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@FUZZ
@given(data=damaged_bundles())
def test_verify_bundle_of_damaged_bundles(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "small.toml").write_text(SMALL_PROFILE)
        (root / "b.tar.gz").write_bytes(data)
        before = _files(root)
        try:
            verdict = verify_bundle(root / "b.tar.gz", root / "small.toml")
        except CertifyError as exc:
            _one_line(exc)
        else:
            verdict.render()
            assert data == VALID_BUNDLE or not verdict.passed or verdict.problems == []
        assert _files(root) == before
