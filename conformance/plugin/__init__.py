"""The pytest plugin of vddk-conformance (registered through the `pytest11` entry point).

Options, the `release_note` marker, expectations from the catalog, fixtures, and the run reports.
"""

from __future__ import annotations

import pytest

from conformance.plugin import expectations, reporting
from conformance.plugin.fixtures import *  # noqa: F403 - fixtures are found by name
from conformance.plugin.settings import RunSettings, SettingsError, add_options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "release_note(id, workaround=None, platform='linux'): the release-note item "
        "a test guards; its expectation follows from the catalog",
    )
    config.addinivalue_line("markers", "sequence(name): backup, restore or cleanup (the allure story)")
    config.addinivalue_line("markers", "test_id(id): the permanent id of a conformance test")
    try:
        settings = RunSettings.from_config(config)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[reporting.SETTINGS] = settings
    reporting.configure(config, settings)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expectations.select(config, items)
    expectations.apply(config, items)
    reporting.select_shard(config, items)
