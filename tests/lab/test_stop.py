"""SIGTERM and Ctrl-C stop a run with every teardown run: in a test body, inside a clean-up (which used to
swallow the interrupt and go on), and for a real run against a served simulator (nothing left, no sweep)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import exit_codes
from conformance.lab.resources import ResourceTracker, install_stop_handlers, reset_stop
from tests.lab.conftest import CLI, SimServer, write_target
from tests.lab.test_sweep import session_for, what_is_left

#: a pytest session of a conformance suite: the plugin is never an entry point, so it is loaded explicitly
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "conformance.plugin", "-p", "no:cacheprovider"]

SUITE = """
import os, signal, time
from pathlib import Path

LOG = Path(os.environ["STOP_LOG"])


def note(text):
    with LOG.open("a") as f:
        f.write(text + "\\n")


def test_one(resources):
    resources.add("thing", "a", lambda: note("undo a"))
    if os.environ["STOP_AT"] == "cleanup":
        resources.add("thing", "b", lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.3), note("undo b")))
    resources.add("thing", "c", lambda: note("undo c"))
    note("body")
    if os.environ["STOP_AT"] == "body":
        time.sleep(30)
    resources.unwind()
    note("after unwind")


def test_two():
    note("test two ran")
"""


@pytest.mark.parametrize(
    ("stop_at", "signum", "expected"),
    [
        ("body", signal.SIGTERM, ["body", "undo c", "undo a"]),
        ("body", signal.SIGINT, ["body", "undo c", "undo a"]),
        ("cleanup", signal.SIGTERM, ["body", "undo c", "undo b", "undo a"]),
    ],
)
def test_a_stop_signal_runs_every_undo_and_stops_the_run(
    tmp_path: Path, stop_at: str, signum: signal.Signals, expected: list[str]
) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    log = tmp_path / "log"
    process = subprocess.Popen(
        [*PYTEST, "-n", "0", "test_suite.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "STOP_LOG": str(log), "STOP_AT": stop_at},
    )
    if stop_at == "body":
        deadline = time.monotonic() + 60
        while not (log.exists() and "body" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert log.read_text().splitlines() == expected, output
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output


def test_unwind_defers_a_signal_until_every_undo_ran_then_interrupts() -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    install_stop_handlers()
    done: list[str] = []
    tracker = ResourceTracker("r")
    tracker.add("x", "first", lambda: done.append("first"))

    def signals() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # deferred: this undo and the next ones still run
        done.append("signals")

    def interrupted() -> None:  # an interrupt that got through anyway: re-raised once the rest is undone
        raise KeyboardInterrupt

    tracker.add("x", "signals", signals)
    tracker.add("x", "interrupted", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            tracker.unwind()
        assert done == ["signals", "first"]
    finally:
        reset_stop()
        for s, handler in old.items():
            signal.signal(s, handler)


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "to_group"), [("0", False), ("2", False), ("2", True)])
def test_sigterm_during_a_real_run_leaves_nothing_on_the_target(
    tmp_path: Path, sim_server: SimServer, workers: str, to_group: bool
) -> None:
    """SIGTERM to the run's process (under xdist: the controller), or to its whole process group (as CI
    time-outs and systemd do): the run stops, every teardown runs, nothing is left without a sweep."""
    target = write_target(tmp_path / "lab.toml", sim_server.info)
    process = subprocess.Popen(
        [
            *CLI,
            "run",
            "--target",
            str(target),
            "--reports",
            str(tmp_path / "r"),
            "-n",
            workers,
            "-k",
            "roundtrip and (hotadd-VMFS or nbdssl-VMFS)",
            "--basetemp",
            str(tmp_path / "base"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=sim_server.env,
        start_new_session=True,
    )
    session = session_for(sim_server)
    try:
        deadline = time.monotonic() + 120
        while not what_is_left(session) and time.monotonic() < deadline:  # wait until the run holds something
            if process.poll() is not None:
                break
            time.sleep(0.05)
        if not what_is_left(session):
            output = process.communicate(timeout=120)[0] if process.poll() is not None else "(still running)"
            raise AssertionError(f"the run never created anything; its output:\n{output[-3000:]}")
        time.sleep(random.uniform(0.0, 3.0))  # somewhere in a backup, a hot-add, a restore or a teardown
        if to_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == exit_codes.INTERRUPTED, output[-3000:]
        assert "stopped by SIGTERM" in output
        assert what_is_left(session) == [], output[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        session.close()
