"""``certify`` and ``verify-bundle`` as the command line calls them.

Why certify goes through ``vddk-conformance run``: a certification run must be an ordinary run (same options,
fixtures, expectations and reports), only restricted to the profile's tests by the ``selection`` plugin.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from conformance.certify import CertifyError
from conformance.certify.bundle import build_files, write_bundle
from conformance.certify.product import load_product
from conformance.certify.profile import load_profile
from conformance.certify.scan import scan_files
from conformance.certify.selection import TEST_MAP, read_secrets
from conformance.certify.verify import verify_bundle
from conformance.knowledge.versions import VersionError

__all__ = ["certify", "verify"]


def _profile_reference(name: str | None) -> str | None:
    """A profile file is handed to pytest by absolute path (workers may start elsewhere)."""
    if name and name.endswith(".toml"):
        return str(Path(name).resolve())
    return name


def certify(
    target: str,
    product_path: Path,
    out: Path,
    profile_name: str | None = None,
    vsphere: str = "7.0U3",
    workers: str = "auto",
    reports: Path | None = None,
    *,
    run_command: Callable[[list[str]], int],
    command_line: Sequence[str] = (),
) -> int:
    """Run the profile's tests, pack the bundle, print its verdict; 0 = bundle written and passing, 1 = failing.
    `run_command` runs `vddk-conformance ARGV` (the command line hands in its own entry: no import cycle)."""
    from conformance.lab.resources import new_run_id

    if target != "sim" and not Path(target).is_file():
        raise CertifyError(f"--target {target}: use 'sim' or the path of a target file")
    product = load_product(product_path)
    product_text = Path(product_path).read_text(encoding="utf-8")
    leaks = scan_files({str(product_path): product_text.encode("utf-8")})
    if leaks:
        raise CertifyError(f"secret found, nothing run: {leaks[0]}")
    profile = load_profile(_profile_reference(profile_name))
    try:
        covered = profile.covers_vsphere(vsphere)
    except VersionError as exc:
        raise CertifyError(f"--vsphere {vsphere}: {exc}") from None
    if not covered:
        raise CertifyError(
            f"--vsphere {vsphere}: profile {profile.key} covers vSphere {profile.vsphere_min} to {profile.vsphere_max}"
        )
    out = Path(out)
    if not out.name.endswith((".tar.gz", ".tgz")):
        raise CertifyError(f"--out {out}: give a file name ending in .tar.gz")
    if out.exists():
        raise CertifyError(f"--out {out} exists: give a new file name (a bundle is never overwritten)")
    if not out.parent.is_dir():
        raise CertifyError(f"--out {out}: folder {out.parent} does not exist")
    keep_reports = reports is not None
    reports_dir = Path(reports) if reports else Path(tempfile.mkdtemp(prefix="vddk-certify-"))
    secrets_dir = Path(tempfile.mkdtemp(prefix="vddk-certify-secrets-"))
    run_id = f"certify-{new_run_id()}"
    argv = [
        "run",
        "--target",
        target,
        "--vddk-build",
        profile.vddk_build,
        "--vsphere",
        vsphere,
        "--reports",
        str(reports_dir),
        "--run-id",
        run_id,
        "-n",
        str(workers),
        "-p",
        "conformance.certify.selection",
        f"--certify-profile={_profile_reference(profile_name) or profile.key}",
        f"--certify-secrets={secrets_dir}",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",  # this process imported the plugin before pytest started
    ]
    if product.backup_app:
        argv.insert(1, f"--backup-app={product.backup_app}")
    try:
        code = run_command(argv)
        run_dir = reports_dir / run_id
        if not (run_dir / "summary.json").is_file():
            raise CertifyError(f"the certification run wrote no report (exit status {code}); see the output above")
        if not (run_dir / TEST_MAP).is_file():
            raise CertifyError(f"no test of profile {profile.key} was collected (exit status {code})")
        files = build_files(run_dir, product, product_text, profile, read_secrets(secrets_dir), command_line)
        count = write_bundle(files, out)
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)
        if not keep_reports:
            shutil.rmtree(reports_dir, ignore_errors=True)
    if not keep_reports:
        print("certify: the run's reports are in the bundle only (pass --reports DIR to keep a copy)", flush=True)
    print(f"certify: wrote {out} ({count} files, profile {profile.key}, product {product.label()})", flush=True)
    verdict = verify_bundle(out, Path(profile_name) if profile_name and profile_name.endswith(".toml") else None)
    print(verdict.render(), flush=True)
    return 0 if verdict.passed else 1


def verify(bundle: Path, profile: str | None = None) -> int:
    """Print the verdict; 0 = PASS, 1 = FAIL (CertifyError, exit 2, for input that is not a bundle)."""
    if profile is not None and not Path(profile).is_file():
        raise CertifyError(f"--profile {profile}: no such file")
    verdict = verify_bundle(Path(bundle), Path(profile) if profile else None)
    print(verdict.render(), file=sys.stdout, flush=True)
    return 0 if verdict.passed else 1
