"""A run's report folder says whose it is until the run has written all of it.

Why: a run killed hard (SIGKILL of its process group) cannot clean up; its folder stays half-written. While the
run writes, the folder holds ``owner.pid`` (pid and process start time); the marker goes only after JUnit XML,
summary.json and the scrub of secrets are done, so `vddk-conformance sweep --reports DIR` removes exactly the
folders whose owner died before finishing.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from conformance.ownership import OWNER_FILE, owner_record

__all__ = ["RunFolderOwner"]


class RunFolderOwner:
    NAME = "vddk-conformance-run-folder"

    def __init__(self, run_dir: Path) -> None:
        self.marker = run_dir / OWNER_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(owner_record())

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        yield  # registered last: every other writer of the folder has finished
        self.marker.unlink(missing_ok=True)
