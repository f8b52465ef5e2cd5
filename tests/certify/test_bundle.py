"""Bundles built from fabricated run directories: what verify-bundle accepts and what it names when it refuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.certify import CertifyError
from conformance.certify.bundle import MANIFEST, build_files, manifest_text, write_bundle
from conformance.certify.command import verify
from conformance.certify.product import load_product
from conformance.certify.profile import load_profile
from conformance.certify.verify import read_bundle, verify_bundle
from tests.certify.conftest import GOOD_CASES, SKIP_REASON


def make_bundle(run_dir: Path, profile: Path | str, product: Path, out: Path, secrets: tuple[str, ...] = ()) -> Path:
    files = build_files(run_dir, load_product(product), product.read_text(), load_profile(str(profile)), secrets)
    write_bundle(files, out)
    return out


def rewrite(bundle: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Repack a bundle after ``change`` edited its files (the manifest is left as it was unless changed)."""
    files, _ = read_bundle(bundle)
    change(files)
    with tarfile.open(bundle, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def good_bundle(make_run: Callable[..., Path], profile_file: Path, product_file: Path, tmp_path: Path) -> Path:
    return make_bundle(make_run(), profile_file, product_file, tmp_path / "b.tar.gz")


def test_a_complete_run_passes_with_a_one_screen_verdict(good_bundle: Path, profile_file: Path) -> None:
    verdict = verify_bundle(good_bundle, profile_file)
    text = verdict.render()
    assert verdict.passed, text
    assert text.startswith("verify-bundle: PASS")
    assert "test-small-v1" in text and "Acme Backup 2.10 by Acme Corp" in text and "vSphere 7.0U3" in text
    assert "required     3/3 ok (1 ended as a known issue the profile allows)" in text
    assert "advisory     0/1 ok" in text and "R5-001" in text  # shown, not counted
    assert "platform     0/1 ok (VDDK and the server alone, not counted)" in text
    assert "note: platform C3-001: 1 of 1 case(s) failed" in text  # its own section, never the product's verdict
    assert len(text.splitlines()) <= 24


def test_the_bundle_holds_every_run_file_and_a_manifest_of_them(good_bundle: Path) -> None:
    files, problems = read_bundle(good_bundle)
    assert not problems
    for name in (
        "product.yaml",
        "profile.toml",
        "environment.json",
        "certification.json",
        "junit.xml",
        "summary.json",
        "allure-results/abc-result.json",
        "allure-results/environment.properties",
    ):
        assert name in files, name
    assert files[MANIFEST] == manifest_text({k: v for k, v in files.items() if k != MANIFEST})
    environment = json.loads(files["environment.json"])
    assert environment["vddk_build"] == "7.0.3" and environment["vsphere_build"].startswith("18700403")
    assert environment["transports"] == ["nbd", "hotadd"] and environment["proxy_os"]


@pytest.mark.parametrize("name", ["summary.json", "junit.xml", "allure-results/abc-result.json", "product.yaml"])
def test_tampering_with_one_file_fails_naming_it(good_bundle: Path, profile_file: Path, name: str) -> None:
    rewrite(good_bundle, lambda files: files.__setitem__(name, files[name] + b" "))
    verdict = verify_bundle(good_bundle, profile_file)
    assert not verdict.passed
    assert f"{name}: changed (its sha256 differs from MANIFEST.sha256)" in verdict.problems


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (lambda f: f.pop("junit.xml"), "junit.xml: listed in MANIFEST.sha256 but missing from the bundle"),
        (lambda f: f.__setitem__("extra.txt", b"x"), "extra.txt: not listed in MANIFEST.sha256 (extra file)"),
        (lambda f: f.pop(MANIFEST), "MANIFEST.sha256: missing from the bundle; nothing can be checked"),
    ],
)
def test_missing_extra_or_unlisted_files_fail(
    good_bundle: Path, profile_file: Path, change: Callable[[dict[str, bytes]], None], line: str
) -> None:
    rewrite(good_bundle, change)
    verdict = verify_bundle(good_bundle, profile_file)
    assert not verdict.passed and line in verdict.problems


def _bundle_of(
    cases: list[tuple[str, str, str, str]],
    tmp_path: Path,
    make_run: Callable[..., Path],
    profile_file: Path,
    product_file: Path,
    **summary: object,
) -> Path:
    return make_bundle(make_run(cases, **summary), profile_file, product_file, tmp_path / "b.tar.gz")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda c: [x for x in c if x[1] != "RT-001"], "RT-001: did not run"),
        (
            lambda c: [(n, t, "xfailed" if t == "K4-001" else o, r) for n, t, o, r in c],
            "K4-001: ended as known issue K4, which the profile does not allow",
        ),
        (lambda c: [(n, t, "failed" if "nbd]" in n else o, r) for n, t, o, r in c], "RT-001: 1 of 2 case(s) failed"),
        (
            lambda c: [(n, t, "skipped" if t == "RT-001" else o, r) for n, t, o, r in c],
            "RT-001: 2 of 2 case(s) skipped",
        ),
        (
            lambda c: [(n, t, "skipped" if "nbdssl" in n else o, r) for n, t, o, r in c],
            f"RT-001: 1 of 2 case(s) skipped: suites/test_roundtrip.py::test_full[nbdssl] ({SKIP_REASON})",
        ),
        (
            lambda c: [(n, t, "xpassed" if t == "K2-001" else o, r) for n, t, o, r in c],
            "K2-001: 1 of 1 case(s) xpassed",
        ),
    ],
)
def test_required_tests_must_run_and_pass_or_be_an_allowed_known_issue(
    tmp_path: Path,
    make_run: Callable[..., Path],
    profile_file: Path,
    product_file: Path,
    edit: Callable[[list[tuple[str, str, str, str]]], list[tuple[str, str, str, str]]],
    problem: str,
) -> None:
    bundle = _bundle_of(edit(GOOD_CASES), tmp_path, make_run, profile_file, product_file)
    verdict = verify_bundle(bundle, profile_file)
    assert not verdict.passed
    assert any(p.startswith(problem) for p in verdict.problems), verdict.problems
    assert verify(bundle, str(profile_file)) == 1


def test_a_required_test_that_ran_as_a_platform_check_cannot_decide_the_verdict(
    make_run: Callable[..., Path], profile_file: Path, product_file: Path, tmp_path: Path
) -> None:
    run_dir = make_run()
    summary = json.loads((run_dir / "summary.json").read_text())
    for case in summary["tests"]:
        if "roundtrip" in case["nodeid"]:
            case["verdict_kind"] = "platform"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    verdict = verify_bundle(make_bundle(run_dir, profile_file, product_file, tmp_path / "b.tar.gz"), profile_file)
    assert not verdict.passed
    assert any(p.startswith("RT-001: a platform check") for p in verdict.problems), verdict.problems


@pytest.mark.parametrize(
    ("summary", "problem"),
    [
        ({"vddk_build": "7.0.2"}, "summary.json: VDDK build '7.0.2', the profile certifies 7.0.3"),
        ({"vsphere": "6.7U3"}, "summary.json: vSphere '6.7U3' is outside the profile's 7.0 to 8.0"),
        ({"shard": "1/2"}, "summary.json: the run is shard 1/2, not a whole run"),
        ({"exit_status": 2}, "summary.json: the run ended abnormally (pytest exit status 2)"),
    ],
)
def test_the_run_must_match_the_profiles_environment(
    tmp_path: Path,
    make_run: Callable[..., Path],
    profile_file: Path,
    product_file: Path,
    summary: dict[str, object],
    problem: str,
) -> None:
    bundle = _bundle_of(GOOD_CASES, tmp_path, make_run, profile_file, product_file, **summary)
    assert problem in verify_bundle(bundle, profile_file).problems


def test_a_rewritten_profile_is_caught_even_with_a_fixed_up_manifest(
    make_run: Callable[..., Path], product_file: Path, tmp_path: Path
) -> None:
    bundle = make_bundle(make_run(), "vddk-7.0.3-v1", product_file, tmp_path / "b.tar.gz")

    def loosen(files: dict[str, bytes]) -> None:
        files["profile.toml"] = files["profile.toml"].replace(
            b'known_issue = "not_allowed"', b'known_issue = "allowed"'
        )
        files[MANIFEST] = manifest_text({k: v for k, v in files.items() if k != MANIFEST})

    rewrite(bundle, loosen)
    verdict = verify_bundle(bundle)  # judged by the published profile, not the bundle's copy
    assert "profile.toml: differs from the published profile vddk-7.0.3-v1" in verdict.problems
    assert not any("sha256" in p for p in verdict.problems)
    assert any(p.startswith("RT-002: did not run") for p in verdict.problems)


def test_unsafe_members_are_reported_not_extracted(good_bundle: Path, profile_file: Path) -> None:
    with tarfile.open(good_bundle, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]  # type: ignore[union-attr]
    with tarfile.open(good_bundle, "w:gz") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
        link = tarfile.TarInfo("../escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    verdict = verify_bundle(good_bundle, profile_file)
    assert not verdict.passed and any(p.startswith("../escape: unsafe member") for p in verdict.problems)


@pytest.mark.parametrize(
    ("extra", "secrets", "named"),
    [
        ({"traces/calls.log": "ConnectEx(server, password=hunter22)"}, (), "traces/calls.log: line 1 sets a password"),
        ({"config.json": '{"user": "root", "password": "s3cr3t!"}'}, (), "config.json: line 1 sets a password"),
        ({"traces/calls.log": "connected with Zq9-secret-Xy"}, ("Zq9-secret-Xy",), "traces/calls.log: contains a pass"),
    ],
)
def test_a_bundle_with_a_secret_is_refused_naming_the_file(
    make_run: Callable[..., Path],
    profile_file: Path,
    product_file: Path,
    tmp_path: Path,
    extra: dict[str, str],
    secrets: tuple[str, ...],
    named: str,
) -> None:
    out = tmp_path / "b.tar.gz"
    with pytest.raises(CertifyError, match="secret found, bundle not written") as caught:
        make_bundle(make_run(extra_files=extra), profile_file, product_file, out, secrets)
    assert named in str(caught.value) and "hunter22" not in str(caught.value) and "s3cr3t" not in str(caught.value)
    assert not out.exists() and not list(tmp_path.glob(".b.tar.gz*"))


@pytest.mark.parametrize(
    "text",
    ["password=***", "password: <redacted>", "Target(password=target.password)", 'password=""', "password=${PASSWORD}"],
)
def test_redacted_values_and_code_are_not_secrets(
    make_run: Callable[..., Path], profile_file: Path, product_file: Path, tmp_path: Path, text: str
) -> None:
    bundle = make_bundle(make_run(extra_files={"log.txt": text}), profile_file, product_file, tmp_path / "b.tar.gz")
    assert verify_bundle(bundle, profile_file).passed


def test_verify_bundle_command_exit_codes(good_bundle: Path, profile_file: Path, tmp_path: Path) -> None:
    """0 on pass, 1 on fail with the file named, 2 with one line for input that is not a bundle."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conformance.cli", "verify-bundle", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    passed = run(str(good_bundle), "--profile", str(profile_file))
    assert passed.returncode == 0 and "verify-bundle: PASS" in passed.stdout, passed.stdout + passed.stderr
    rewrite(good_bundle, lambda files: files.__setitem__("junit.xml", b"<testsuites/>"))
    failed = run(str(good_bundle), "--profile", str(profile_file))
    assert failed.returncode == 1 and "junit.xml: changed" in failed.stdout and "FAIL" in failed.stdout
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tar")
    bad = run(str(garbage))
    assert bad.returncode == 2 and "not a readable .tar.gz bundle" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    unknown = run(str(good_bundle))  # the bundle names a profile this harness does not publish
    assert unknown.returncode == 2 and "unknown certification profile 'test-small-v1'" in unknown.stderr


def _flip(files: dict[str, bytes], names: tuple[str, ...]) -> None:
    """Rewrite the named reports so the run's failures read as passes, then recompute the manifest (a forger
    who edits some reports and not all)."""
    if "summary.json" in names:
        summary = json.loads(files["summary.json"])
        for test in summary["tests"]:
            test["outcome"] = "passed" if test["outcome"] in ("failed", "error") else test["outcome"]
        files["summary.json"] = json.dumps(summary).encode()
    if "junit.xml" in names:
        files["junit.xml"] = files["junit.xml"].replace(b"<failure/>", b"")
    files[MANIFEST] = manifest_text({k: v for k, v in files.items() if k != MANIFEST})


@pytest.mark.parametrize(
    ("edited", "shown"),
    [
        (
            ("summary.json", "junit.xml"),
            "allure-results: suites.test_r5#test_full shows 1 failed, summary.json says 1 passed",
        ),
        (("summary.json",), "junit.xml: suites/test_r5.py::test_full shows failure, summary.json says passed"),
        ((), None),
    ],
)
def test_a_bundle_whose_reports_disagree_does_not_verify(
    good_bundle: Path, profile_file: Path, edited: tuple[str, ...], shown: str | None
) -> None:
    rewrite(good_bundle, lambda files: _flip(files, edited))
    verdict = verify_bundle(good_bundle, profile_file)
    if shown is None:
        assert not [p for p in verdict.problems if "junit.xml" in p or "allure-results" in p], verdict.problems
    else:
        assert shown in verdict.problems and not verdict.passed, verdict.problems


def test_junit_failures_under_a_passing_summary_do_not_verify(good_bundle: Path, profile_file: Path) -> None:
    def fail_in_junit(files: dict[str, bytes]) -> None:
        files["junit.xml"] = files["junit.xml"].replace(b'name="test_full[nbd]">', b'name="test_full[nbd]"><failure/>')
        files[MANIFEST] = manifest_text({k: v for k, v in files.items() if k != MANIFEST})

    rewrite(good_bundle, fail_in_junit)
    verdict = verify_bundle(good_bundle, profile_file)
    assert "junit.xml: suites/test_roundtrip.py::test_full[nbd] shows failure, summary.json says passed" in (
        verdict.problems
    )


def test_a_huge_member_is_hashed_as_a_stream_not_held_in_memory(good_bundle: Path, profile_file: Path) -> None:
    """A 256 MiB member of zeros (compresses to almost nothing): verify reads it in chunks."""
    big = 256 * 1024 * 1024
    files, _ = read_bundle(good_bundle)
    with tarfile.open(good_bundle, "w:gz", compresslevel=1) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("allure-results/huge.bin")
        info.size = big
        tar.addfile(info, io.BufferedReader(_Zeros(big)))
    child = subprocess.run(
        [sys.executable, "-c", MEASURE, str(good_bundle), str(profile_file)], capture_output=True, text=True, check=True
    )
    problems, peak_kib = json.loads(child.stdout)
    assert "allure-results/huge.bin: not listed in MANIFEST.sha256 (extra file)" in problems
    assert peak_kib < 160 * 1024, f"verify peaked at {peak_kib >> 10} MiB for a {big >> 20} MiB member"


#: verify in a fresh process, printing its problems and its peak resident memory (KiB). VmHWM, not getrusage's
#: ru_maxrss: Linux carries ru_maxrss across fork and exec, so the child would report the test worker's own peak.
MEASURE = """
import json, sys
from pathlib import Path
from conformance.certify.verify import verify_bundle
verdict = verify_bundle(Path(sys.argv[1]), Path(sys.argv[2]))
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps([verdict.problems, peak]))
"""


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count
