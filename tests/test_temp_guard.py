"""The guard of tests/conftest.py fails a session that leaves something of the harness's in the temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GUARD = Path(__file__).with_name("conftest.py")
LEAKY = """
import tempfile, pathlib
def test_leaves_a_folder():
    (pathlib.Path(tempfile.gettempdir()) / "{name}").mkdir()
"""


@pytest.mark.parametrize(
    ("name", "leaks"), [("vddkc-agent-1-leak", True), ("vmware-someone-else", False), ("unrelated-folder", False)]
)
def test_a_session_that_leaves_a_harness_folder_fails_naming_it(tmp_path: Path, name: str, leaks: bool) -> None:
    project, scratch = tmp_path / "project", tmp_path / "tmp"
    project.mkdir()
    scratch.mkdir()
    shutil.copy(GUARD, project / "conftest.py")
    (project / "test_leak.py").write_text(LEAKY.format(name=name))
    env = {**os.environ, "TMPDIR": str(scratch), "VDDKC_TEMP_GUARD_GRACE": "1"}
    env.pop("VDDKC_TEMP_GUARD", None)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(project)]
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)
    if leaks:
        assert done.returncode == 1, done.stdout[-2000:]
        assert f"left 1 item(s) in {scratch}: {name}" in done.stdout
    else:
        assert done.returncode == 0, done.stdout[-2000:]
    assert "1 passed" in done.stdout
