"""The harness's own tests leave nothing in the temporary directory.

Why: a leak a test leaves (a lock child's folder, an agent's record, a simulator's state, a bench's images, the
simulated library's default folder) is what a crashed lab run leaves too, and nobody notices it until the disk is
full. The controlling process lists what the harness names in the temporary directory before the session and
fails the session, naming each, when something new is still there at its end (after a grace for processes that
are ending). Set VDDKC_TEMP_GUARD=off when another run shares the temporary directory on purpose.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import time
from pathlib import Path

import pytest

#: what the harness (or the simulated library, as VDDK does) names in the temporary directory
PREFIXES = ("vddkc-", "vsphere-sim-", "harness-bench-", f"vmware-{getpass.getuser()}")
#: seconds for agents and children to see their parent gone and remove their folders
GRACE = float(os.environ.get("VDDKC_TEMP_GUARD_GRACE", "15"))
BEFORE = pytest.StashKey[set[str]]()


def _ours() -> set[str]:
    """Our names in the temporary directory; inside VDDK's shared `vmware-<user>` folder, its entries."""
    found = set()
    for entry in Path(tempfile.gettempdir()).iterdir():
        if entry.name.startswith(PREFIXES):
            found.add(entry.name)
            if entry.name.startswith("vmware-") and entry.is_dir():
                found.update(f"{entry.name}/{child.name}" for child in entry.iterdir())
    return found


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput") and os.environ.get("VDDKC_TEMP_GUARD", "on") != "off"


def pytest_sessionstart(session: pytest.Session) -> None:
    if _controller(session.config):
        session.config.stash[BEFORE] = _ours()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _controller(session.config) or BEFORE not in session.config.stash:
        return
    before = session.config.stash[BEFORE]
    deadline = time.monotonic() + GRACE
    left = _ours() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _ours() - before
    if left:
        where = tempfile.gettempdir()
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = f"the tests left {len(left)} item(s) in {where}: {', '.join(sorted(left))} (remove each at its source)"
        if reporter is not None:
            reporter.write_line(f"ERROR: {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
