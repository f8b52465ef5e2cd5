"""`vddk-conformance run --sim-fixed`: only catalog ids with a simulator switch, and never with VMware's library.

Each refusal is one line before collection; the option's effect (the simulator playing K2/K4 fixed, in the
child processes too) is tested in tests/vixdisklib/test_sim_fixed.py and by the detection matrix.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.lab.conftest import PASSWORD_ENV, run_cli, write_target

INFO = {"host": "127.0.0.1", "port": 4430, "thumbprint": ":".join(["AB"] * 20), "user": "u", "vsphere": "7.0U3"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("K9", "--sim-fixed: unknown release-note id(s) K9"),
        ("K2,K1", "--sim-fixed: K1 has no switch the simulator can play fixed (use some of K2, K4)"),
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
    env = {**os.environ, PASSWORD_ENV: "pw"}
    args = ["run", "--target", str(path), "--sim-fixed", "K2", "--reports", str(tmp_path / "r"), "-n", "0"]
    result = run_cli(*args, env=env, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert "VMware's library cannot be told to fix a known issue" in output
    assert "pw" not in output.replace("pw-", "")  # no password in what the user sees
