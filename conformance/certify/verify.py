"""verify-bundle: is a certification bundle intact, and does it show what its profile requires?

Checks, in order: the manifest (every file listed, present and unchanged, nothing extra), the profile (the
bundle's copy is the published one), the environment (the profile's VDDK build, a vSphere version in its range,
a whole run rather than one shard), then every test of the profile: it ran, no case failed or was skipped (a
skipped case is a case the product was not shown to handle: the problem names it and the skip reason), every case
passed or ended as a known issue the profile allows, and it exercised the backup application (summary.json's
``verdict_kind``). Required tests decide the verdict; advisory ones are shown; platform checks (VDDK or the
server alone) are shown in their own section and never decide the product's verdict.

Why it never extracts to disk: members are streamed (``members.py``: hashed in chunks, only report files kept in
memory), so a crafted bundle (absolute or ``..`` paths, links, a huge member) cannot write anywhere or exhaust
memory; such members are reported as problems. summary.json decides, and it must agree with the run's JUnit XML
and Allure results case by case (``consistency.py``). The manifest proves integrity, not origin: the bundle is
not signed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.certify import CertifyError
from conformance.certify.bundle import CERTIFICATION, LIST_MEMBER, MANIFEST
from conformance.certify.conformance_list import ConformanceList, packaged_text, parse
from conformance.certify.conformance_list import digest as list_digest
from conformance.certify.consistency import report_disagreements
from conformance.certify.members import read_members
from conformance.certify.profile import Profile, RequiredTest, load_profile, parse_profile
from conformance.input_errors import one_line
from conformance.knowledge.versions import VersionError

__all__ = ["TestResult", "Verdict", "check_manifest", "judge_tests", "read_bundle", "verify_bundle"]

_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
BAD = ("failed", "error", "xpassed")
MAX_PROBLEMS = 12


@dataclass
class TestResult:
    """The verdict on one test id of the profile."""

    test: RequiredTest
    counts: dict[str, int]
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Verdict:
    """Everything verify-bundle found; ``render`` is the one-screen text."""

    bundle: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile: Profile | None = None
    certification: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    files: int = 0
    results: list[TestResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """The one-screen verdict; every value from the bundle is shown as text, whatever its type."""
        product = _texts(self.certification.get("product"))
        env = _texts(self.environment)
        required = [r for r in self.results if r.test.required]
        advisory = [r for r in self.results if r.test.status == "advisory"]
        platform = [r for r in self.results if r.test.platform]
        known = sum(1 for r in required if r.ok and r.counts.get("xfailed"))
        totals = _texts(self.summary.get("totals"))
        profile = self.profile
        lines = [
            f"verify-bundle: {'PASS' if self.passed else 'FAIL'}  {self.bundle}",
            f"profile      {profile.key} ({profile.status}): {profile.title}" if profile else "profile      unknown",
            f"product      {product.get('name', '?')} {product.get('version', '?')} by {product.get('vendor', '?')}"
            f" (backup application: {env.get('backup_app') or product.get('backup_app') or '?'})",
            f"environment  VDDK {env.get('vddk_build', '?')}, vSphere {env.get('vsphere', '?')} build "
            f"{env.get('vsphere_build', '?')}, proxy OS {env.get('proxy_os', '?')}",
            f"             transports {env.get('transports') or '?'}; target {env.get('target', '?')}",
            f"run          {_texts({'id': self.certification.get('run_id', '?')})['id']}: "
            + (", ".join(f"{n} {o}" for o, n in sorted(totals.items())) or "no test cases"),
            f"required     {sum(r.ok for r in required)}/{len(required)} ok"
            + (f" ({known} ended as a known issue the profile allows)" if known else ""),
            f"advisory     {sum(r.ok for r in advisory)}/{len(advisory)} ok (not counted)",
            f"platform     {sum(r.ok for r in platform)}/{len(platform)} ok (VDDK and the server alone, not counted)",
            f"manifest     {self.files} files"
            + ("" if any("MANIFEST" in p or "sha256" in p for p in self.problems) else ", every sha256 matches"),
        ]
        if self.problems:
            lines.append(f"problems     {len(self.problems)}")
            lines += [f"  - {p}" for p in self.problems[:MAX_PROBLEMS]]
            if len(self.problems) > MAX_PROBLEMS:
                lines.append(f"  ... and {len(self.problems) - MAX_PROBLEMS} more")
        else:
            lines.append("problems     none")
        notes = self.warnings + [f"{r.test.status} {r.problem}" for r in advisory + platform if r.problem]
        lines += [f"  note: {w}" for w in notes[:5]]
        if len(notes) > 5:
            lines.append(f"  note: ... and {len(notes) - 5} more")
        return "\n".join(lines)


def _texts(value: Any) -> dict[str, str]:
    """A mapping from the bundle as text values (lists joined with commas); anything else is an empty mapping."""
    if not isinstance(value, dict):
        return {}
    shown = {}
    for key, item in value.items():
        if isinstance(item, list):
            item = ",".join(str(i) for i in item)
        shown[str(key)] = one_line(str(item))[:200]
    return shown


def read_bundle(path: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every member's bytes (for small bundles: tools and tests), and problems with unsafe or duplicate members.
    CertifyError when not a .tar.gz. verify-bundle itself streams (``read_members``)."""
    members = read_members(path, keep=lambda name: True, max_kept=2**63)
    return members.files, members.problems


def check_manifest(manifest: bytes | None, digests: dict[str, str]) -> list[str]:
    """One problem per missing, changed or unlisted file (each named), from every member's sha256."""
    if manifest is None:
        return [f"{MANIFEST}: missing from the bundle; nothing can be checked"]
    problems: list[str] = []
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line)
        if match is None:
            problems.append(f"{MANIFEST}: line {number} is not '<sha256>  <path>'")
            continue
        listed[match.group(2)] = match.group(1)
    for name, digest in sorted(listed.items()):
        if name not in digests:
            problems.append(f"{name}: listed in {MANIFEST} but missing from the bundle")
        elif digests[name] != digest:
            problems.append(f"{name}: changed (its sha256 differs from {MANIFEST})")
    for name in sorted(set(digests) - set(listed) - {MANIFEST}):
        problems.append(f"{name}: not listed in {MANIFEST} (extra file)")
    return problems


def judge_tests(profile: Profile, test_map: dict[str, str], tests: list[dict[str, Any]]) -> list[TestResult]:
    """The verdict on each test id of the profile from the run's cases."""
    cases: dict[str, list[dict[str, Any]]] = {}
    for case in tests:
        test_id = test_map.get(str(case.get("nodeid")))
        if test_id:
            cases.setdefault(test_id, []).append(case)
    results: list[TestResult] = []
    for test in profile.tests:
        mine = cases.get(test.id, [])
        counts: dict[str, int] = {}
        for case in mine:
            counts[str(case.get("outcome"))] = counts.get(str(case.get("outcome")), 0) + 1
        result = TestResult(test, counts)
        bad = [c for c in mine if c.get("outcome") in BAD]
        skipped = [c for c in mine if c.get("outcome") == "skipped"]
        platform = [c for c in mine if c.get("verdict_kind") == "platform"]
        if not mine:
            result.problem = f"{test.id}: did not run"
        elif platform and not test.platform:
            result.problem = (
                f"{test.id}: a platform check ({platform[0].get('nodeid')} does not exercise the backup application);"
                " it cannot decide the product's certification"
            )
        elif bad:
            first = bad[0]
            reason = str(first.get("reason") or "").strip()
            result.problem = (
                f"{test.id}: {len(bad)} of {len(mine)} case(s) {first.get('outcome')}: {first.get('nodeid')}"
                + (f" ({reason[:120]})" if reason else "")
            )
        elif counts.get("xfailed") and not test.known_issue_allowed:
            known = next(c for c in mine if c.get("outcome") == "xfailed")
            note = known.get("release_note") or "?"
            result.problem = f"{test.id}: ended as known issue {note}, which the profile does not allow"
        elif skipped:
            reason = str(skipped[0].get("reason") or "").strip()
            result.problem = f"{test.id}: {len(skipped)} of {len(mine)} case(s) skipped: {skipped[0].get('nodeid')}" + (
                f" ({reason[:120]})" if reason else ""
            )
        results.append(result)
    return results


def _json(files: dict[str, bytes], name: str, problems: list[str]) -> dict[str, Any]:
    if name not in files:
        problems.append(f"{name}: missing from the bundle")
        return {}
    try:
        data = json.loads(files[name])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{name}: not valid JSON ({exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{name}: not a JSON object")
        return {}
    return data


def _check_environment(verdict: Verdict, profile: Profile) -> None:
    summary = verdict.summary
    if summary.get("vddk_build") != profile.vddk_build:
        verdict.problems.append(
            f"summary.json: VDDK build {summary.get('vddk_build')!r}, the profile certifies {profile.vddk_build}"
        )
    vsphere = str(summary.get("vsphere") or "")
    try:
        covered = profile.covers_vsphere(vsphere)
    except VersionError:
        covered = False
    if not covered:
        verdict.problems.append(
            f"summary.json: vSphere {vsphere!r} is outside the profile's {profile.vsphere_min} to {profile.vsphere_max}"
        )
    if summary.get("shard"):
        verdict.problems.append(f"summary.json: the run is shard {summary['shard']}, not a whole run")
    if summary.get("exit_status") not in (0, 1):
        verdict.problems.append(
            f"summary.json: the run ended abnormally (pytest exit status {summary.get('exit_status')})"
        )


def verify_bundle(path: Path, profile_path: Path | None = None) -> Verdict:
    """Check a bundle; CertifyError only for unreadable input or an unknown profile (exit 2)."""
    members = read_members(path)
    files = members.files
    verdict = Verdict(bundle=str(path), files=len(members.digests))
    verdict.problems += members.problems
    verdict.problems += check_manifest(files.get(MANIFEST), members.digests)
    verdict.certification = _json(files, CERTIFICATION, verdict.problems)
    verdict.summary = _json(files, "summary.json", verdict.problems)
    verdict.environment = _json(files, "environment.json", verdict.problems)
    key = str(verdict.certification.get("profile") or "")
    if profile_path is not None:
        profile = load_profile(str(profile_path))
        if key and key != profile.key:
            verdict.problems.append(f"{CERTIFICATION}: made against profile {key}, verified against {profile.key}")
    elif key:
        profile = load_profile(key)
    else:
        if not verdict.certification:
            return verdict
        raise CertifyError(f"{path}: {CERTIFICATION} names no profile: pass --profile FILE")
    verdict.profile = profile
    bundled = files.get("profile.toml")
    if bundled is None:
        verdict.problems.append("profile.toml: missing from the bundle")
    elif bundled.decode("utf-8", "replace") != profile.text:
        try:
            parse_profile(bundled.decode("utf-8", "replace"), "profile.toml")
        except CertifyError as exc:
            verdict.problems.append(str(exc))
        verdict.problems.append(f"profile.toml: differs from the published profile {profile.key}")
    if profile.status != "approved":
        verdict.warnings.append(f"profile {profile.key} is {profile.status}, not approved")
    if verdict.summary:
        _check_environment(verdict, profile)
    test_map = verdict.certification.get("tests")
    if not isinstance(test_map, dict):
        verdict.problems.append(f"{CERTIFICATION}: has no 'tests' map (node id -> test id)")
        test_map = {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in test_map.items()):
        verdict.problems.append(f"{CERTIFICATION}: 'tests' maps node ids to something other than a test id")
        test_map = {k: v for k, v in test_map.items() if isinstance(k, str) and isinstance(v, str)}
    tests = verdict.summary.get("tests")
    tests = tests if isinstance(tests, list) else []
    if not all(isinstance(t, dict) and isinstance(t.get("nodeid"), str) for t in tests):
        verdict.problems.append("summary.json: 'tests' holds entries that are not test results with a nodeid")
        tests = [t for t in tests if isinstance(t, dict) and isinstance(t.get("nodeid"), str)]
    verdict.problems += report_disagreements(files, tests) if verdict.summary else []
    verdict.results = judge_tests(profile, test_map, tests)
    listed = _conformance_list(files, verdict, profile)
    if listed is not None:
        _require_listed_cases(listed, verdict.results, tests)
    verdict.problems += [r.problem for r in verdict.results if r.test.required and r.problem]
    return verdict


def _conformance_list(files: dict[str, bytes], verdict: Verdict, profile: Profile) -> ConformanceList | None:
    """The bundled list, checked against its recorded digest and the published list of the profile."""
    raw = files.get(LIST_MEMBER)
    if raw is None:
        verdict.warnings.append(f"{LIST_MEMBER}: not in the bundle (made before conformance lists): cases not checked")
        return None
    text = raw.decode("utf-8", "replace")
    if verdict.certification.get("conformance_list_sha256") != list_digest(text):
        verdict.problems.append(f"{LIST_MEMBER}: its sha256 is not the one {CERTIFICATION} records")
    published = packaged_text(profile.key)
    if published is not None and published != text:
        verdict.problems.append(f"{LIST_MEMBER}: differs from the published conformance list of {profile.key}")
    try:
        listed = parse(text, LIST_MEMBER)
    except CertifyError as exc:
        verdict.problems.append(str(exc))
        return None
    if listed.profile != profile.key:
        verdict.problems.append(f"{LIST_MEMBER}: is the list of {listed.profile}, not of {profile.key}")
    return listed


def _require_listed_cases(listed: ConformanceList, results: list[TestResult], tests: list[dict[str, Any]]) -> None:
    """A test passes only when every case the list names ran: a deselected or uncollected case fails it, like a
    skipped one (cases are matched by permanent id, uuid and parameters, not node id)."""
    ran = {(str(t.get("test_uuid")), str(t.get("test_case") or "")) for t in tests if t.get("test_uuid")}
    for result in results:
        entry = listed.test(result.test.id)
        if entry is None or result.problem:
            continue
        absent = [case for case in entry.cases if (entry.uuid, case) not in ran]
        if absent:
            shown = absent[0] or "(no parameters)"
            result.problem = (
                f"{result.test.id}: {len(absent)} of {len(entry.cases)} listed case(s) did not run (deselected or not "
                f"collected), first {shown}"
            )
