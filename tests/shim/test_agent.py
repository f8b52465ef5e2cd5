"""The shim's agent as the C library meets it: wire.py frames over its Unix socket, against the embedded simulator.

What a product sees through the agent must be what the simulated library gives in-process (same bytes, same
blocks), handles are the agent's ids, a killed product leaves its hot-adds for a later Cleanup, and no secret
reaches the agent's log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.sim.instance import Simulator
from conformance.vixdisklib.config import KEY_TMP_DIRECTORY, render_config
from conformance.vixdisklib.errors import VixCode
from conformance.vixdisklib.native.callbacks import ANNOUNCEMENT
from conformance.vixdisklib.shim import agent as agent_module
from conformance.vixdisklib.shim import wire
from conformance.vixdisklib.shim.agent import MaskingFormatter, ProductLog
from conformance.vixdisklib.shim.sessions import SECRETS
from conformance.vixdisklib.shim.wire import Op
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.simulated.tmpstate import OWNER, SessionFolder, session_folders
from conformance.vixdisklib.types import ConnectParams, OpenFlags, UidCredentials
from tests.shim.conftest import (
    PATTERNS,
    PROXY_VM,
    REPO,
    Backup,
    ShimClient,
    StartAgent,
    connect_params,
    disks_of,
    find_vm,
    params_values,
)

READ_SECTORS = 8192  # 4 MiB: both PATTERNS
CHUNK = 128


def digest(data: Any) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def config_file(path: Path, tmp_directory: Path) -> str:
    path.write_text(render_config({KEY_TMP_DIRECTORY: str(tmp_directory)}))
    return str(path)


def opened(client: ShimClient, params: ConnectParams, snapshot: str | None, modes: str, path: str, flags: int) -> Any:
    """(connection id, disk id, transport) of a disk opened through the agent."""
    (connection,) = client.ok(
        Op.CONNECT, *params_values(params), int(flags & OpenFlags.READ_ONLY != 0), snapshot, modes
    )
    disk, transport = client.ok(Op.OPEN, connection, path, flags)
    return connection, disk, transport


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[SimulatedVixDiskLib]:
    """The simulated library in this process, for comparison."""
    lib = SimulatedVixDiskLib("7.0.3", proxy_vm=PROXY_VM)
    lib.init_ex(7, 0, None, Path(config_file(tmp_path / "in-process.conf", tmp_path / "in-process-tmp")))
    yield lib
    lib.exit()


def test_a_backup_read_through_the_agent_is_what_the_library_reads_in_process(
    start_agent: StartAgent, backup: Backup, in_process: SimulatedVixDiskLib
) -> None:
    agent = start_agent()
    client = agent.client(hello=False)
    hello = client.hello()
    assert hello.error == 0 and len(client.token or "") == 32  # 128 random bits, hex
    init = client.call(Op.INIT, 7, 0, None, None)
    assert init.error == 0, init
    announced = ANNOUNCEMENT.search(init.logs[0])
    assert init.logs[0].startswith("I ") and announced and announced.group(1) == "7.0.3"
    assert client.ok(Op.LIST_MODES) == ["file:san:hotadd:nbd:nbdssl"]
    connection, disk, transport = opened(client, backup.params, backup.snapshot, "nbdssl", backup.path, 4)
    assert connection >= 0x10000 and disk > connection and transport == "nbdssl"
    assert client.ok(Op.TRANSPORT, disk) == ["nbdssl"]

    raw_connection = in_process.connect_ex(backup.params, True, backup.snapshot, "nbdssl")
    raw_disk = in_process.open(raw_connection, backup.path, OpenFlags.READ_ONLY)
    try:
        info = in_process.get_info(raw_disk)
        geometry = [*vars(info.bios_geometry).values(), *vars(info.phys_geometry).values()]
        expected_info = [info.capacity, int(info.adapter_type), info.num_links, info.parent_file_name_hint, info.uuid]
        assert client.ok(Op.GET_INFO, disk) == [*expected_info, *geometry, 512, 512]
        expected = in_process.read(raw_disk, 0, READ_SECTORS)
        blocks = in_process.query_allocated_blocks(raw_disk, 0, info.capacity, CHUNK)
    finally:
        in_process.close(raw_disk)
        in_process.disconnect(raw_connection)
    (data,) = client.ok(Op.READ, disk, 0, READ_SECTORS)
    assert isinstance(data, bytes) and digest(data) == digest(expected)
    assert all(data[o : o + len(p)] == p for o, p in PATTERNS.items())  # not just zeros on both sides

    count, *flat = client.ok(Op.QUERY_BLOCKS, disk, 0, info.capacity, CHUNK)
    assert count == len(blocks) > 0 and flat == [n for b in blocks for n in (b.offset, b.length)]

    result, async_data = client.ok(Op.READ_ASYNC, disk, 0, READ_SECTORS)
    assert result == VixCode.OK and digest(async_data) == digest(expected)
    assert client.ok(Op.WAIT, disk) == []
    assert client.ok(Op.CLOSE, disk) == [] and client.ok(Op.DISCONNECT, connection) == []
    assert client.ok(Op.EXIT) == []


def test_write_then_read_round_trip_on_a_writable_disk(
    start_agent: StartAgent, sim: Simulator, content: Any, tmp_path: Path
) -> None:
    vm = find_vm(content, "target-nfs")
    client = start_agent().client()
    client.ok(Op.INIT, 7, 0, None, config_file(tmp_path / "vddk.conf", tmp_path / "vddk-tmp"))
    params = connect_params(sim).with_vm(vm._moId)
    connection, disk, transport = opened(client, params, None, "nbd", str(disks_of(vm)[0].backing.fileName), 0)
    assert transport == "nbd"
    data, more = os.urandom(64 * 1024), os.urandom(32 * 1024)
    assert client.ok(Op.WRITE, disk, 4096, wire.Bytes(data)) == []
    assert client.ok(Op.READ, disk, 4096, len(data) // 512) == [data]
    assert client.ok(Op.WRITE_ASYNC, disk, 8192, wire.Bytes(more)) == [VixCode.OK]
    assert client.ok(Op.READ_ASYNC, disk, 8192, len(more) // 512) == [VixCode.OK, more]
    assert client.ok(Op.FLUSH, disk) == []
    partial = client.call(Op.WRITE, disk, 0, wire.Bytes(b"x" * 100))
    assert partial.error == VixCode.INVALID_ARG and "whole number of sectors" in (partial.text or "")
    client.ok(Op.CLOSE, disk)
    client.ok(Op.DISCONNECT, connection)


def test_a_second_connection_joins_the_session_by_token_on_its_own_agent_thread(
    start_agent: StartAgent, backup: Backup
) -> None:
    agent = start_agent()
    first = agent.client(tid=1001)
    first.ok(Op.INIT, 7, 0, None, None)
    _, disk, _ = opened(first, backup.params, backup.snapshot, "nbdssl", backup.path, 4)
    second = agent.client(token=first.token, tid=1002)
    assert second.token == first.token
    assert digest(second.ok(Op.READ, disk, 0, 16)[0]) == digest(first.ok(Op.READ, disk, 0, 16)[0])  # the same handle
    threads = {}
    for tid in (1001, 1002):
        found = agent.wait_for_log(rf"by pid {os.getpid()} thread {tid}: served by agent thread (\S+) ident (\d+)")
        threads[tid] = (found.group(1), int(found.group(2)))
    assert threads[1001][0] == f"shim-{os.getpid()}-1001" and threads[1002][0] == f"shim-{os.getpid()}-1002"
    assert threads[1001][1] != threads[1002][1]


def test_an_unknown_token_is_refused(start_agent: StartAgent) -> None:
    reply = start_agent().client(hello=False).hello(token="0" * 32)
    assert reply.error == VixCode.INVALID_ARG and "unknown session token" in (reply.text or "")


def test_a_c_library_of_another_major_is_refused(start_agent: StartAgent) -> None:
    reply = start_agent().client(hello=False).hello(abi=6)
    assert reply.error == VixCode.NOT_SUPPORTED and "libvixDiskLib.so.6" in (reply.text or "")


def test_a_closed_or_unknown_handle_is_an_invalid_argument(start_agent: StartAgent, backup: Backup) -> None:
    client = start_agent().client()
    client.ok(Op.INIT, 7, 0, None, None)
    connection, disk, _ = opened(client, backup.params, backup.snapshot, "nbdssl", backup.path, 4)
    client.ok(Op.CLOSE, disk)
    closed = client.call(Op.READ, disk, 0, 1)
    assert closed.error == VixCode.INVALID_ARG
    assert closed.text == f"VixDiskLib_Read: disk handle {disk:#x} is not open (closed or never opened)"
    never = client.call(Op.GET_INFO, 0x99999)
    assert (never.error, never.text) == (
        VixCode.INVALID_ARG,
        "VixDiskLib_GetInfo: disk handle 0x99999 is not open (closed or never opened)",
    )
    client.ok(Op.DISCONNECT, connection)
    gone = client.call(Op.OPEN, connection, backup.path, 4)
    assert gone.error == VixCode.INVALID_ARG and f"connection {connection:#x} is not open" in (gone.text or "")


def test_no_password_reaches_the_agents_log_even_at_debug_level(
    start_agent: StartAgent, sim: Simulator, backup: Backup
) -> None:
    agent = start_agent("--log-level", "DEBUG")
    client = agent.client()
    replies = [client.call(Op.INIT, 7, 0, None, None)]
    _, disk, _ = opened(client, backup.params, backup.snapshot, "nbdssl", backup.path, 4)
    replies.append(client.call(Op.READ, disk, 0, 1))
    wrong = f"wrong-{os.urandom(8).hex()}"
    refused = ConnectParams(
        server_name=sim.host, credentials=UidCredentials(sim.user, wrong), vmx_spec=backup.params.vmx_spec,
        thumbprint=sim.thumbprint, port=sim.port,
    )  # fmt: skip
    replies.append(client.call(Op.CONNECT, *params_values(refused), 1, backup.snapshot, "nbdssl"))
    assert replies[-1].error == VixCode.AUTHENTICATION_FAIL
    replies.append(client.call(Op.EXIT))
    agent.stop()
    text = agent.log_text()
    assert " DEBUG " in text and "ConnectEx" in text  # debug logging was on
    for secret in (sim.password, wrong):
        assert secret not in text
        assert all(secret not in str(r) for r in replies)


def test_a_killed_product_leaves_its_hotadd_for_a_later_cleanup(
    start_agent: StartAgent, sim: Simulator, content: Any, backup: Backup, tmp_path: Path
) -> None:
    agent = start_agent()
    config = config_file(tmp_path / "shared.conf", tmp_path / "shared-tmp")
    proxy_disks = len(disks_of(find_vm(content, PROXY_VM)))
    product = subprocess.Popen(["sleep", "60"])  # stands in for the product process, to be killed
    try:
        killed = [agent.client(pid=product.pid, tid=2001), agent.client(hello=False)]
        assert killed[1].hello(token=killed[0].token, pid=product.pid, tid=2002).error == 0
        killed[0].ok(Op.INIT, 7, 0, None, config)
        _, disk, transport = opened(killed[0], backup.params, backup.snapshot, "hotadd", backup.path, 4)
        assert transport == "hotadd" and killed[1].ok(Op.READ, disk, 0, 1)
        assert len(disks_of(find_vm(content, PROXY_VM))) == proxy_disks + 1

        other = agent.client()  # another process: Cleanup must leave a live process's hot-add alone
        other.ok(Op.INIT, 7, 0, None, config)
        assert other.ok(Op.CLEANUP, *params_values(connect_params(sim))) == [0, 0]
    finally:
        product.kill()
        product.wait()
    for connection in killed:
        connection.close()
    agent.wait_for_log(r"session-1: every connection closed without Exit: dropped like a killed process")
    assert len(disks_of(find_vm(content, PROXY_VM))) == proxy_disks + 1  # the kill left it attached

    rescue = agent.client()
    rescue.ok(Op.INIT, 7, 0, None, config)
    cleaned, remaining = rescue.ok(Op.CLEANUP, *params_values(connect_params(sim)))
    assert isinstance(cleaned, int) and cleaned >= 1 and remaining == 0
    assert len(disks_of(find_vm(content, PROXY_VM))) == proxy_disks


def test_cleanup_reports_its_counts_when_it_fails(start_agent: StartAgent, sim: Simulator, tmp_path: Path) -> None:
    """R4 on 6.7.3: a session folder without unmount.dat stays, Cleanup fails with numRemaining 1."""
    shared = tmp_path / "shared-tmp"
    orphan = SessionFolder.create(shared, sim.host)
    (orphan.path / OWNER).unlink()  # nobody owns it any more
    client = start_agent("--build", "6.7.3").client(abi=6)
    client.ok(Op.INIT, 6, 7, None, config_file(tmp_path / "vddk.conf", shared))
    reply = client.call(Op.CLEANUP, *params_values(connect_params(sim)))
    assert (reply.error, reply.results) == (VixCode.FAIL, [0, 1])
    assert (reply.text or "").startswith("VixDiskLib_Cleanup: Could not unmount")
    orphan.remove()


@pytest.mark.parametrize(("fixed", "folder"), [((), "vixDiskLib-{pid}"), (("--sim-fixed", "K2"), "vixDiskLib")])
def test_the_default_temporary_folder_and_its_owner_are_the_product_process(
    start_agent: StartAgent, sim: Simulator, backup: Backup, tmp_path: Path, fixed: tuple[str, ...], folder: str
) -> None:
    """K2 per product process, not per agent (one shared folder with K2 played fixed); the session folder names
    the product as its owner."""
    client = start_agent(*fixed).client()
    client.ok(Op.INIT, 7, 0, None, None)
    (connection,) = client.ok(Op.CONNECT, *params_values(backup.params), 1, backup.snapshot, "nbdssl")
    (user_folder,) = (tmp_path / "TMPDIR").iterdir()  # vmware-<user>
    (session,) = session_folders(user_folder / folder.format(pid=os.getpid()), sim.host)
    assert json.loads((session.path / OWNER).read_text())["pid"] == os.getpid()
    client.ok(Op.DISCONNECT, connection)


@pytest.mark.parametrize("option", ["--sim-fixed", "--sim-fault", "--build"])
def test_an_unknown_build_known_issue_or_fault_stops_the_agent_at_start(option: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "conformance.vixdisklib.shim.agent", "--socket", str(tmp_path / "a.sock")]
    done = subprocess.run([*command, option, "X99"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and done.stderr.startswith("shim agent: ") and "X99" in done.stderr
    assert not (tmp_path / "a.sock").exists()


def test_secrets_are_masked_in_the_agents_log_and_the_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """The masking itself, with a message that does carry a secret (the end-to-end test above has none)."""
    secret = f"pw-{os.urandom(6).hex()}"
    SECRETS.add(secret)
    try:
        record = logging.LogRecord(
            "conformance.vixdisklib.simulated", logging.WARNING, "", 0, "login %s", (secret,), None
        )
        assert MaskingFormatter("%(message)s").format(record) == "login ********"
        lines: list[str] = []
        monkeypatch.setattr(agent_module._CAPTURE, "lines", lines)
        ProductLog().emit(record)
        assert lines == ["W login ********"]
    finally:
        SECRETS.forget(secret)
    assert SECRETS.mask(secret) == secret  # forgotten with its session


def test_a_malformed_or_oversized_frame_closes_only_its_connection(start_agent: StartAgent) -> None:
    agent = start_agent()
    good = agent.client()
    bad_tag, too_big, wrong_types = (agent.client(token=good.token) for _ in range(3))
    bad_tag.sock.sendall(struct.pack("<I", 4) + b"zzzz")
    too_big.sock.sendall(struct.pack("<I", wire.MAX_FRAME + 1))
    wrong_types.sock.sendall(wire.encode([int(Op.READ), "not a handle", 0, 1]))
    assert bad_tag.closed_by_peer() and too_big.closed_by_peer() and wrong_types.closed_by_peer()
    assert good.ok(Op.LIST_MODES) == ["file:san:hotadd:nbd:nbdssl"]
    assert good.call(Op.ERROR_TEXT, VixCode.FILE_NOT_FOUND).results == ["A file was not found"]
    unknown = good.call(99)  # type: ignore[arg-type]
    assert unknown.error == VixCode.NOT_SUPPORTED and "unknown op 99" in (unknown.text or "")


def test_once_exits_after_exit(start_agent: StartAgent) -> None:
    agent = start_agent("--once")
    client = agent.client()
    client.ok(Op.INIT, 7, 0, None, None)
    assert client.ok(Op.EXIT) == []
    assert agent.wait() == 0
    assert not agent.socket.exists()


def test_sigterm_stops_the_agent_and_removes_its_socket(start_agent: StartAgent) -> None:
    agent = start_agent()
    client = agent.client()
    assert (agent.socket.stat().st_mode & 0o777) == 0o600
    agent.process.send_signal(signal.SIGTERM)
    assert agent.wait() == 0
    assert not agent.socket.exists()
    assert client.closed_by_peer()


def test_the_agent_ends_with_its_parent_process(start_agent: StartAgent) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    try:
        agent = start_agent("--parent-pid", str(parent.pid))
        time.sleep(0.2)
        assert agent.process.poll() is None
    finally:
        parent.kill()
        parent.wait()
    assert agent.wait() == 0 and not agent.socket.exists()


def test_a_second_agent_does_not_take_a_live_socket(start_agent: StartAgent) -> None:
    agent = start_agent()
    command = [sys.executable, "-m", "conformance.vixdisklib.shim.agent", "--socket", str(agent.socket)]
    second = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert second.returncode == 2 and "another agent listens" in second.stderr
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        assert probe.connect_ex(str(agent.socket)) == 0
