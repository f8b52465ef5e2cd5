"""Do a bundle's reports agree with each other? summary.json decides the verdict, so its outcomes are checked
against the run's JUnit XML and its Allure results, case by case.

Why: a bundle whose summary.json was edited to say "passed" while junit.xml or allure-results still show the
failure (or the other way round) must not verify, even with a recomputed manifest. (A bundle is not signed, so
a forger who rewrites every report consistently is not caught here; the manifest proves integrity, not origin.)
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Any

__all__ = ["report_disagreements"]

#: summary outcome -> what JUnit shows for the case
_JUNIT = {"passed": "passed", "failed": "failure", "error": "error", "skipped": "skipped", "xfailed": "skipped",
          "xpassed": "passed"}  # fmt: skip
#: summary outcome -> Allure status
_ALLURE = {"passed": "passed", "failed": "failed", "error": "broken", "skipped": "skipped", "xfailed": "skipped",
           "xpassed": "passed"}  # fmt: skip


def report_disagreements(files: dict[str, bytes], tests: list[dict[str, Any]]) -> list[str]:
    """One line per way junit.xml or allure-results contradict summary.json's `tests`."""
    return _junit(files.get("junit.xml"), tests) + _allure(files, tests)


def _junit(data: bytes | None, tests: list[dict[str, Any]]) -> list[str]:
    if data is None:
        return ["junit.xml: missing from the bundle"]
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return [f"junit.xml: not valid XML ({exc})"]
    shown: dict[str, str] = {}
    for case in root.iter("testcase"):
        module, name = str(case.get("classname", "")), str(case.get("name", ""))
        nodeid = f"{module.replace('.', '/')}.py::{name}"
        status = "passed"
        for kind in ("failure", "error", "skipped"):
            if case.find(kind) is not None:
                status = kind
                break
        if nodeid in shown and shown[nodeid] != status:  # setup passed, teardown errored: the worst counts
            status = "error" if "error" in (status, shown[nodeid]) else status
        shown[nodeid] = status
    problems = []
    for test in tests:
        nodeid, outcome = str(test.get("nodeid")), str(test.get("outcome"))
        want = _JUNIT.get(outcome)
        got = shown.pop(nodeid, None)
        if got is None:
            problems.append(f"junit.xml: has no case for {nodeid}, which summary.json lists as {outcome}")
        elif want is not None and got != want and not (outcome == "failed" and got == "error"):
            problems.append(f"junit.xml: {nodeid} shows {got}, summary.json says {outcome}")
    problems += [f"junit.xml: {nodeid} ({status}) is not in summary.json" for nodeid, status in sorted(shown.items())]
    return problems


def _allure(files: dict[str, bytes], tests: list[dict[str, Any]]) -> list[str]:
    """Allure names a case by module#function (parameters apart), so statuses are compared per function."""
    results = [n for n in files if n.startswith("allure-results/") and n.endswith("-result.json")]
    if not results:
        return ["allure-results: no test results in the bundle"]
    shown: dict[str, Counter[str]] = {}
    for name in results:
        try:
            data = json.loads(files[name])
            full_name, status = str(data["fullName"]), str(data["status"])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            return [f"{name}: not an Allure test result"]
        shown.setdefault(full_name, Counter())[status] += 1
    expected: dict[str, Counter[str]] = {}
    for test in tests:
        path, _, function = str(test.get("nodeid")).partition("::")
        full_name = f"{path.removesuffix('.py').replace('/', '.')}#{function.split('[', 1)[0]}"
        expected.setdefault(full_name, Counter())[_ALLURE.get(str(test.get("outcome")), "unknown")] += 1
    problems = []
    for full_name in sorted(expected.keys() | shown.keys()):
        want, got = expected.get(full_name, Counter()), shown.get(full_name, Counter())
        if want != got:
            problems.append(
                f"allure-results: {full_name} shows {_counts(got) or 'nothing'}, summary.json says {_counts(want)}"
            )
    return problems


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counter.items()))
