"""`vddk-conformance sim serve`: a JSON line first, a clean stop on SIGTERM, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conformance.vsphere.connection import Endpoint, connect, disconnect

COMMAND = [sys.executable, "-m", "conformance.cli", "sim", "serve"]


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], dict[str, object]]:
    process = subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, json.loads(line)


def test_serve_prints_connection_json_and_sigterm_removes_its_state_dir() -> None:
    process, info = start("--vsphere", "6.7U3")
    try:
        assert {"url", "host", "port", "user", "password", "thumbprint", "state_dir"} <= set(info)
        assert info["host"] == "127.0.0.1"
        si = connect(
            Endpoint(str(info["host"]), int(str(info["port"])), str(info["thumbprint"])),
            str(info["user"]),
            str(info["password"]),
        )
        assert si.RetrieveContent().about.apiVersion == "6.7.3"
        disconnect(si)
        assert Path(str(info["state_dir"])).is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert not Path(str(info["state_dir"])).exists()


def test_serve_keeps_a_state_dir_it_was_given_and_reads_the_password_from_the_environment(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process, info = start("--state-dir", str(state), "--password-env", "SIM_PASSWORD", env={"SIM_PASSWORD": "s3cret!"})
    try:
        assert info["password"] == "s3cret!" and info["state_dir"] == str(state)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    assert (state / "datastores" / "vmfs-01").is_dir()


def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    for args, message in [
        (["--vsphere", "5.0"], "unknown vSphere version '5.0'"),
        (["--inventory", str(tmp_path / "missing.toml")], "does not exist"),
        (["--password-env", "NO_SUCH_VARIABLE_SET"], "empty or unset"),
    ]:
        result = subprocess.run(
            [*COMMAND, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "NO_SUCH_VARIABLE_SET"},
        )
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
