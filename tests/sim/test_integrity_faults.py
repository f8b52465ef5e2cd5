"""Integrity faults as data: names are checked in one line wherever they enter, and reach both the simulated
server and the simulated library of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.knowledge.sim_faults import FAULTS, SimFaultError, check_faults
from conformance.sim.faults import FaultHooks
from conformance.vixdisklib.factory import BackendError, LibrarySpec, make_library
from tests.cli import run_cli


def test_every_fault_is_described_and_names_its_side() -> None:
    for fault in FAULTS.values():
        assert fault.summary and fault.side in ("server", "library"), fault


def test_an_unknown_fault_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(SimFaultError, match=r"^unknown simulator fault\(s\) no-such-fault \(fix: use one of"):
        check_faults(["no-such-fault"])


def test_hooks_play_only_known_faults_and_refuse_asking_for_an_unknown_one() -> None:
    hooks = FaultHooks()
    names = tuple(sorted(FAULTS))[:1]
    hooks.play(names)
    for name in FAULTS:
        assert hooks.playing(name) == (name in names)
    with pytest.raises(KeyError, match="not a fault"):
        hooks.playing("typo-fault")


def test_the_library_spec_carries_its_faults_to_a_child_process() -> None:
    names = tuple(sorted(n for n, f in FAULTS.items() if f.side == "library"))
    spec = LibrarySpec(build="7.0.3", sim_faults=names)
    assert LibrarySpec.from_env(spec.to_env()) == spec
    assert spec.make().backend.sim_faults == frozenset(names)  # type: ignore[attr-defined]


def test_vmware_s_library_refuses_to_play_a_fault() -> None:
    with pytest.raises(BackendError, match=r"^--sim-fault x: only the embedded simulator"):
        make_library("7.0.3", backend="native", libdir=None, sim_faults=("x",))


def test_run_refuses_an_unknown_fault_in_one_line(tmp_path: Path) -> None:
    result = run_cli("run", "--sim-fault=no-such-fault", f"--reports={tmp_path}")
    assert result.returncode != 0
    assert "--sim-fault: unknown simulator fault(s) no-such-fault" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
