"""The `vddk-conformance` command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType


class CliError(Exception):
    """A problem with the user's input, reported as one line and exit code 2."""


def _sim_serve(args: argparse.Namespace) -> int:
    import os

    from conformance.sim.instance import DEFAULT_USER, Simulator
    from conformance.sim.inventory import InventoryError, load_inventory
    from conformance.sim.profiles import UnknownProfileError, get_profile

    try:
        get_profile(args.vsphere)
        inventory = load_inventory(Path(args.inventory)) if args.inventory else None
    except (UnknownProfileError, InventoryError) as exc:
        raise CliError(str(exc)) from exc
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            raise CliError(f"--password-env {args.password_env}: that environment variable is empty or unset")
    if args.state_dir and Path(args.state_dir).exists() and any(Path(args.state_dir).iterdir()):
        raise CliError(f"--state-dir {args.state_dir} is not empty: give a new or empty folder")
    simulator = Simulator(
        vsphere=args.vsphere,
        port=args.port,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        inventory=inventory,
        user=args.user or DEFAULT_USER,
        password=password,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        simulator.start()
    except OSError as exc:
        raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}; choose another --port") from exc
    try:
        print(json.dumps(simulator.connection_info()), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
    return 0


def _suites_dir() -> Path:
    """suites/ of this checkout (installed editable) or of the current folder."""
    here = Path(__file__).resolve().parent.parent / "suites"
    return here if here.is_dir() else Path.cwd() / "suites"


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the conformance suites (default: embedded simulator, VDDK 7.0.3, vSphere 7.0 U3) and write reports."""
    import pytest

    from conformance.resources import new_run_id

    suites = Path(args.suites) if args.suites else _suites_dir()
    if not suites.is_dir():
        raise CliError(f"no suites folder at {suites}: run from the repository or pass --suites PATH")
    run_id = args.run_id or new_run_id()
    argv = [
        str(suites),
        "-p",
        "no:cacheprovider",
        "-q",
        f"--vddk-reports={args.reports}",
        f"--run-id={run_id}",
        f"--vddk-target={args.target}",
        f"--vddk-build={args.vddk_build}",
        f"--vsphere={args.vsphere}",
        f"--matrix={args.matrix}",
        "-n",
        str(args.workers),
        "-o",
        "console_output_style=classic",
    ]
    if args.sim_behaviour:
        argv.append(f"--sim-behaviour={args.sim_behaviour}")
    if args.backup_app:
        argv.append(f"--backup-app={args.backup_app}")
    if args.shard:
        argv.append(f"--shard={args.shard}")
    code = int(pytest.main([*argv, *extra]))
    run_dir = Path(args.reports) / run_id
    print(f"vddk-conformance: reports in {run_dir}", flush=True)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("vddk-conformance: no test was selected", file=sys.stderr)
    return code


def _compare(args: argparse.Namespace) -> int:
    from conformance.compare import CompareError, compare

    try:
        result = compare(Path(args.run_a), Path(args.run_b))
    except CompareError as exc:
        raise CliError(str(exc)) from exc
    print(result.table())
    if args.json:
        Path(args.json).write_text(result.to_json())
    return 0


def _preflight(args: argparse.Namespace) -> int:
    """One line per problem; exit 1 when there is a problem (warnings alone exit 0)."""
    from conformance.preflight import preflight

    if args.config and not Path(args.config).is_file():
        raise CliError(f"--config {args.config}: no such file")
    lines = preflight(
        args.vddk_build,
        args.vsphere,
        proxy_os=args.proxy_os,
        config=Path(args.config) if args.config else None,
        transports=args.transports,
    )
    for line in lines:
        print(line)
    problems = [line for line in lines if not line.startswith("warning:")]
    if not lines:
        print(f"preflight: VDDK {args.vddk_build} with vSphere {args.vsphere}: no problem found")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vddk-conformance", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("sim", help="the simulated vCenter/ESXi")
    sim_commands = sim.add_subparsers(dest="sim_command", required=True)
    serve = sim_commands.add_parser("serve", help="run a simulator in the foreground; prints its connection as JSON")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    serve.add_argument("--vsphere", default="7.0U3", help="vSphere version or VMC milestone to present (default 7.0U3)")
    serve.add_argument(
        "--state-dir", help="folder for disks and certificates (default: a temporary one, removed at exit)"
    )
    serve.add_argument("--inventory", help="TOML inventory file (default: the built-in inventory)")
    serve.add_argument("--user", help="login user (default administrator@vsphere.local)")
    serve.add_argument("--password-env", help="environment variable holding the password (default: a random one)")
    serve.set_defaults(handler=_sim_serve)

    run = commands.add_parser("run", help="run the conformance suites and write reports/<run-id>/")
    run.add_argument("--target", default="sim", help="'sim' (embedded simulator, default) or a target file")
    run.add_argument("--vddk-build", default="7.0.3", help="VDDK build whose expectations apply (default 7.0.3)")
    run.add_argument("--vsphere", default="7.0U3", help="vSphere version or VMC milestone (default 7.0U3)")
    run.add_argument("--sim-behaviour", help="simulated VDDK behaves as this build (default: --vddk-build)")
    run.add_argument("--backup-app", help="module:Class of the backup application (default: the reference one)")
    run.add_argument("--matrix", default="default", choices=("default", "full"))
    run.add_argument("--reports", default="reports", help="folder for reports/<run-id>/ (default ./reports)")
    run.add_argument("--run-id", help="run id (default: time stamp and random suffix)")
    run.add_argument("--shard", help="K/N: run one deterministic slice of the tests")
    run.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers (default auto, 0 = none)")
    run.add_argument("--suites", help="suites folder (default: the repository's suites/)")
    run.set_defaults(handler=_run)

    compare = commands.add_parser("compare", help="which tests and release-note items changed between two runs")
    compare.add_argument("run_a", help="report directory of the first run (reports/<run-id>)")
    compare.add_argument("run_b", help="report directory of the second run")
    compare.add_argument("--json", help="also write the comparison as JSON to this file")
    compare.set_defaults(handler=_compare)

    pre = commands.add_parser("preflight", help="check a VDDK build, vSphere version, proxy OS and InitEx config")
    pre.add_argument("--vddk-build", default="7.0.3")
    pre.add_argument("--vsphere", default="7.0U3")
    pre.add_argument("--proxy-os", help='the HotAdd proxy\'s OS, e.g. "Red Hat Enterprise Linux 8.3"')
    pre.add_argument("--config", help="the InitEx configuration file to check")
    pre.add_argument("--transports", help="transport list the run uses, e.g. hotadd:nbdssl")
    pre.set_defaults(handler=_preflight)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "handler", None) is not _run:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.handler is _run:
            return _run(args, extra)
        return int(args.handler(args))
    except CliError as exc:
        print(f"vddk-conformance: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
