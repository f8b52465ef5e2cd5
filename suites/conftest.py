"""Suites share the fixtures of the conformance plugin; this file loads it for a plain `pytest suites/` (it is not
an entry point, so partners' own pytest sessions never see it) and adds the matrix parametrization."""

from __future__ import annotations

import pytest

import conformance.plugin
from conformance.knowledge.transports import DATASTORE_TYPES, TRANSPORTS, reach
from conformance.workloads import DEFAULT_PATTERNS
from fixtures import FIXTURE_MODULES

DEFAULT_PATTERN = "random"
#: data in every MiB up to the last block: each transport's round trip covers it in the tests marked `spread`
SPREAD_PATTERN = "scattered"
#: writes above 2 GiB (a 64 GiB disk): what restores must also get right
LARGE_PATTERN = "large-sparse"
#: thick disks are allocated in full on the datastore: no thick copy of the 64 GiB pattern
NO_THICK = (LARGE_PATTERN,)
#: where a thick restore target differs from a thin one in the default run: on VMFS provisioning is a property of
#: the disk file (and SAN writes need it); on NFS, vSAN and vVol the server's storage policy decides, so their thick
#: variants run in `--matrix full`
THICK_DATASTORES = ("VMFS",)


def roundtrip_cases(matrix: str, spread: bool = False) -> list[tuple[str, str, str]]:
    """(transport, datastore type, pattern): every reachable pair with one pattern, every pattern on VMFS/NBDSSL,
    and in `spread` tests every transport with the spread pattern on VMFS; the full matrix crosses everything."""
    pairs = [(t, d) for t in TRANSPORTS for d in DATASTORE_TYPES if reach(t, d).allowed]
    if matrix == "full":
        return [(t, d, p) for t, d in pairs for p in (*DEFAULT_PATTERNS, LARGE_PATTERN)]
    cases = [(t, d, DEFAULT_PATTERN) for t, d in pairs]
    cases += [
        ("nbdssl", "VMFS", p) for p in (*DEFAULT_PATTERNS, LARGE_PATTERN) if p not in (DEFAULT_PATTERN, SPREAD_PATTERN)
    ]
    if spread:
        cases += [(t, "VMFS", SPREAD_PATTERN) for t in TRANSPORTS if reach(t, "VMFS").allowed]
    return cases


def thick_case(case: tuple[str, str, str], cases: list[tuple[str, str, str]], metafunc: pytest.Metafunc) -> bool:
    """Whether a round trip also restores to a thick disk: never for the 64 GiB pattern; in the full matrix every
    other case; in the default run the VMFS cases that are not spread extras (those are thin only)."""
    if case[2] in NO_THICK:
        return False
    matrix = metafunc.config.option.matrix
    if matrix == "full":
        return True
    spread_extras = set(cases) - set(roundtrip_cases(matrix))
    return case[1] in THICK_DATASTORES and case not in spread_extras


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "spread: a round-trip test that also runs every transport with the scattered pattern (default run)"
    )


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Load the plugin here, not with `pytest_plugins` (an error in a conftest that is not at the rootdir):
    registered while options are collected, its options, hooks and fixtures all take effect."""
    conformance.plugin.register(pluginmanager)
    for name in FIXTURE_MODULES:  # the suites' shared fixtures (fixtures/)
        if pluginmanager.get_plugin(name) is None:
            pluginmanager.import_plugin(name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = ("transport", "datastore_type", "pattern_name")
    if not set(names) <= set(metafunc.fixturenames):
        return
    spread = metafunc.definition.get_closest_marker("spread") is not None
    cases = roundtrip_cases(metafunc.config.option.matrix, spread)
    if "thin" in metafunc.fixturenames:
        with_thin = [(*c, thin) for c in cases for thin in (True, False) if thin or thick_case(c, cases, metafunc)]
        ids = [f"{t}-{d}-{p}-{'thin' if thin else 'thick'}" for t, d, p, thin in with_thin]
        metafunc.parametrize((*names, "thin"), with_thin, ids=ids)
    else:
        metafunc.parametrize(names, cases, ids=[f"{t}-{d}-{p}" for t, d, p in cases])
