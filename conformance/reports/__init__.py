"""Reports people open first: the Allure HTML report and the release-note matrix page, built from run directories.

Why a package of its own: the pytest plugin writes raw results while a run is going; this package reads finished
runs (``reports/<run-id>/``) afterwards, offline, and never needs a target or the simulator.
"""

from __future__ import annotations

from conformance.reports.runs import ReportError, Run, load_run, load_runs

__all__ = ["ReportError", "Run", "load_run", "load_runs"]
