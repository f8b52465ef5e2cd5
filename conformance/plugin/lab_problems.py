"""A failed test on a target whose data plane cannot be reached is a lab problem, not a product defect (D4).

Why here: with the hosts' NFC port closed, login and metadata work and every disk Open fails with a VIX error
that reads like a product bug. When a test fails, the run checks the data plane of the test's target through the
test's own vSphere session (``conformance.lab.dataplane_check``, the preflight's check) and, when it is unreachable,
adds the one line that says so to the failure. The report categories (``conformance/reports/categories.py``)
class a failure carrying that line as a lab problem. A healthy run pays nothing: the check runs only on failure.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest._code.code import ExceptionRepr

from conformance.lab.dataplane_check import data_plane_problems

__all__ = ["annotate", "pytest_runtest_makereport"]

SECTION = "lab problem"


#: the lines found for a target in this process: a port a firewall drops (no refusal) costs a timeout per check,
#: so once the data plane is found unreachable, later failures reuse the finding
FOUND = pytest.StashKey[dict[str, list[str]]]()


def _problems(item: pytest.Item) -> list[str]:
    values = getattr(item, "funcargs", {})
    session, target = values.get("vsphere"), values.get("vddk_target")
    if session is None or target is None:
        return []
    found = item.config.stash.setdefault(FOUND, {})
    if target.name in found:
        return found[target.name]
    try:
        lines = data_plane_problems(session, target.data_plane_backend, getattr(target, "nfc_port", 902))
    except Exception:  # annotating a failure must never turn it into another one
        return []
    if lines:
        found[target.name] = lines
    return lines


def annotate(report: pytest.TestReport, lines: list[str]) -> None:
    """Add the lab problem to the failure, after its traceback (where the summary and Allure read it)."""
    text = "\n".join(lines)
    longrepr = report.longrepr
    if isinstance(longrepr, ExceptionRepr):
        longrepr.addsection(SECTION, text)
    else:
        report.longrepr = f"{longrepr}\n{text}" if longrepr else text


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    if isinstance(report, pytest.TestReport) and report.failed and not hasattr(report, "wasxfail"):
        lines = _problems(item)
        if lines:
            annotate(report, lines)
    return report
