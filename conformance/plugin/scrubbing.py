"""No password reaches a run's reports, whatever pytest flags are used.

Test reports are scrubbed of every secret the process holds (``conformance.lab.secrets``) as they are made, before
JUnit and Allure see them (``-l`` shows a failing frame's locals, a child process's environment among them);
the controller scrubs the reports its workers send; at the end the run's report folder is scanned, and any
remembered secret still in a file is replaced there, with one warning line naming the files.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from conformance.lab.secrets import REDACTED, known, scrub_object

__all__ = ["SecretScrubber", "scrub_folder"]


class SecretScrubber:
    NAME = "vddk-conformance-secrets"

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield  # innermost wrapper: scrubbed before any other wrapper (Allure) reads it
        return scrub_object(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        scrub_object(report)  # a worker's report, before the controller's JUnit writer sees it

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        yield  # JUnit XML and summary.json are written by now
        if self.run_dir is None:
            return
        changed = scrub_folder(self.run_dir)
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            session.config.get_terminal_writer().line(
                f"vddk-conformance: warning: a password of the run was in {shown}; replaced by {REDACTED}"
            )


def scrub_folder(folder: Path) -> list[str]:
    """Replace every remembered secret in the text files under `folder`; the names of the files changed."""
    secrets = known()
    if not secrets:
        return []
    encoded = [(s.encode(), REDACTED.encode()) for s in secrets]
    changed = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        scrubbed = data
        for secret, mark in encoded:
            scrubbed = scrubbed.replace(secret, mark)
        if scrubbed != data:
            path.write_bytes(scrubbed)
            changed.append(path.relative_to(folder).as_posix())
    return changed
