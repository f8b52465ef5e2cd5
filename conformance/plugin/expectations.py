"""Expectations are data: each test's release-note marker plus the selected build and vSphere version decide
whether it must pass, is a known issue (strict expected failure) or is not applicable (skipped).

A known issue expects exactly its documented symptom (``raises=KnownIssueSymptom``, see
conformance/knowledge/symptoms.py); :class:`KnownIssueHooks` makes sure nothing else reads as the known issue:
pytest's xfail also covers setup and
teardown errors and ``pytest.xfail()`` calls, and those are turned back into errors and failures here.

Every conformance test is also a "product" test or a "platform" check (:func:`verdict_kind`, reported per test in
summary.json): derived, not declared, from whether the test uses the ``backup_app`` fixture (directly or through
another fixture). Why derived: a product test cannot exercise the backup application without that fixture, and a
derived kind cannot be forgotten or claimed; platform checks (VDDK or the server alone) never decide a product's
certification (conformance/certify).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.knowledge.catalog import CatalogError, Expectation, load_catalog
from conformance.knowledge.symptoms import KnownIssueSymptom, raised_by_test

EXPECTATION = pytest.StashKey[dict[str, str]]()
PRODUCT, PLATFORM = "product", "platform"


def verdict_kind(item: pytest.Item) -> str:
    """Product when the test exercises the backup application under test (uses ``backup_app``), else platform."""
    return PRODUCT if "backup_app" in getattr(item, "fixturenames", ()) else PLATFORM


def marker_ids(item: pytest.Item) -> list[str]:
    return [str(m.args[0]) for m in item.iter_markers("release_note") if m.args]


def select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--release-note IDS keeps the tests of those items only."""
    from conformance.plugin.settings import SETTINGS

    wanted = set(config.stash[SETTINGS].release_notes)
    if not wanted:
        return
    keep = [item for item in items if wanted & set(marker_ids(item))]
    dropped = [item for item in items if not wanted & set(marker_ids(item))]
    items[:] = keep
    config.hook.pytest_deselected(items=dropped)


def apply(config: pytest.Config, items: list[pytest.Item]) -> None:
    from conformance.plugin.settings import SETTINGS

    settings = config.stash[SETTINGS]
    catalog = load_catalog()
    for item in items:
        for mark in item.iter_markers("release_note"):
            if not mark.args:
                raise pytest.UsageError(f"{item.nodeid}: release_note needs an id, e.g. @release_note('R5')")
            item_id = str(mark.args[0])
            try:
                catalog.get(item_id)
                verdict = catalog.expectation(
                    item_id,
                    settings.build,
                    settings.vsphere,
                    workaround=mark.kwargs.get("workaround"),
                    platform=mark.kwargs.get("platform", "linux"),
                    control=mark.kwargs.get("control"),
                )
            except CatalogError as exc:
                raise pytest.UsageError(f"{item.nodeid}: {exc}") from exc
            if item_id in settings.assume_fixed and verdict.outcome == "known_issue":
                verdict = Expectation(item_id, "pass", f"{item_id} assumed fixed (--assume-fixed): it must pass")
            item.stash[EXPECTATION] = {"id": item_id, "outcome": verdict.outcome, "reason": verdict.reason}
            item.user_properties.append(("release_note", item_id))
            item.user_properties.append(("expectation", verdict.outcome))
            item.user_properties.append(("verdict_kind", verdict_kind(item)))
            if verdict.outcome == "not_applicable":
                item.add_marker(pytest.mark.skip(reason=f"{item_id} not applicable: {verdict.reason}"))
            elif verdict.outcome == "known_issue":
                reason = f"{item_id} known issue: {verdict.reason}"
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True, raises=KnownIssueSymptom))
            break


class KnownIssueHooks:
    """In a conformance test (one with a release-note expectation) only a call that raised its documented symptom
    from the test's own module ends as xfailed; a ``pytest.xfail()`` from anywhere else is a failure too."""

    NAME = "vddk-conformance-known-issues"

    # Registered at configure time (plugin/reporting.configure), after pytest's skipping plugin and before
    # allure-pytest and the run's report hooks: this wrapper sees skipping's verdict, and they see this one.

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report: pytest.TestReport = yield
        if not hasattr(report, "wasxfail") or not report.skipped or EXPECTATION not in item.stash:
            return report
        excinfo = call.excinfo
        if call.when == "call" and excinfo is not None and raised_by_test(excinfo.value, excinfo.traceback, item.path):
            return report
        del report.wasxfail
        report.outcome = "failed"  # a setup or teardown failure shows as an error
        if excinfo is not None and isinstance(excinfo.value, KnownIssueSymptom) and call.when == "call":
            report.longrepr = f"{excinfo.value} -- but not raised by the test module {item.path.name}: not accepted"
        return report
