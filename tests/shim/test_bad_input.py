"""Bad input to the simulated libvixDiskLib.so never hangs and never crashes more than the real library would.

A hostile C product (bad_client.c, compiled here against the library) runs one case per process: calls outside
InitEx..Exit, NULL out-pointers, paths and buffers, stale and never-valid handles, InitEx twice, a forked child on
its parent's handle, the agent killed mid-session, async reads with and without a callback, reads and writes larger
than one frame of the wire; and the rest of the 7.0 API (exports_more.c), in simulated and in forward mode. Each
case runs under a timeout (a hang is a failure) and prints the VixError of every step; after each, no agent
process may be left running and no `vddkc-shim-*` folder left in its TMPDIR.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.vixdisklib.shim.build import SOURCES, build
from conformance.vixdisklib.trace_format import read_trace
from conformance.vixdisklib.types import UidCredentials
from tests.shim.conftest import PROXY_VM, Backup

CLIENT = Path(__file__).with_name("bad_client.c")
TIMEOUT = 60.0  # seconds a case may take; longer is a hang
OK, FAIL, INVALID_ARG, NOT_SUPPORTED, HOST_CONNECTION_LOST, NOINIT, ASYNC = 0, 1, 3, 6, 36, 16001, 25000
AGENT_MODULE = b"conformance.vixdisklib.shim.agent"
#: a known bug of c/trace.c: a call traced before the trace file is open takes seq 1, then opening the file resets
#: the counter, so the next line is seq 1 again (only when a process calls VixDiskLib before InitEx);
#: test_calls_before_initex_get_unique_trace_seqs pins it down
#: exports_more.c: the functions of the 7.0 API beyond the backup path
MORE_API = (
    "Init", "Connect", "GetConnectParams", "Create", "CreateChild", "ReadMetadata", "WriteMetadata",
    "GetMetadataKeys", "Unlink", "Grow", "Shrink", "Defragment", "Rename", "Clone", "IsAttachPossible",
    "SpaceNeededForClone", "CheckRepair",
)  # fmt: skip


def _gcc() -> str:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: the library and its hostile client cannot be built")
    return "gcc"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the simulated libvixDiskLib.so.7."""
    _gcc()
    return build(tmp_path_factory.mktemp("shim"), majors=(7,))[7].parent


def _compile(output: Path, *flags: str) -> Path:
    command = [_gcc(), "-Wall", "-Wextra", "-Werror", "-pthread", f"-I{SOURCES}", "-o", str(output), str(CLIENT)]
    result = subprocess.run([*command, *flags], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"compiling {CLIENT.name} failed:\n{result.stderr}"
    return output


@pytest.fixture(scope="module")
def client(kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _compile(tmp_path_factory.mktemp("client") / "bad_client", f"-L{kit}", "-l:libvixDiskLib.so.7")


@pytest.fixture(scope="module")
def fake_real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a stand-in for VMware's library (bad_client.c built with BAD_CLIENT_FAKE_REAL)."""
    folder = tmp_path_factory.mktemp("real")
    flags = ("-shared", "-fPIC", "-fvisibility=hidden", "-DBAD_CLIENT_FAKE_REAL")
    _compile(folder / "libvixDiskLib.so.7", *flags)
    return folder


def agent_pids(tmpdir: Path) -> list[int]:
    """Agents whose command line names a path under `tmpdir` (their socket is in the product's TMPDIR)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if AGENT_MODULE in cmdline and any(str(tmpdir).encode() in part for part in cmdline):
            found.append(int(proc.name))
    return found


def leftovers(tmpdir: Path) -> tuple[list[int], list[str]]:
    return agent_pids(tmpdir), sorted(p.name for p in tmpdir.glob("vddkc-shim-*"))


@pytest.fixture
def tmpdir_() -> Iterator[Path]:
    """The product's TMPDIR: short (a Unix socket path has at most 107 bytes). At teardown nothing of an agent may
    be left in it or running from it; anything left is stopped so later tests start clean."""
    folder = Path(tempfile.mkdtemp(prefix="vbi-"))
    yield folder
    pids, folders = leftovers(folder)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)
    assert pids == [] and folders == [], f"left behind: agents {pids}, folders {folders}"


def environment(kit: Path, tmpdir: Path, backup: Backup | None = None, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("VDDKC_", "BC_"))}
    env.update(LD_LIBRARY_PATH=str(kit), TMPDIR=str(tmpdir), VDDKC_SIM_PROXY_VM=PROXY_VM, **extra)
    if backup is not None:
        p = backup.params
        assert p.server_name and p.thumbprint and p.vmx_spec and isinstance(p.credentials, UidCredentials)
        env.update(
            BC_SERVER=p.server_name, BC_PORT=str(p.port), BC_THUMBPRINT=p.thumbprint, BC_VM=p.vmx_spec,
            BC_USER=p.credentials.user, BC_PASSWORD=p.credentials.password, BC_SNAPSHOT=backup.snapshot,
            BC_DISK=backup.path,
        )  # fmt: skip
    return env


@dataclass
class Outcome:
    values: dict[str, str]
    stdout: str
    stderr: str
    returncode: int

    def __getitem__(self, name: str) -> int:
        assert name in self.values, f"the client never printed {name}:\n{self}"
        return int(self.values[name])

    def text(self, name: str) -> str:
        assert name in self.values, f"the client never printed {name}:\n{self}"
        return self.values[name]

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr (last 4000)\n{self.stderr[-4000:]}"


def parse(returncode: int, stdout: str, stderr: str) -> Outcome:
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        name, _, value = line.partition("=")
        values.setdefault(name, value)  # the first (a forked child prints its own names)
    return Outcome(values, stdout, stderr, returncode)


def run(client: Path, case: str, env: dict[str, str], tmpdir: Path) -> Outcome:
    """One case in its own process; a hang (TIMEOUT) or a crash fails the test; no agent may outlive it."""
    try:
        done = subprocess.run([str(client), case], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"{case} hung for {TIMEOUT:.0f} s:\n{hung.stdout!r}\n{hung.stderr!r}")
    outcome = parse(done.returncode, done.stdout, done.stderr)
    assert done.returncode == 0, f"{case} did not end cleanly:\n{outcome}"
    assert leftovers(tmpdir) == ([], []), f"{case} left an agent or its folder:\n{outcome}"
    return outcome


def expect(outcome: Outcome, **expected: int) -> None:
    wrong = {name: (outcome[name], want) for name, want in expected.items() if outcome[name] != want}
    assert not wrong, f"(got, expected) {wrong}\n{outcome}"


# --- the cases ---


def test_calls_outside_initex_exit_are_disk_noinit(client: Path, kit: Path, tmpdir_: Path, backup: Backup) -> None:
    """As the simulated library answers (its _require_init and an ended session): VIX_E_DISK_NOINIT."""
    out = run(client, "uninitialised", environment(kit, tmpdir_, backup), tmpdir_)
    expect(out, before_connect=NOINIT, before_open=NOINIT, before_read=NOINIT, during_read=OK)
    expect(out, after_connect=NOINIT, after_open=NOINIT, after_read=NOINIT, after_close=NOINIT)
    expect(out, after_disconnect=NOINIT, agents_after_exit=0)


def test_calls_before_initex_get_unique_trace_seqs(client: Path, kit: Path, tmpdir_: Path, backup: Backup) -> None:
    trace = tmpdir_ / "trace.jsonl"
    run(client, "uninitialised", environment(kit, tmpdir_, backup, VDDKC_TRACE=str(trace)), tmpdir_)
    assert read_trace(trace).problems == []


def test_null_pointers_are_invalid_arg(client: Path, kit: Path, tmpdir_: Path, backup: Backup) -> None:
    out = run(client, "null", environment(kit, tmpdir_, backup), tmpdir_)
    nulls = ("connect_null_out", "open_null_out", "open_null_path", "open_null_connection", "get_info_null_out",
             "query_null_out", "read_null_buffer", "write_null_buffer", "read_null_disk", "close_null",
             "disconnect_null")  # fmt: skip
    expect(out, **dict.fromkeys(nulls, INVALID_ARG))
    expect(out, open_null_left_handle_null=1, read_still_works=OK, close=OK, disconnect=OK)
    assert out.text("transport_null") == "unknown"


def test_stale_and_never_valid_handles_are_errors_not_crashes(
    client: Path, kit: Path, tmpdir_: Path, backup: Backup
) -> None:
    out = run(client, "stale", environment(kit, tmpdir_, backup), tmpdir_)
    expect(out, close=OK, read_after_close=INVALID_ARG, get_info_after_close=INVALID_ARG, get_info_left_null=1)
    expect(out, close_twice=INVALID_ARG, read_never_valid=INVALID_ARG, open_never_valid_connection=INVALID_ARG)
    expect(out, disconnect_never_valid=INVALID_ARG, open_orphan=OK, disconnect_with_open_disk=OK)
    expect(out, open_after_disconnect=INVALID_ARG, disconnect_twice=INVALID_ARG)
    assert out["read_orphan"] != OK, f"a disk of a disconnected connection still reads:\n{out}"


def test_initex_twice_fails_and_starts_no_second_agent(client: Path, kit: Path, tmpdir_: Path, backup: Backup) -> None:
    out = run(client, "init-twice", environment(kit, tmpdir_, backup), tmpdir_)
    expect(out, second_init=FAIL, agents=1, read_after_second_init=OK, close=OK, disconnect=OK)


def test_a_forked_child_gets_an_error_and_leaves_the_parent_working(
    client: Path, kit: Path, tmpdir_: Path, backup: Backup
) -> None:
    out = run(client, "fork", environment(kit, tmpdir_, backup), tmpdir_)
    expect(out, parent_read=OK, child_read=FAIL, child_status=0, agents_after_child=1)
    expect(out, parent_read_after_child=OK, parent_same_bytes=1, close=OK, disconnect=OK)
    assert out.text("child_exit") == "done"


def test_a_killed_agent_is_an_error_within_seconds_and_exit_cleans_up(
    client: Path, kit: Path, tmpdir_: Path, backup: Backup
) -> None:
    env = environment(kit, tmpdir_, backup)
    process = subprocess.Popen(
        [str(client), "killed-agent"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(TIMEOUT, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None and process.stdin is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("ready="):
            line = process.stdout.readline()
            assert line, f"the client ended before it was ready: {lines}"
            lines.append(line.rstrip("\n"))
        pids = agent_pids(tmpdir_)
        assert len(pids) == 1, f"expected the one private agent, found {pids}"
        os.kill(pids[0], signal.SIGKILL)
        stdout, stderr = process.communicate("go\n")
    finally:
        watchdog.cancel()
    out = parse(process.returncode, "\n".join(lines) + "\n" + stdout, stderr)
    assert process.returncode == 0, f"the client did not end cleanly (killed by the watchdog: a hang?):\n{out}"
    expect(out, read_before=OK, read_after_kill=HOST_CONNECTION_LOST, agents_after_exit=0)
    assert out["read_after_kill_ms"] < 5000 and out["exit_ms"] < 15000, out
    assert out["close_after_kill"] != OK and out["disconnect_after_kill"] != OK, out
    assert leftovers(tmpdir_) == ([], [])


def test_async_reads_all_call_back_before_wait_returns(client: Path, kit: Path, tmpdir_: Path, backup: Backup) -> None:
    out = run(client, "async", environment(kit, tmpdir_, backup), tmpdir_)
    expect(out, read_async_null_callback=INVALID_ARG, read_async_null_buffer=INVALID_ARG, submitted=16)
    expect(out, wait=OK, callbacks_at_wait=16, callbacks_failed=0, read=OK, same_bytes=1)


def test_io_beyond_one_wire_frame_is_a_clean_error(client: Path, kit: Path, tmpdir_: Path, backup: Backup) -> None:
    out = run(client, "huge", environment(kit, tmpdir_, backup), tmpdir_)
    expect(out, read_over_frame=INVALID_ARG, read_frame=INVALID_ARG, read_absurd=INVALID_ARG)
    expect(out, write_frame=INVALID_ARG, read_after_write_frame=OK, write_over_frame=INVALID_ARG)
    expect(out, read_async_over_frame=INVALID_ARG, write_async_frame=INVALID_ARG, query_absurd=INVALID_ARG)
    # the largest request reaches the agent, which answers it (read-only disk, past the capacity...) cleanly
    assert HOST_CONNECTION_LOST not in (out["write_largest"], out["read_largest"]), out
    expect(out, callbacks_run=0, read_still_works=OK, close=OK, disconnect=OK)


def test_the_rest_of_the_api_answers_as_a_remote_connection(
    client: Path, kit: Path, tmpdir_: Path, backup: Backup
) -> None:
    trace = tmpdir_ / "trace.jsonl"
    out = run(client, "more-api", environment(kit, tmpdir_, backup, VDDKC_TRACE=str(trace)), tmpdir_)
    expect(out, pre_get_connect_params=NOINIT, pre_create=NOINIT, pre_rename=NOINIT, pre_connect=NOINIT)
    expect(out, init=OK, connect=OK, connect_ex=OK, open=OK, read=OK)
    expect(out, **{name: INVALID_ARG for name in out.values if name.startswith("null_")})
    expect(out, get_connect_params=OK, copy_same_values=1, copy_own_strings=1)
    expect(out, get_connect_params_never_valid=INVALID_ARG, get_connect_params_failed_left_null=1)
    unsupported = ("create", "create_child", "read_metadata", "read_metadata_size", "write_metadata",
                   "get_metadata_keys", "unlink", "grow", "shrink", "defragment", "rename", "clone",
                   "is_attach_possible", "space_needed", "check_repair")  # fmt: skip
    expect(out, **dict.fromkeys(unsupported, NOT_SUPPORTED))
    expect(out, shrink_never_valid=INVALID_ARG, unlink_never_valid=INVALID_ARG, read_still_works=OK, close=OK)
    expect(out, read_metadata_closed=INVALID_ARG, disconnect=OK, get_connect_params_disconnected=INVALID_ARG)
    expect(out, disconnect_legacy=OK, post_create_child=NOINIT)
    assert out.text("free_foreign") == "done" and out.text("exit") == "done"
    # every new function is traced, the trace reads cleanly, and no secret is in it
    read = read_trace(trace)
    assert read.problems == [], read.problems
    calls = {c.call for c in read.calls}
    assert {f"VixDiskLib_{name}" for name in MORE_API} <= calls, sorted(calls)
    assert isinstance(backup.params.credentials, UidCredentials)
    assert backup.params.credentials.password not in trace.read_text()
    assert [process.mode for process in read.processes] == ["simulated"]


def test_the_tracing_library_forwards_the_rest_of_the_api(
    client: Path, kit: Path, fake_real: Path, tmpdir_: Path
) -> None:
    trace = tmpdir_ / "trace.jsonl"
    env = environment(kit, tmpdir_, VDDKC_SHIM_FORWARD=str(fake_real), VDDKC_TRACE=str(trace))
    out = run(client, "forward", env, tmpdir_)
    expect(out, init=44, init_ex=OK, connect=OK, create=12, get_connect_params=OK)  # the fake's own answers
    assert out.text("connection") == "0x42" and out.text("copy_server") == "fake-real-library"
    expect(out, grow=NOT_SUPPORTED, read_metadata=NOT_SUPPORTED, shrink=NOT_SUPPORTED, rename=NOT_SUPPORTED)
    read = read_trace(trace)
    assert read.problems == [], read.problems
    traced = [c.call for c in read.calls]
    for name in ("Init", "InitEx", "Connect", "Create", "GetConnectParams", "Grow", "ReadMetadata", "Shrink"):
        assert f"VixDiskLib_{name}" in traced, traced
    assert [process.mode for process in read.processes] == ["forward"]
