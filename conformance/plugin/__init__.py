"""The pytest plugin of vddk-conformance: options, the `release_note` marker, expectations from the catalog,
fixtures, stop-signal handlers and the run reports.

Deliberately not a `pytest11` entry point: an entry point would load it into every pytest session of the
environment (a partner's own tests included), with its signal handlers and autouse fixture. It is loaded only
where a conformance run asks for it: `vddk-conformance run` passes `-p conformance.plugin`, and the suites'
conftest registers it (`register`) for a plain `pytest suites/`.
"""

from __future__ import annotations

import pytest

from conformance.input_errors import InputError
from conformance.plugin import expectations, identity, reporting
from conformance.plugin.fixtures import *  # noqa: F403 - fixtures are found by name
from conformance.plugin.lab_problems import pytest_runtest_makereport  # noqa: F401 - a hook, found by name
from conformance.plugin.settings import RunSettings, SettingsError, add_options


def register(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register this plugin unless `-p conformance.plugin` already did (called from the suites' conftest)."""
    import conformance.plugin as plugin

    if not pluginmanager.is_registered(plugin):
        pluginmanager.register(plugin, "conformance.plugin")


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
    config.addinivalue_line(
        "markers",
        "test_id(name, uuid, since, description): the permanent identity of a conformance test (plugin/identity.py)",
    )
    try:
        settings = RunSettings.from_config(config)
        if settings.builds_kit:
            settings = settings.with_built_kit(_kit(config))
    except (SettingsError, InputError) as exc:
        raise pytest.UsageError(str(exc)) from exc
    config.stash[reporting.SETTINGS] = settings
    reporting.configure(config, settings)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expectations.select(config, items)
    expectations.apply(config, items)
    identity.record(items)
    reporting.select_shard(config, items)


#: the workerinput key under which xdist workers get the folder of the simulated C library the controller built
KIT_KEY = "vddk_kit"


def _kit(config: pytest.Config) -> str:
    """The simulated libvixDiskLib.so's folder for `--vddk-backend native` against the embedded simulator: built
    here, once, by the controller (or the only process), before any worker starts; a worker takes the controller's
    folder, so every process of the run loads the same files (ShimBuildError, one line, without a compiler)."""
    given = getattr(config, "workerinput", {}).get(KIT_KEY)
    if given:
        return str(given)
    from conformance.vixdisklib.shim.kit import run_kit

    return str(run_kit())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist: the controller's settings that a worker must not work out again (the built kit)."""
    settings = node.config.stash[reporting.SETTINGS]  # type: ignore[attr-defined]
    if settings.target == "sim" and settings.backend == "native" and settings.libdir is not None:
        node.workerinput[KIT_KEY] = str(settings.libdir)  # type: ignore[attr-defined]
