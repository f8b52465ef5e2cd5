"""Running `vddk-conformance` as a user does: a child process, its output captured."""

from __future__ import annotations

import subprocess
import sys

CLI = [sys.executable, "-m", "conformance.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`vddk-conformance ARGS...` in a new process (never raises on a non-zero exit: tests assert on it)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)
