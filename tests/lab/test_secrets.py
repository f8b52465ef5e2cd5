"""Secrets: a run's password and session cookies appear in no artifact (logs at DEBUG, allure results, JUnit,
summary.json, the recorded call trace, the console)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.sim.instance import Simulator
from conformance.vsphere.locks import LOCK_DIR_ENV
from tests.lab.conftest import GUEST_ENV, PASSWORD_ENV, run_cli, write_target

PASSWORD = "Zq7-distinctive-Pa55word-4f1c"
GUEST_PASSWORD = "Gx9-guest-secret-77ab"


class RecordingSessions(dict[str, Any]):
    """The simulator's session table, remembering every cookie it ever issued."""

    issued: list[str]

    def __setitem__(self, key: str, value: Any) -> None:
        self.issued.append(key)
        super().__setitem__(key, value)


@pytest.fixture
def recorded_sim() -> Iterator[tuple[Simulator, list[str]]]:
    with Simulator(password=PASSWORD) as sim:
        assert sim.ctx is not None
        sessions = RecordingSessions(sim.ctx.session_manager._sessions)
        sessions.issued = []
        sim.ctx.session_manager._sessions = sessions
        yield sim, sessions.issued


def test_no_artifact_of_a_run_holds_the_password_or_a_session_cookie(
    tmp_path: Path, recorded_sim: tuple[Simulator, list[str]]
) -> None:
    sim, cookies = recorded_sim
    info = {"host": sim.host, "port": sim.port, "thumbprint": sim.thumbprint, "user": sim.user, "vsphere": "7.0U3"}
    target = write_target(tmp_path / "lab.toml", info)
    reports = tmp_path / "reports"
    log_file = tmp_path / "run.log"
    import os

    env = {**os.environ, PASSWORD_ENV: PASSWORD, GUEST_ENV: GUEST_PASSWORD, LOCK_DIR_ENV: str(tmp_path / "locks")}
    result = run_cli(
        "run",
        "--target",
        str(target),
        "--reports",
        str(reports),
        "--run-id",
        "secrets",
        "-n",
        "0",
        "-k",
        "K5-003 or K5 and vendor or roundtrip and full_backup and hotadd-VMFS-random",
        f"--log-file={log_file}",
        "--log-file-level=DEBUG",
        "--log-level=DEBUG",
        "-rA",
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(cookies) >= 2  # the harness's session and the library's own logins
    files = [p for p in (reports / "secrets").rglob("*") if p.is_file()] + [log_file]
    names = {p.name for p in files}
    assert "summary.json" in names and "junit.xml" in names
    assert any(re.fullmatch(r"calls-.+-gw\d+\.json", n) for n in names)  # gw<N>: inherited under xdist
    assert any(n.endswith("-result.json") for n in names)
    assert log_file.stat().st_size > 0
    texts = {str(p): p.read_text(errors="replace") for p in files}
    texts["stdout"] = result.stdout
    texts["stderr"] = result.stderr
    for secret in [PASSWORD, GUEST_PASSWORD, *cookies]:
        leaks = [where for where, text in texts.items() if secret in text]
        assert leaks == [], f"{secret[:6]}... found in {leaks}"


LEAKY_SUITE = """
import os
import pytest


@pytest.mark.release_note("K2")
def test_fails_holding_the_passwords_in_locals(vddk_target):
    child_env = {**os.environ}  # what a test starting a child process holds: the lab's password variables
    password, guest = vddk_target.password, vddk_target.guest.password
    print("stdout of the test:", password)
    assert not password, f"the child failed with {child_env} and {guest}"
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_pytest_flags_that_show_locals_put_no_password_in_any_report(
    tmp_path: Path, recorded_sim: tuple[Simulator, list[str]], workers: str
) -> None:
    """-l -vvv -rA with a failing test whose locals hold the lab and guest passwords: JUnit, Allure and the
    console are scrubbed, and the test still fails."""
    sim, _ = recorded_sim
    info = {"host": sim.host, "port": sim.port, "thumbprint": sim.thumbprint, "user": sim.user, "vsphere": "7.0U3"}
    target = write_target(tmp_path / "lab.toml", info)
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "test_leaky.py").write_text(LEAKY_SUITE)
    import os

    env = {**os.environ, PASSWORD_ENV: PASSWORD, GUEST_ENV: GUEST_PASSWORD, LOCK_DIR_ENV: str(tmp_path / "locks")}
    reports = tmp_path / "reports"
    result = run_cli(
        "run", "--target", str(target), "--reports", str(reports), "--run-id", "leaky", f"--suites={suites}",
        "-n", workers, "-l", "-vvv", "-rA", env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((reports / "leaky" / "summary.json").read_text())
    assert [t["outcome"] for t in summary["tests"]] == ["failed"]
    texts = {str(p): p.read_text(errors="replace") for p in (reports / "leaky").rglob("*") if p.is_file()}
    texts["console"] = result.stdout + result.stderr
    assert any("redacted" in text for where, text in texts.items() if where.endswith("junit.xml"))
    for secret in (PASSWORD, GUEST_PASSWORD):
        assert [where for where, text in texts.items() if secret in text] == []
