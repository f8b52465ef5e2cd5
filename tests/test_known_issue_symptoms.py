"""A known issue is expected only on its documented symptom (conformance/knowledge/symptoms.py): a crashing backup
application, a fixture error, a symptom raised outside the test module or a ``pytest.xfail()`` never reads as
"the known issue reproduced". Shown with hostile cases: a backup application that raises RuntimeError in the real
K1 and K4 reproducers, and a small suites folder of hostile known-issue tests.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run_cli

REPO = Path(__file__).resolve().parent.parent

CRASHING_APP = '''
from conformance.sequences.reference import ReferenceBackupApp


class CrashingBackupApp(ReferenceBackupApp):
    """A partner application that crashes before it touches VDDK."""

    name = "crashing"

    def backup(self, ctx, vm_name, transports, previous=None):
        raise RuntimeError("the partner application crashed")
'''

#: K1 is a known issue of 7.0.3 (the default expectations), so these tests are xfail(strict, raises=symptom)
HOSTILE_SUITE = """
import pytest

from conformance.knowledge.symptoms import KnownIssueSymptom, symptom
from helper import symptom_elsewhere

pytestmark = [pytest.mark.release_note("K1")]


@pytest.fixture
def broken():
    raise RuntimeError("the fixture failed")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("the teardown failed")


def test_symptom_from_the_test(): symptom("K1", "the proxy VM became invalid", observed="invalid")
def test_fixture_error(broken): pass
def test_teardown_error(broken_teardown): symptom("K1", "the proxy VM became invalid")
def test_runtime_error(): raise RuntimeError("crash")
def test_assertion_error(): assert 1 == 2
def test_symptom_raised_directly(): raise KnownIssueSymptom("K1", "made up")
def test_symptom_from_another_module(): symptom_elsewhere()
def test_imperative_xfail(): pytest.xfail("the application says it is a known issue")
def test_passes(): pass
"""

HELPER = """
from conformance.knowledge.symptoms import symptom


def symptom_elsewhere():
    symptom("K1", "the proxy VM became invalid")
"""


def summary_outcomes(reports: Path) -> dict[str, str]:
    [summary] = reports.glob("*/summary.json")
    data: dict[str, Any] = json.loads(summary.read_text())
    return {t["nodeid"].split("::")[-1]: t["outcome"] for t in data["tests"]}


def env_with(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(path), str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_only_the_symptom_raised_by_the_test_module_is_the_known_issue(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "test_hostile.py").write_text(textwrap.dedent(HOSTILE_SUITE))
    (suites / "helper.py").write_text(textwrap.dedent(HELPER))
    done = run_cli(
        "run", "--suites", str(suites), "--reports", str(tmp_path / "reports"), "-n", "0",
        env=env_with(suites), timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert summary_outcomes(tmp_path / "reports") == {
        "test_symptom_from_the_test": "xfailed",
        "test_fixture_error": "error",
        "test_teardown_error": "error",
        "test_runtime_error": "failed",
        "test_assertion_error": "failed",
        "test_symptom_raised_directly": "failed",
        "test_symptom_from_another_module": "failed",
        "test_imperative_xfail": "failed",
        "test_passes": "failed",  # strict: XPASS fails
    }, done.stdout[-3000:]
    assert done.returncode == 1
    allure = allure_statuses(tmp_path / "reports")  # the Allure results agree with summary.json
    assert allure.pop("test_symptom_from_the_test") == "skipped"
    allure.pop("test_teardown_error")  # Allure keeps the call's status when only the teardown fails
    assert "skipped" not in allure.values(), sorted(allure.items())


def allure_statuses(reports: Path) -> dict[str, str]:
    found = {}
    for path in reports.glob("*/allure-results/*-result.json"):
        result = json.loads(path.read_text())
        found[result["name"]] = result["status"]
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="the simulator runs on Linux")
def test_a_crashing_backup_application_fails_the_known_issue_reproducers(tmp_path: Path) -> None:
    (tmp_path / "crashing_app.py").write_text(textwrap.dedent(CRASHING_APP))
    done = run_cli(
        "run", "--release-note", "K1,K4", "--backup-app", "crashing_app:CrashingBackupApp",
        "--reports", str(tmp_path / "reports"), "-n", "0", "-k", "vvol-hotadd or vsan_vm_from_a_proxy_outside",
        env=env_with(tmp_path), timeout=600,
    )  # fmt: skip
    outcomes = summary_outcomes(tmp_path / "reports")
    assert outcomes == {
        "test_backing_up_a_linked_clone_of_a_linked_clone_keeps_the_proxy_valid[vvol-hotadd]": "failed",
        "test_hotadd_backs_up_a_vsan_vm_from_a_proxy_outside_vsan[hotadd]": "failed",
        "test_hotadd_backs_up_a_vsan_vm_from_a_proxy_outside_vsan[hotadd:nbdssl]": "failed",
    }, done.stdout[-3000:]
    assert done.returncode == 1
