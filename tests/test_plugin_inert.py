"""The conformance plugin stays out of a partner's own pytest sessions in the same environment: no plugin, no
options, no signal handlers, no autouse fixture, unless a conformance run loads it (`-p conformance.plugin`).
The same checks run with the plugin loaded show that each of them can fail."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

PARTNER_TEST = """
import signal


def handler_module(signum):
    return getattr(signal.getsignal(signum), "__module__", None) or ""


def test_signal_handlers_are_not_the_harness_s():
    assert not handler_module(signal.SIGINT).startswith("conformance")
    assert not handler_module(signal.SIGTERM).startswith("conformance")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN)


def test_no_conformance_plugin_is_registered(request):
    names = [name for name, _ in request.config.pluginmanager.list_name_plugin()]
    assert not [n for n in names if "conformance" in str(n)]


def test_no_autouse_fixture_of_the_harness(request):
    assert "vddk_labels" not in request.fixturenames
"""


def partner_session(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m pytest ARGS` in a folder of the partner's own, with no pytest settings inherited from ours."""
    (folder / "test_partner.py").write_text(PARTNER_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def test_the_plugin_is_not_an_entry_point() -> None:
    assert not [e for e in entry_points(group="pytest11") if e.value.startswith("conformance")]


def test_a_partner_session_is_untouched(tmp_path: Path) -> None:
    result = partner_session(tmp_path, "-q", "-p", "no:xdist")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    help_text = partner_session(tmp_path, "--help").stdout
    assert "--vddk-build" not in help_text and "--release-note" not in help_text and "vddk" not in help_text


@pytest.mark.parametrize("xdist", ["-p no:xdist", "-n 1"])
def test_the_same_checks_fail_once_the_plugin_is_loaded(tmp_path: Path, xdist: str) -> None:
    """The hostile case: loaded explicitly (as a conformance run does), every check above sees the plugin."""
    result = partner_session(tmp_path, "-q", "-p", "conformance.plugin", *xdist.split())
    assert "3 failed" in result.stdout, result.stdout + result.stderr
    help_text = partner_session(tmp_path, "-p", "conformance.plugin", "--help").stdout
    assert "--vddk-build" in help_text


@pytest.mark.parametrize("explicit", [False, True], ids=["conftest-only", "conftest-and-p"])
def test_pytest_on_the_suites_loads_the_plugin_through_their_conftest(explicit: bool) -> None:
    """A plain `pytest suites/` still gets the plugin (options, selection by release note), once."""
    root = Path(__file__).resolve().parent.parent
    args = ["suites", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--release-note=K5"]
    args += ["-p", "conformance.plugin"] if explicit else []
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=root, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected and all("test_k5_" in line for line in collected), result.stdout
