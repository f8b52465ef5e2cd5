"""Suites share the fixtures of the conformance plugin; this file loads it for a plain `pytest suites/` (it is not
an entry point, so partners' own pytest sessions never see it) and adds the matrix parametrization."""

from __future__ import annotations

import pytest

import conformance.plugin
from conformance.transports import DATASTORE_TYPES, TRANSPORTS, reach
from conformance.workloads import DEFAULT_PATTERNS

DEFAULT_PATTERN = "random"
#: thick disks are allocated in full on the datastore: no thick copy of the 64 GiB pattern
NO_THICK = ("large-sparse",)


def roundtrip_cases(matrix: str) -> list[tuple[str, str, str]]:
    """(transport, datastore type, pattern): every reachable pair with one pattern, every pattern on VMFS/NBDSSL;
    the full matrix crosses everything."""
    pairs = [(t, d) for t in TRANSPORTS for d in DATASTORE_TYPES if reach(t, d).allowed]
    if matrix == "full":
        return [(t, d, p) for t, d in pairs for p in DEFAULT_PATTERNS]
    cases = [(t, d, DEFAULT_PATTERN) for t, d in pairs]
    cases += [("nbdssl", "VMFS", p) for p in (*DEFAULT_PATTERNS, "large-sparse") if p != DEFAULT_PATTERN]
    return cases


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Load the plugin here, not with `pytest_plugins` (an error in a conftest that is not at the rootdir):
    registered while options are collected, its options, hooks and fixtures all take effect."""
    conformance.plugin.register(pluginmanager)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = ("transport", "datastore_type", "pattern_name")
    if not set(names) <= set(metafunc.fixturenames):
        return
    cases = roundtrip_cases(metafunc.config.option.matrix)
    if "thin" in metafunc.fixturenames:
        with_thin = [(*c, thin) for c in cases for thin in (True, False) if thin or c[2] not in NO_THICK]
        ids = [f"{t}-{d}-{p}-{'thin' if thin else 'thick'}" for t, d, p, thin in with_thin]
        metafunc.parametrize((*names, "thin"), with_thin, ids=ids)
    else:
        metafunc.parametrize(names, cases, ids=[f"{t}-{d}-{p}" for t, d, p in cases])
