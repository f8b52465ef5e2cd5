"""`vddk-conformance run --sim-fixed`: only catalog ids with a simulator switch, and never with VMware's library.

Each refusal is one line before collection; the option's effect (the simulator playing K2/K4 fixed, in the
child processes too) is tested in tests/vixdisklib/test_sim_fixed.py and by the detection matrix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.lab.conftest import GUEST_ENV, PASSWORD_ENV, run_cli, write_target

INFO = {"host": "127.0.0.1", "port": 4430, "thumbprint": ":".join(["AB"] * 20), "user": "u", "vsphere": "7.0U3"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("K9", "--sim-fixed: unknown release-note id(s) K9"),
        ("K2,K1", "--sim-fixed: K1 has no switch the simulator can play fixed (fixable: K2, K4)"),
        ("F1", "--sim-fixed: F1 has no switch"),
    ],
)
def test_an_id_the_simulator_cannot_play_fixed_stops_the_run_in_one_line(tmp_path: Path, value: str, text: str) -> None:
    result = run_cli("run", "--sim-fixed", value, "--reports", str(tmp_path), "-n", "0", timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert sum(text in line for line in output.splitlines()) == 1, output
    assert not list(tmp_path.iterdir())  # stopped before anything ran


def test_vmware_s_library_cannot_be_told_to_fix_a_known_issue(tmp_path: Path) -> None:
    path = write_target(tmp_path / "lab.toml", INFO)
    text = path.read_text()
    assert 'backend = "simulated"' in text
    path.write_text(text.replace('backend = "simulated"', f'backend = "native"\nlibdir = "{tmp_path}"'))
    env = {**os.environ, PASSWORD_ENV: "pw", GUEST_ENV: "guest-pw"}
    args = ["run", "--target", str(path), "--sim-fixed", "K2", "--reports", str(tmp_path / "r"), "-n", "0"]
    result = run_cli(*args, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert "VMware's library cannot be told to fix a known issue" in output
    assert "pw" not in output.replace("pw-", "")  # no password in what the user sees


@pytest.mark.slow
def test_a_run_with_k2_played_fixed_passes_k2_in_its_child_processes_and_says_so_in_its_summary(tmp_path: Path) -> None:
    """K2's reproducer runs its backup and its Cleanup in child processes: it passes only if they play K2 fixed
    too (with the bug, the same run fails it: the detection matrix's K2 probe). The summary records the play."""
    args = ["run", "--release-note", "K2", "--assume-fixed", "K2", "--sim-fixed", "K2", "--reports", str(tmp_path)]
    result = run_cli(*args, "--run-id", "fixed", "-n", "0", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "fixed" / "summary.json").read_text())
    assert summary["sim_fixed"] == ["K2"] and summary["assumed_fixed"] == ["K2"]
    outcomes = {t["nodeid"].rsplit("::", 1)[-1]: t["outcome"] for t in summary["tests"]}
    reproducer = "test_cleanup_in_a_new_process_with_the_default_tmp_directory_finds_the_killed_backup"
    assert outcomes[reproducer] == "passed" and set(outcomes.values()) == {"passed"}
