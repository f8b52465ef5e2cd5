"""The nightly matrix: which (build, vSphere) pairs it runs, and how shards share them."""

from __future__ import annotations

import pytest

from conformance.nightly import NightlyError, pairs
from conformance.versions import supported_pairs, vddk_supports
from tests.cli import run_cli


def names(selected: list) -> list[tuple[str, str]]:
    return [(b.name, v.name) for b, v in selected]


def test_all_pairs_are_the_supported_pairs_of_the_version_model() -> None:
    assert sorted(names(pairs())) == sorted((b.name, v.name) for b, v in supported_pairs())


def test_shards_split_the_pairs_without_overlap_or_gap() -> None:
    everything = names(pairs())
    shards = [names(pairs(shard=(k, 3))) for k in (1, 2, 3)]
    assert sorted(p for s in shards for p in s) == sorted(everything)
    assert len({p for s in shards for p in s}) == len(everything)
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= 1


def test_selectors_narrow_the_pairs_and_unsupported_ones_need_asking() -> None:
    assert names(pairs("7.0.3", "7.0U3,8.0")) == [("7.0.3", "7.0U3"), ("7.0.3", "8.0")]
    assert not vddk_supports("6.5.4", "7.0U3")
    assert names(pairs("6.5.4", "7.0U3", unsupported=True)) == [("6.5.4", "7.0U3")]
    with pytest.raises(NightlyError, match="no supported pair"):
        pairs("6.5.4", "7.0U3")
    with pytest.raises(NightlyError):
        pairs("9.9.9")


def test_the_command_refuses_a_bad_shard_in_one_line() -> None:
    result = run_cli("nightly", "--shard", "3/2", timeout=60)
    assert result.returncode == 2 and "--shard" in result.stderr and result.stderr.strip().count("\n") == 0
