"""A bundle is measured against the profile's published conformance list: it holds the list (with its sha256 in
certification.json, and the command line and harness version that made it), and a required test passes only when
every case the list names ran, matched by permanent id (uuid and parameters), so a deselected case fails it like a
skipped one, and a bundle carrying another list fails."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.certify.bundle import CERTIFICATION, LIST_MEMBER, build_files, manifest_text, write_bundle
from conformance.certify.conformance_list import packaged_text, parse
from conformance.certify.product import load_product
from conformance.certify.profile import load_profile
from conformance.certify.verify import verify_bundle
from tests.certify.conftest import write_run

PROFILE = "vddk-7.0.3-v2"


def listed_cases(drop: int = 0) -> tuple[list[tuple[str, str, str, str]], dict[str, tuple[str, str, str]]]:
    """Every case of the published list as a passing result (less the first `drop` cases of RT-001)."""
    listed = parse(packaged_text(PROFILE) or "", PROFILE)
    cases, identity = [], {}
    for test in listed.tests:
        for index, case in enumerate(test.cases):
            if test.name == "RT-001" and index < drop:
                continue
            # node ids are arbitrary here (cases are matched by uuid and parameters) and plain (the fabricated
            # junit.xml does not escape)
            nodeid = f"suites/test_{test.name.lower().replace('-', '_')}.py::test_it[{index}]"
            cases.append((nodeid, test.name, "passed", test.release_note))
            identity[nodeid] = (test.uuid, case, test.status)
    return cases, identity


def bundle_of(tmp_path: Path, product: Path, drop: int = 0) -> Path:
    cases, identity = listed_cases(drop)
    run_dir = write_run(tmp_path, cases)
    summary = json.loads((run_dir / "summary.json").read_text())
    for test in summary["tests"]:
        uuid, case, status = identity[test["nodeid"]]
        test.update(test_uuid=uuid, test_case=case, verdict_kind="platform" if status == "platform" else "product")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    command = ["vddk-conformance", "certify", "--product", str(product), "--out", "b.tar.gz"]
    files = build_files(run_dir, load_product(product), product.read_text(), load_profile(PROFILE), (), command)
    out = tmp_path / "b.tar.gz"
    write_bundle(files, out)
    return out


def test_a_run_of_every_listed_case_passes_and_the_bundle_records_its_contract(
    tmp_path: Path, product_file: Path
) -> None:
    bundle = bundle_of(tmp_path, product_file)
    verdict = verify_bundle(bundle)
    assert verdict.passed, verdict.render()
    certification = verdict.certification
    assert certification["command_line"][:2] == ["vddk-conformance", "certify"]
    assert certification["harness"].startswith("vddk-conformance ")
    assert len(certification["conformance_list_sha256"]) == 64


def test_a_deselected_case_of_a_required_test_fails_it(tmp_path: Path, product_file: Path) -> None:
    verdict = verify_bundle(bundle_of(tmp_path, product_file, drop=1))
    assert not verdict.passed
    expected = "RT-001: 1 of 19 listed case(s) did not run (deselected or not collected)"
    assert any(expected in problem for problem in verdict.problems), verdict.problems


def test_a_bundle_carrying_another_list_fails(tmp_path: Path, product_file: Path) -> None:
    """Even with the digest in certification.json and the manifest made to match the forged list."""
    from conformance.certify.conformance_list import digest
    from tests.certify.test_bundle import rewrite

    bundle = bundle_of(tmp_path, product_file, drop=1)

    def forge(files: dict[str, bytes]) -> None:
        text = files[LIST_MEMBER].decode().replace('    "hotadd-NFS-random",\n', "", 1)  # the dropped case
        files[LIST_MEMBER] = text.encode()
        certification = json.loads(files[CERTIFICATION])
        certification["conformance_list_sha256"] = digest(text)
        files[CERTIFICATION] = json.dumps(certification).encode()
        files.pop("MANIFEST.sha256", None)
        files["MANIFEST.sha256"] = manifest_text(files)

    rewrite(bundle, forge)
    verdict = verify_bundle(bundle)
    assert not verdict.passed
    assert f"{LIST_MEMBER}: differs from the published conformance list of {PROFILE}" in verdict.problems
