"""certify end to end on the embedded simulator (a small profile keeps it to seconds), and its input checks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conformance.certify.selection import _record_secrets, read_secrets

PROFILE = """\
[profile]
id = "test-sim"
version = 1
status = "approved"
title = "fast tests on the simulator"
vddk_build = "7.0.3"
vsphere_min = "7.0"
vsphere_max = "8.0"

[[test]]
id = "C1-001"

[[test]]
id = "K4-001"
known_issue = "allowed"

[[test]]
id = "K2-001"
status = "platform"
known_issue = "allowed"

[[test]]
id = "C3-001"
status = "platform"
"""


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    profile = tmp_path / "test-sim.toml"
    profile.write_text(PROFILE)
    product = tmp_path / "product.yaml"
    product.write_text('name: Acme Backup\nversion: "2.10"\nvendor: Acme Corp\n')
    return profile, product


@pytest.mark.slow
def test_certify_then_verify_bundle_passes_and_tampering_fails(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    profile, product = inputs
    bundle = tmp_path / "acme.tar.gz"
    made = cli(
        "certify",
        "--target",
        "sim",
        "--product",
        str(product),
        "--out",
        str(bundle),
        "--profile",
        str(profile),
        "-n",
        "0",
        "--reports",
        str(tmp_path / "reports"),
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert "verify-bundle: PASS" in made.stdout
    with tarfile.open(bundle) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    certification = json.loads(files["certification.json"])
    assert set(certification["tests"].values()) == {"C1-001", "K4-001", "K2-001", "C3-001"}
    summary = json.loads(files["summary.json"])
    assert summary["totals"].get("xfailed") == 3 and "failed" not in summary["totals"]  # K4-001 twice, K2-001
    kinds = {t["nodeid"].split("::")[0]: t["verdict_kind"] for t in summary["tests"]}
    assert (
        kinds["suites/test_k2_cleanup_processes.py"] == "platform"
        and kinds["suites/test_k4_vsan_hotadd.py"] == "product"
    )
    assert any(name.startswith("allure-results/") and name.endswith("-result.json") for name in files)
    assert not any(b"simulated-guest" in data for data in files.values())  # the simulator's guest password

    checked = cli("verify-bundle", str(bundle), "--profile", str(profile), timeout=60)
    assert checked.returncode == 0 and checked.stdout.startswith("verify-bundle: PASS"), checked.stdout
    assert "required     2/2 ok" in checked.stdout and "VDDK 7.0.3, vSphere 7.0U3" in checked.stdout
    assert "platform     2/2 ok" in checked.stdout

    with tarfile.open(bundle, "w:gz") as tar:  # one byte more in the JUnit file, manifest untouched
        for name, data in files.items():
            data = data + b"\n" if name == "junit.xml" else data
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tampered = cli("verify-bundle", str(bundle), "--profile", str(profile), timeout=60)
    assert tampered.returncode == 1
    assert "junit.xml: changed (its sha256 differs from MANIFEST.sha256)" in tampered.stdout


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'id = "K2-001"\nstatus = "platform"',
            'id = "K2-001"\nstatus = "required"',
            "test K2-001 is required but a platform",
        ),
        ('id = "C1-001"', 'id = "C1-001"\nstatus = "platform"', "test C1-001 is platform but a product test"),
    ],
)
def test_certify_refuses_a_profile_that_mixes_up_product_and_platform_tests(
    tmp_path: Path, inputs: tuple[Path, Path], old: str, new: str, message: str
) -> None:
    profile, product = inputs
    profile.write_text(PROFILE.replace(old, new, 1))
    bundle = tmp_path / "b.tar.gz"
    result = cli("certify", "--product", str(product), "--out", str(bundle), "--profile", str(profile), "-n", "0")
    assert result.returncode != 0 and not bundle.exists()
    assert message in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("product_text", "message"),
    [
        ("name: Acme\nversion: 2.1\nvendor: Acme\n", "field 'version' must be a string"),
        ("name: Acme\nversion: '2'\n", "field 'vendor' is missing"),
        ("name: Acme\nversion: '2'\nvendor: Acme\ndescription: 'admin password=hunter22'\n", "secret found"),
    ],
)
def test_certify_refuses_a_bad_product_before_running(
    tmp_path: Path, inputs: tuple[Path, Path], product_text: str, message: str
) -> None:
    profile, product = inputs
    product.write_text(product_text)
    bundle = tmp_path / "b.tar.gz"
    result = cli("certify", "--product", str(product), "--out", str(bundle), "--profile", str(profile), timeout=60)
    assert result.returncode == 2 and message in result.stderr and str(product) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "hunter22" not in result.stderr and not bundle.exists() and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "vddk-9-v1"], "unknown certification profile 'vddk-9-v1'"),
        (["--vsphere", "6.7"], "covers vSphere 7.0 to 8.0"),
        (["--out", "bundle.zip"], "give a file name ending in .tar.gz"),
        (["--target", "no-such-target.toml"], "--target no-such-target.toml: use 'sim' or the path of a target file"),
    ],
)
def test_certify_refuses_bad_options_in_one_line(
    tmp_path: Path, inputs: tuple[Path, Path], args: list[str], message: str
) -> None:
    _, product = inputs
    options = {"--out": "b.tar.gz", "--profile": "vddk-7.0.3-v1", **dict(zip(args[::2], args[1::2], strict=True))}
    options["--out"] = str(tmp_path / options["--out"])
    result = cli("certify", "--product", str(product), *[x for kv in options.items() for x in kv], timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("b.*"))


def test_an_existing_bundle_is_never_overwritten(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    profile, product = inputs
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"earlier evidence")
    result = cli("certify", "--product", str(product), "--out", str(bundle), "--profile", str(profile), timeout=60)
    assert result.returncode == 2 and "exists" in result.stderr and bundle.read_bytes() == b"earlier evidence"


class _Target:
    password = "target-pass-123"

    class guest:  # noqa: N801 - mimics Target.guest
        password = "guest-pass-456"


class _Config:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def getoption(self, name: str) -> str:
        assert name == "certify_secrets"
        return str(self.folder)


def test_the_plugin_hands_the_targets_passwords_to_the_scan_privately(tmp_path: Path) -> None:
    _record_secrets(_Config(tmp_path), _Target())  # type: ignore[arg-type]
    assert read_secrets(tmp_path) == {"target-pass-123", "guest-pass-456"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.iterdir())
