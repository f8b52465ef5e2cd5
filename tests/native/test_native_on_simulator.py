"""The same suites through ctypes: `vddk-conformance run --vddk-backend native` against the embedded simulator loads
the simulated libvixDiskLib.so (conformance/vixdisklib/shim, built once per source version) through the ctypes
backend, and its private agent plays what the simulated backend would (build, proxy VM, known issues fixed, faults).

What must hold: a run of a few suites through it passes, with no process of the run (controller, worker, K2/R4's
backup processes) but the library's own agents ever importing the simulated library, and the C library's trace
(VDDKC_TRACE) showing the calls; the hostile case: the very same check on a run with the in-process simulated
library records the import, fails, and leaves no trace. Then the pieces: the options refuse what makes no sense in
one line; the factory configures the agent only for the simulated C library; InitEx's environment is the agent's
only for the call; two processes building the kit at once get one good kit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conformance.vixdisklib.errors import VixCode
from conformance.vixdisklib.factory import BackendError, make_library
from conformance.vixdisklib.native.library import NativeVixDiskLib
from conformance.vixdisklib.shim.build import STAMP
from conformance.vixdisklib.shim.kit import AGENT_VARIABLES, played_tmp_directory, run_kit, simulated_kit
from tests.cli import run_cli

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed: no simulated C library")

REPO = Path(__file__).resolve().parents[2]
RECORD_ENV = "VDDKC_TEST_SIMULATED_RECORD"
AGENT_RECORD_ENV = "VDDKC_TEST_AGENT_RECORD"
#: refuses the simulated library in every process but the C library's agents (which host it: they only note it)
HOOK = """
import importlib.abc, os, sys

_COMMAND = " ".join(getattr(sys, "orig_argv", sys.argv))
_AGENT = "conformance.vixdisklib.shim.agent" in _COMMAND


class _NoSimulatedLibrary(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("conformance.vixdisklib.simulated"):
            with open(os.environ["AGENT_RECORD_ENV" if _AGENT else "RECORD_ENV"], "a") as record:
                record.write(f"{os.getpid()} {_COMMAND[:200]} imported {name}\\n")
            if not _AGENT:
                raise ImportError(f"{name}: the simulated library is off in this process")
        return None


sys.meta_path.insert(0, _NoSimulatedLibrary())
""".replace("AGENT_RECORD_ENV", AGENT_RECORD_ENV).replace("RECORD_ENV", RECORD_ENV)
#: a backup (session library), R4-002 (a backup process and a library of its own: the session library steps
#: aside), K5-003 (two libraries of their own, one after the other), R3-001 (skips: the kit has no VixMntApi) and
#: F1-003 (two libraries at once: skips naming library-sessions)
SELECTION = (
    "(full_backup and nbdssl and VMFS and random and not thick) or nothing_remaining or vendor_name "
    "or fcd_volume or (tuned_buffers and not nbdssl)"
)


def hooked_env(tmp_path: Path) -> tuple[dict[str, str], Path, Path, Path]:
    """The environment of a run whose processes refuse the simulated library (the agents' excepted), and the
    record of refused imports, the agents' record and the C library's trace file."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    record, agents, trace = tmp_path / "simulated.log", tmp_path / "agents.log", tmp_path / "trace.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), str(REPO)]),
        RECORD_ENV: str(record),
        AGENT_RECORD_ENV: str(agents),
        "VDDKC_TRACE": str(trace),
    }
    for name in AGENT_VARIABLES:  # whatever the developer's shell says, the run decides what its agents play
        env.pop(name, None)
    return env, record, agents, trace


def outcomes(reports: Path, run_id: str) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    summary = json.loads((reports / run_id / "summary.json").read_text())
    found = {t["nodeid"].split("::", 1)[-1]: (t["outcome"], str(t.get("reason", ""))) for t in summary["tests"]}
    return summary, found


def trace_lines(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_native_run_on_the_simulator_goes_through_the_c_library(tmp_path: Path) -> None:
    env, record, agents, trace = hooked_env(tmp_path)
    reports = tmp_path / "reports"
    result = run_cli(
        "run", "--vddk-backend", "native", "--reports", str(reports), "--run-id", "native", "-n", "0",
        "-k", SELECTION, env=env, timeout=600,
    )  # fmt: skip
    summary, found = outcomes(reports, "native")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not record.exists(), record.read_text()  # no process of the run but the agents built it
    assert "imported conformance.vixdisklib.simulated" in agents.read_text()  # the agents did: they serve it
    target = summary["target"]
    assert (target["backend"], target["simulated_library"], target["proxy_vm"]) == ("native", True, "proxy-rhel83")
    assert (Path(target["libdir"]) / STAMP).is_file()
    passed = [n for n, (o, _) in found.items() if o == "passed"]
    assert len(passed) == 4 and any(n.startswith("test_full_backup") for n in passed), found
    skips = {n.split("[")[0]: r for n, (o, r) in found.items() if o == "skipped"}
    assert "simple-volumes" in skips["test_fcd_volume_mounts_after_a_hotadd_backup_and_the_known_file_reads_back"]
    assert "library-sessions" in skips["test_tuned_buffers_read_several_times_as_fast_as_the_defaults_under_latency"]
    lines = trace_lines(trace)
    starts = [line for line in lines if line["kind"] == "start"]
    assert starts and {line["mode"] for line in starts} == {"simulated"}
    assert {line["library"] for line in starts} == {"agent:private"}  # each process's own agent, none shared
    assert len({line["pid"] for line in starts}) >= 2  # the worker and R4's backup process
    calls = {line["call"] for line in lines if line["kind"] == "call"}
    assert {"VixDiskLib_InitEx", "VixDiskLib_Open", "VixDiskLib_Read", "VixDiskLib_Exit"} <= calls


@pytest.mark.slow
def test_hostile_the_same_checks_catch_a_run_with_the_in_process_simulated_library(tmp_path: Path) -> None:
    env, record, agents, trace = hooked_env(tmp_path)
    reports = tmp_path / "reports"
    result = run_cli(
        "run", "--reports", str(reports), "--run-id", "inproc", "-n", "0",
        "-k", "full_backup and nbdssl and VMFS and random and not thick", env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0
    assert "imported conformance.vixdisklib.simulated" in record.read_text()
    assert not agents.exists() and not trace.exists()  # no C library, no agent: nothing went through C
    _, found = outcomes(reports, "inproc")
    assert [o for o, _ in found.values()] == ["error"], found


@pytest.mark.slow
def test_sim_fixed_reaches_the_agent_of_every_process(tmp_path: Path) -> None:
    """K2-001 with K2 played fixed: the backup process and the cleanup process each start an agent of their own,
    which must play K2 fixed (one default folder), so the outcome is the simulated backend's, not the xfail.
    A short --basetemp: the C library puts its agent's socket under the test's TMPDIR (see the README)."""
    found = {}
    for backend in ("simulated", "native"):
        base = Path(tempfile.mkdtemp(prefix="k2-"))
        try:
            result = run_cli(
                "run", "--vddk-backend", backend, "--sim-fixed", "K2", "--reports", str(tmp_path / "reports"),
                "--run-id", backend, "-n", "0", "-k", "default_tmp_directory_finds", "--basetemp", str(base),
                env={k: v for k, v in os.environ.items() if k not in AGENT_VARIABLES}, timeout=600,
            )  # fmt: skip
        finally:
            shutil.rmtree(base, ignore_errors=True)
        found[backend] = [o for o, _ in outcomes(tmp_path / "reports", backend)[1].values()]
        assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    assert found["native"] == found["simulated"] and found["native"] != ["xfailed"], found


# --- the options: one line each for what makes no sense ---


def test_a_libdir_without_the_native_backend_is_refused_in_one_line(tmp_path: Path) -> None:
    result = run_cli("run", "--vddk-libdir", str(tmp_path), "--reports", str(tmp_path / "r"), "-n", "0")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "--vddk-libdir" in line]
    assert len(lines) == 1 and "--vddk-backend native" in lines[0], result.stderr


def test_sim_fixed_with_a_kit_that_is_not_the_simulated_library_is_refused(tmp_path: Path) -> None:
    kit = tmp_path / "vmware-kit"
    kit.mkdir()
    result = run_cli(
        "run", "--vddk-backend", "native", "--vddk-libdir", str(kit), "--sim-fixed", "K2",
        "--reports", str(tmp_path / "r"), "-n", "0",
    )  # fmt: skip
    assert result.returncode == 2
    assert "VMware's library cannot be told to fix a known issue" in result.stderr, result.stderr


def test_a_backend_other_than_the_target_files_is_refused(tmp_path: Path) -> None:
    from tests.lab.conftest import target_text

    info = {"host": "127.0.0.1", "port": 1, "thumbprint": ":".join(["AB"] * 20), "user": "u", "vsphere": "7.0U3"}
    path = tmp_path / "lab.toml"
    path.write_text(target_text(info))
    result = run_cli(
        "run", "--target", str(path), "--vddk-backend", "native", "--reports", str(tmp_path / "r"), "-n", "0",
        env={**os.environ, "VDDKC_LAB_TEST_PASSWORD": "x"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "whose [vddk] backend is simulated" in result.stderr, result.stderr


# --- the factory, InitEx's environment, the kit ---


@pytest.fixture(scope="module")
def kit() -> Path:
    return run_kit()


@pytest.fixture
def own_kit(kit: Path, tmp_path: Path) -> Path:
    """A copy of the kit (stamp included): its libraries are this test's, whatever else this process loaded."""
    folder = tmp_path / "kit"
    shutil.copytree(kit, folder)
    return folder


def test_the_factory_tells_the_agent_what_to_play_only_for_the_simulated_c_library(
    own_kit: Path, tmp_path: Path
) -> None:
    assert simulated_kit(own_kit) and not simulated_kit(own_kit, {"VDDKC_SHIM_FORWARD": "/opt/vddk"})
    lib = make_library(
        "7.0.3", backend="native", libdir=own_kit, proxy_vm="proxy-rhel83", physical_proxy="backup-server",
        fixed=("K2",), sim_faults=("transport-silently-replaced",),
    )  # fmt: skip
    assert native(lib).agent_env == {
        "VDDKC_SHIM_AGENT": "", "VDDKC_SIM_BUILD": "7.0.3", "VDDKC_SIM_PROXY_VM": "proxy-rhel83",
        "VDDKC_SIM_PHYSICAL_PROXY": "backup-server", "VDDKC_SIM_FIXED": "K2",
        "VDDKC_SIM_FAULTS": "transport-silently-replaced",
    }  # fmt: skip
    vmware = tmp_path / "vmware"  # the same binary without the stamp: the harness takes it for VMware's
    vmware.mkdir()
    shutil.copy2(own_kit / "libvixDiskLib.so.7", vmware)
    assert native(make_library("7.0.3", backend="native", libdir=vmware)).agent_env is None
    with pytest.raises(BackendError, match="cannot be told to fix"):
        make_library("7.0.3", backend="native", libdir=vmware, fixed=("K2",))


def test_init_ex_runs_with_the_agents_environment_and_restores_the_process_one(
    own_kit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the private agent's socket and VDDK's default folder go here
    monkeypatch.setenv("VDDKC_SHIM_AGENT", "/nonexistent/agent.sock")  # a shared agent the run must not use
    monkeypatch.setenv("VDDKC_SIM_BUILD", "7.0.3")
    monkeypatch.delenv("VDDKC_SIM_FIXED", raising=False)
    lib = make_library("6.7.3", backend="native", libdir=own_kit, fixed=("K2",))  # libvixDiskLib.so.6
    backend = native(lib)
    assert backend.agent_env is not None
    lib.init_ex(None)
    try:
        assert backend.announced is not None and backend.announced[0] == "6.7.3"  # the agent plays 6.7.3
        assert lib.list_transport_modes()
        # K2 played fixed: one default folder for every process (the agent's rule, from the build facts)
        assert backend.tmp_directory == str(played_tmp_directory(backend.agent_env, os.getpid()))
        assert backend.tmp_directory.endswith("/vixDiskLib")
    finally:
        lib.exit()
    assert os.environ["VDDKC_SHIM_AGENT"] == "/nonexistent/agent.sock" and os.environ["VDDKC_SIM_BUILD"] == "7.0.3"
    assert "VDDKC_SIM_FIXED" not in os.environ
    again = native(make_library("7.0.3", backend="native", libdir=own_kit)).agent_env  # per process: K2's, per pid
    assert again is not None and str(played_tmp_directory(again, 4242)).endswith("/vixDiskLib-4242")


def test_a_failed_call_carries_the_reason_the_library_logged(own_kit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C API returns a code; the reason comes through the log callbacks, and the error text carries it."""
    from conformance.vixdisklib.errors import VixError
    from conformance.vixdisklib.types import ConnectParams, UidCredentials

    monkeypatch.setenv("TMPDIR", "/tmp")
    lib = make_library("7.0.3", backend="native", libdir=own_kit)
    lib.init_ex(None)
    try:
        params = ConnectParams(server_name="127.0.0.1", port=1, credentials=UidCredentials("u", "p"), thumbprint="AB")
        with pytest.raises(VixError) as caught:
            lib.connect_ex(params.with_vm("vm-1"), True, None, "nbd")
    finally:
        lib.exit()
    assert caught.value.code != VixCode.OK and "the library logged: VixDiskLib_ConnectEx" in caught.value.text


@pytest.mark.slow
def test_two_processes_building_the_kit_at_once_get_one_complete_kit(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from conformance.vixdisklib.shim.kit import run_kit; "
        "print(run_kit(Path(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    folders = {run.communicate(timeout=300)[0].strip() for run in runs}
    assert [run.returncode for run in runs] == [0, 0] and len(folders) == 1
    folder = Path(folders.pop())
    assert simulated_kit(folder) and all((folder / f"libvixDiskLib.so.{m}").is_file() for m in (6, 7, 8))
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".libvixDiskLib")]  # no half-written file


def native(lib: Any) -> NativeVixDiskLib:
    """The ctypes backend under a facade `make_library(backend="native")` made."""
    assert isinstance(lib.backend, NativeVixDiskLib)
    return lib.backend
