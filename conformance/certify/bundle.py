"""The certification bundle: one .tar.gz holding the product, the profile, the environment, the run's reports and
a sha256 manifest of every file.

Layout (flat, so ``sha256sum -c MANIFEST.sha256`` works after ``tar xzf``)::

    certification.json   profile key, product, run id, node id -> test id, when and by which harness
    product.yaml         the description as the partner wrote it
    profile.toml         the profile file the run used
    environment.json     VDDK build, vSphere version and build, proxy OS, transports, target
    junit.xml, summary.json, allure-results/..., and every other file of the run directory (call traces)
    MANIFEST.sha256      "<sha256>  <path>" for every file above

Why refuse on secrets: see ``scan``. Why deterministic tar members (sorted, fixed owner and mode): two bundles of
the same files are the same bytes, which makes a changed bundle easy to spot.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tarfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from conformance.certify import CertifyError
from conformance.certify.conformance_list import digest as list_digest
from conformance.certify.conformance_list import packaged_text
from conformance.certify.product import Product
from conformance.certify.profile import Profile
from conformance.certify.scan import scan_files
from conformance.certify.selection import TEST_MAP

__all__ = ["BUNDLE_FORMAT", "MANIFEST", "build_files", "environment_of", "manifest_text", "write_bundle"]

BUNDLE_FORMAT = 1
MANIFEST = "MANIFEST.sha256"
CERTIFICATION = "certification.json"
#: the conformance list the run was measured against (certify/conformance_list.py)
LIST_MEMBER = "conformance-list.toml"
OWN_FILES = (CERTIFICATION, "product.yaml", "profile.toml", LIST_MEMBER, "environment.json", MANIFEST)


def _read_properties(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _local_os() -> str:
    """The OS of the machine where VDDK ran (certify packs on the machine that ran the tests)."""
    try:
        release = platform.freedesktop_os_release()
        return release.get("PRETTY_NAME") or release.get("NAME") or platform.platform()
    except OSError:
        return platform.platform()


def environment_of(summary: dict[str, Any], properties: dict[str, str]) -> dict[str, Any]:
    """What the run ran against, from summary.json's target info and environment.properties."""
    target: dict[str, Any] = summary.get("target") or {}
    vsphere = str(summary.get("vsphere") or target.get("vsphere") or properties.get("vsphere") or "")
    target_name = str(target.get("name") or properties.get("target") or "")
    vsphere_build = str(target.get("vsphere_build") or "")
    if not vsphere_build and target_name.startswith("sim"):
        from conformance.sim.profiles import UnknownProfileError, get_profile

        try:
            vsphere_build = f"{get_profile(vsphere).build} (simulated)"
        except UnknownProfileError:
            vsphere_build = ""
    transports = target.get("transports") or [t for t in properties.get("transports", "").split(",") if t]
    return {
        "vddk_build": summary.get("vddk_build") or properties.get("vddk.build"),
        "vddk_behaviour": summary.get("sim_behaviour") or properties.get("vddk.behaviour"),
        "vsphere": vsphere,
        "vsphere_build": vsphere_build or "not reported by the target",
        "proxy_os": str(target.get("proxy_os") or _local_os()),
        "transports": list(transports),
        "target": target_name,
        "backup_app": summary.get("backup_app") or properties.get("backup.app"),
        "python": properties.get("python") or platform.python_version(),
    }


def _harness_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vddk-conformance")
    except PackageNotFoundError:
        return "unknown"


def _run_files(run_dir: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(run_dir).as_posix()
        if relative in OWN_FILES:
            raise CertifyError(f"{path}: the run directory holds a file named like a bundle file; rename it")
        files[relative] = path.read_bytes()
    return files


def build_files(
    run_dir: Path,
    product: Product,
    product_text: str,
    profile: Profile,
    secrets: Iterable[str] = (),
    command_line: Sequence[str] = (),
) -> dict[str, bytes]:
    """Every file of the bundle but the manifest; refuses (CertifyError) a run without reports or with a secret."""
    run_dir = Path(run_dir)
    for needed in ("summary.json", "junit.xml"):
        if not (run_dir / needed).is_file():
            raise CertifyError(f"{run_dir}: no {needed}: the run did not finish writing its reports")
    files = _run_files(run_dir)
    try:
        summary = json.loads(files["summary.json"])
        tests_map = json.loads(files[TEST_MAP]).get("tests", {}) if TEST_MAP in files else {}
    except json.JSONDecodeError as exc:
        raise CertifyError(f"{run_dir}: summary.json or {TEST_MAP} is not valid JSON ({exc})") from None
    properties = _read_properties(files.get("allure-results/environment.properties", b"").decode("utf-8", "replace"))
    environment = environment_of(summary, properties)
    certification = {
        "format": BUNDLE_FORMAT,
        "profile": profile.key,
        "profile_status": profile.status,
        "product": product.to_dict(),
        "run_id": summary.get("run_id"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "harness": f"vddk-conformance {_harness_version()}",
        "command_line": list(command_line),
        "tests": tests_map,
    }
    listed = packaged_text(profile.key)
    if listed is not None:
        files[LIST_MEMBER] = listed.encode("utf-8")
        certification["conformance_list_sha256"] = list_digest(listed)
    files["product.yaml"] = product_text.encode("utf-8")
    files["profile.toml"] = profile.text.encode("utf-8")
    files["environment.json"] = json.dumps(environment, indent=2).encode("utf-8")
    files[CERTIFICATION] = json.dumps(certification, indent=2).encode("utf-8")
    problems = scan_files(files, secrets)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CertifyError(f"secret found, bundle not written: {problems[0]}{more}")
    return files


def manifest_text(files: dict[str, bytes]) -> bytes:
    """sha256sum format, sorted by path."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())).encode()


def write_bundle(files: dict[str, bytes], out: Path) -> int:
    """Add the manifest and write the .tar.gz (through a temporary name, so a failure leaves no half bundle)."""
    out = Path(out)
    if MANIFEST in files:
        raise CertifyError(f"{MANIFEST} is written by the bundle itself")
    everything = {**files, MANIFEST: manifest_text(files)}
    mtime = int(time.time())
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        with tarfile.open(partial, "w:gz") as tar:
            for name in sorted(everything):
                info = tarfile.TarInfo(name)
                info.size = len(everything[name])
                info.mtime = mtime
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(everything[name]))
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return len(everything)
