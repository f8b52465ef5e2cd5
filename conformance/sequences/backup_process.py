"""A separate backup process (K2, R4, and the simulated library's own tests): the harness's library built the
way the fixtures build it, in an OS process of its own.

Run as `python -m conformance.sequences.backup_process`; the library is the one the run's fixtures build
(`LibrarySpec`: backend, libdir, build, proxy, the known issues played fixed, in VDDK_LIB_* variables),
everything else comes from the environment too: VDDK_CHILD_ACTION, VDDK_CONFIG (an InitEx configuration file;
unset = VDDK's default temporary directory), VDDK_SERVER, VDDK_PORT, VDDK_USER, VDDK_THUMBPRINT, and for the
disk actions VDDK_VM (moref), VDDK_SNAPSHOT (moref), VDDK_DISK ("[ds] dir/disk.vmdk"). The password is neither
on the command line nor in the environment (which a failing test's locals could show): the child reads it from
its stdin, a pipe.

Actions:
- "hotadd-open": ConnectEx on the snapshot, Open over HotAdd, Read one sector, print one JSON line
  {"transport", "tmp_directory"} and wait to be killed (a backup in progress).
- "hotadd-closed": the same, then Close the disk before printing; it waits to be killed before Disconnect.
- "cleanup": Cleanup, print {"cleaned", "remaining"} or {"error", "code", "remaining"}, Exit.
- "app-backup": the backup application (VDDK_BACKUP_APP, module:Class, empty for the reference one) backs up
  VDDK_VM_NAME over VDDK_TRANSPORTS with its objects named after VDDK_RUN_ID (in VDDK_DATACENTER, images below
  VDDK_REPOSITORY); at its first disk Read, with its snapshot taken and its disks open (hot-added with HotAdd),
  it prints {"transport", "run_id"} and waits to be killed (a backup aborted mid-run, D5). A product run as a
  command line (CommandLineApp) is held at its first Read by the harness's library meanwhile (first-read hook):
  killed, this process leaves it parentless, and it exits 137.

Callers start it with `crashed_backup` (the process is SIGKILLed once it has reported) and `cleanup_process`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.factory import LibrarySpec
from conformance.vixdisklib.types import ConnectParams, UidCredentials

COMMAND = [sys.executable, "-m", "conformance.sequences.backup_process"]


@dataclass(frozen=True)
class ChildLaunch:
    """How to start one child: its environment (no secret in it) and the password it reads from stdin."""

    env: dict[str, str]
    password: str = field(repr=False)


def child_env(
    action: str,
    params: ConnectParams,
    library: LibrarySpec,
    config: Path | None = None,
    tmpdir: Path | None = None,
    **disk: str,
) -> ChildLaunch:
    """A child that builds `library` (the run's, from `vixdisklib_spec`) and connects with `params`."""
    creds = params.credentials
    assert isinstance(creds, UidCredentials) and params.server_name and params.thumbprint
    # not inherited: our own variables, and the one holding the password (a target file's password_env)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VDDK_") and v != creds.password}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)  # where VDDK's default (per-process) temporary directory goes
    env.update(
        library.to_env(),
        VDDK_CHILD_ACTION=action,
        VDDK_SERVER=params.server_name,
        VDDK_PORT=str(params.port),
        VDDK_USER=creds.user,
        VDDK_THUMBPRINT=params.thumbprint,
        **{f"VDDK_{k.upper()}": v for k, v in disk.items()},
    )
    if config is not None:
        env["VDDK_CONFIG"] = str(config)
    return ChildLaunch(env, creds.password)


def crashed_backup(launch: ChildLaunch, timeout: float = 60.0) -> dict[str, Any]:
    """Start a child with a disk action, read its report, SIGKILL it; the report."""
    process = subprocess.Popen(
        COMMAND,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=launch.env,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(launch.password + "\n")
        process.stdin.close()
        line = process.stdout.readline()
        if not line:
            process.wait(timeout)
            raise RuntimeError(f"the backup process ended early: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        report: dict[str, Any] = json.loads(line)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout)  # reaped: its pid is no longer a live owner
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == -signal.SIGKILL, process.returncode
    return report


def cleanup_process(launch: ChildLaunch, timeout: float = 60.0) -> dict[str, Any]:
    """A new OS process that calls Cleanup; what it printed."""
    done = subprocess.run(
        COMMAND, input=launch.password + "\n", capture_output=True, text=True, env=launch.env, timeout=timeout
    )
    if done.returncode:
        raise RuntimeError(f"the cleanup process failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    env = os.environ
    action = env["VDDK_CHILD_ACTION"]
    password = sys.stdin.readline().rstrip("\n")
    params = ConnectParams(
        server_name=env["VDDK_SERVER"],
        port=int(env["VDDK_PORT"]),
        credentials=UidCredentials(env["VDDK_USER"], password),
        thumbprint=env["VDDK_THUMBPRINT"],
    )
    lib = LibrarySpec.from_env(env).make()
    lib.init_ex(Path(env["VDDK_CONFIG"]) if env.get("VDDK_CONFIG") else None)
    if action in ("hotadd-open", "hotadd-closed"):
        connection = lib.connect_ex(params.with_vm(env["VDDK_VM"]), True, env["VDDK_SNAPSHOT"], "hotadd")
        disk = lib.open(connection, env["VDDK_DISK"])
        lib.read(disk, 0, 1)
        transport = lib.get_transport_mode(disk)
        if action == "hotadd-closed":
            lib.close(disk)
        print(
            json.dumps({"transport": transport, "tmp_directory": str(getattr(lib.backend, "tmp_directory", ""))}),
            flush=True,
        )
        while True:  # until SIGKILL
            time.sleep(60)
    elif action == "app-backup":
        app_backup_until_first_read(lib, params, env)
    elif action == "cleanup":
        try:
            cleaned, remaining = lib.cleanup(params)
        except VixError as exc:
            print(json.dumps({"error": str(exc), "code": exc.code, "remaining": getattr(exc, "remaining", None)}))
        else:
            print(json.dumps({"cleaned": cleaned, "remaining": remaining}))
        lib.exit()
    else:
        raise SystemExit(f"unknown VDDK_CHILD_ACTION {action!r}")


def app_backup_until_first_read(lib: Any, params: ConnectParams, env: Any) -> None:
    """Run the backup application; its first Read reports and blocks until the parent SIGKILLs the process."""
    from conformance.lab.resources import ResourceTracker
    from conformance.lab.targets import Target
    from conformance.sequences.app import load_backup_app
    from conformance.sequences.command_app import CommandLineApp
    from conformance.sequences.context import SequenceContext
    from conformance.vsphere.connection import Endpoint
    from conformance.vsphere.session import VsphereSession

    assert params.server_name is not None and params.thumbprint is not None
    creds = params.credentials
    assert isinstance(creds, UidCredentials)
    endpoint = Endpoint(params.server_name, params.port, params.thumbprint)
    datacenter, run_id = env["VDDK_DATACENTER"], env["VDDK_RUN_ID"]
    target = Target("aborted-backup", endpoint, creds.user, creds.password, datacenter=datacenter)
    session = VsphereSession(endpoint, creds.user, creds.password, datacenter, run_id=run_id)
    ctx = SequenceContext(target, session, lib, ResourceTracker(run_id), Path(env["VDDK_REPOSITORY"]))
    real_read = lib.read

    def read_then_wait(disk: Any, start_sector: int, num_sectors: int) -> bytes:
        transport = lib.get_transport_mode(disk)
        print(json.dumps({"transport": transport, "run_id": run_id}), flush=True)
        while True:  # until SIGKILL: the snapshot, the open disks and the hot-adds stay as they are
            time.sleep(60)
        return real_read(disk, start_sector, num_sectors)  # pragma: no cover - never reached

    def report_then_wait(info: dict[str, Any]) -> None:
        """A product's first Read (CommandLineApp), the product held there: the same report, the same wait. Once
        this process is SIGKILLed, the product finds its parent gone and exits 137 (its private agent with it),
        leaving its snapshot and hot-added disks as a killed backup does."""
        print(json.dumps({"transport": info.get("transport"), "run_id": run_id}), flush=True)
        while True:  # until SIGKILL
            time.sleep(60)

    lib.read = read_then_wait
    app = load_backup_app(env.get("VDDK_BACKUP_APP") or None)
    if isinstance(app, CommandLineApp):  # a product in a process of its own never calls lib.read
        app.first_read_hook = report_then_wait
    app.backup(ctx, env["VDDK_VM_NAME"], env["VDDK_TRANSPORTS"])
    raise SystemExit("the backup application finished without reading a disk")


if __name__ == "__main__":
    main()
