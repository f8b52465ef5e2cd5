"""Suites share the fixtures of the conformance plugin; this file adds the matrix parametrization."""

from __future__ import annotations

import pytest

from conformance.transports import DATASTORE_TYPES, TRANSPORTS, reach
from conformance.workloads import DEFAULT_PATTERNS

DEFAULT_PATTERN = "random"


def roundtrip_cases(matrix: str) -> list[tuple[str, str, str]]:
    """(transport, datastore type, pattern): every reachable pair with one pattern, every pattern on VMFS/NBDSSL;
    the full matrix crosses everything."""
    pairs = [(t, d) for t in TRANSPORTS for d in DATASTORE_TYPES if reach(t, d).allowed]
    if matrix == "full":
        return [(t, d, p) for t, d in pairs for p in DEFAULT_PATTERNS]
    cases = [(t, d, DEFAULT_PATTERN) for t, d in pairs]
    cases += [("nbdssl", "VMFS", p) for p in DEFAULT_PATTERNS if p != DEFAULT_PATTERN]
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if {"transport", "datastore_type", "pattern_name"} <= set(metafunc.fixturenames):
        cases = roundtrip_cases(metafunc.config.option.matrix)
        metafunc.parametrize(
            ("transport", "datastore_type", "pattern_name"), cases, ids=[f"{t}-{d}-{p}" for t, d, p in cases]
        )
