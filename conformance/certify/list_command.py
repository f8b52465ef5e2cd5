"""`vddk-conformance conformance-list`: generate a profile's conformance list from the suites, show or write it, or
check it against the checked-in file (exit 1 and a unified diff when they differ)."""

from __future__ import annotations

import difflib
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from conformance.certify.conformance_list import (
    build_list,
    identity_problems,
    packaged_path,
    packaged_text,
    regenerate_command,
    render,
)
from conformance.certify.profile import CertifyError, load_profile
from conformance.plugin.identity import IdentityError, case_of, identity_of


class _Collector:
    """Reads every collected test's identity (collection only: nothing runs, no simulator starts)."""

    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []
        self.problem: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            try:
                found = identity_of(item)
            except IdentityError as exc:
                self.problem = str(exc)
                return
            note = item.get_closest_marker("release_note")
            if found is None:
                if note is not None:  # a conformance test (it guards an item) must have an identity
                    self.cases.append({"nodeid": item.nodeid, "name": "", "uuid": ""})
                continue
            self.cases.append(
                {
                    "name": found.name,
                    "uuid": found.uuid,
                    "since": found.since,
                    "description": found.description,
                    "release_note": str(note.args[0]) if note is not None and note.args else "",
                    "case": case_of(item),
                    "nodeid": item.nodeid,
                }
            )


def collect_cases(suites: Path, build: str) -> list[dict[str, Any]]:
    """Every case a run of `build` collects from `suites` (default matrix), with its identity."""
    collector = _Collector()
    argv = [
        str(suites), "-p", "conformance.plugin", "-p", "no:cacheprovider", "--collect-only", "-q",
        f"--vddk-build={build}", "-p", "no:xdist",
    ]  # fmt: skip
    with redirect_stdout(io.StringIO()) as out:
        code = pytest.main(argv, plugins=[collector])
    if collector.problem:
        raise CertifyError(collector.problem)
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        last = (out.getvalue().strip().splitlines() or ["no output"])[-1]
        raise CertifyError(f"collecting {suites} failed (pytest exit status {int(code)}): {last}")
    return collector.cases


def generated_text(profile_key: str | None, suites: Path) -> tuple[str, str, list[str]]:
    """(profile key, the list as the suites make it today, profile tests no suite carries); CertifyError when an
    identity is broken (missing, shared, doubled)."""
    profile = load_profile(profile_key)
    collected = collect_cases(suites, profile.vddk_build)
    problems = identity_problems(collected)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CertifyError(f"permanent test ids: {problems[0]}{more}")
    listed, missing = build_list(profile, collected)
    return profile.key, render(listed), missing


def conformance_list(profile_key: str | None, suites: Path, write: bool, check: bool) -> int:
    key, text, missing = generated_text(profile_key, suites)
    gone = f"profile {key} requires test(s) no suite carries: {', '.join(missing)}"
    if missing and not check:
        raise CertifyError(f"{gone} (fix: restore their test_id markers, or publish a new profile without them)")
    if write:
        path = packaged_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"conformance-list: wrote {path}")
        return 0
    if not check:
        sys.stdout.write(text)
        return 0
    published = packaged_text(key) or ""
    if published == text and not missing:
        print(f"conformance-list: {key}: the suites agree with the checked-in list")
        return 0
    diff = difflib.unified_diff(
        published.splitlines(True), text.splitlines(True), f"checked-in {key}", "from the suites"
    )
    sys.stdout.writelines(diff)
    if missing:
        print(f"conformance-list: {gone}")
    print(f"conformance-list: {key}: the suites differ from the checked-in list; review, then run: "
          f"{regenerate_command(key)}")  # fmt: skip
    return 1
