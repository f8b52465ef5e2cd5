"""Expectations are data: each test's release-note marker plus the selected build and vSphere version decide
whether it must pass, is a known issue (strict expected failure) or is not applicable (skipped)."""

from __future__ import annotations

import pytest

from conformance.catalog import CatalogError, Expectation, load_catalog

EXPECTATION = pytest.StashKey[dict[str, str]]()


def marker_ids(item: pytest.Item) -> list[str]:
    return [str(m.args[0]) for m in item.iter_markers("release_note") if m.args]


def select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--release-note IDS keeps the tests of those items only."""
    from conformance.plugin.reporting import SETTINGS

    wanted = set(config.stash[SETTINGS].release_notes)
    if not wanted:
        return
    keep = [item for item in items if wanted & set(marker_ids(item))]
    dropped = [item for item in items if not wanted & set(marker_ids(item))]
    items[:] = keep
    config.hook.pytest_deselected(items=dropped)


def apply(config: pytest.Config, items: list[pytest.Item]) -> None:
    from conformance.plugin.reporting import SETTINGS

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
            if verdict.outcome == "not_applicable":
                item.add_marker(pytest.mark.skip(reason=f"{item_id} not applicable: {verdict.reason}"))
            elif verdict.outcome == "known_issue":
                item.add_marker(pytest.mark.xfail(reason=f"{item_id} known issue: {verdict.reason}", strict=True))
            break
