"""The `vddk-conformance` command line."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from conformance import exit_codes
from conformance.input_errors import InputError
from conformance.vixdisklib.shim.commands import add_commands as add_shim_commands

if TYPE_CHECKING:
    from conformance.vixdisklib.shim.agent_process import AgentProcess


class CliError(InputError):
    """A problem with the user's input, reported as one line and exit code 2."""


def _sim_serve(args: argparse.Namespace) -> int:
    import os

    from conformance.knowledge.sim_faults import FAULTS, SimFaultError, check_faults
    from conformance.sim.instance import DEFAULT_USER, Simulator
    from conformance.sim.inventory import InventoryError, load_inventory
    from conformance.sim.profiles import UnknownProfileError, get_profile

    try:
        get_profile(args.vsphere)
        inventory = load_inventory(Path(args.inventory)) if args.inventory else None
        faults = check_faults((args.sim_fault or "").split(","))
        library_side = [name for name in faults if FAULTS[name].side == "library"]
        if library_side:
            raise SimFaultError(
                f"{', '.join(library_side)} is played by the simulated library of a run, not by the server "
                "(fix: pass it to `vddk-conformance run --sim-fault`)"
            )
    except SimFaultError as exc:
        raise CliError(f"--sim-fault: {exc}") from exc
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
        sim_faults=faults,
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
    agent = None
    try:
        info = simulator.connection_info()
        if args.vddk_agent:
            agent, info["vddk"] = _serve_agent(args)
        print(json.dumps(info), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if agent is not None:
            agent.stop()
        simulator.stop()
    return 0


def _serve_agent(args: argparse.Namespace) -> tuple[AgentProcess, dict[str, object]]:
    """The simulated libvixDiskLib's agent beside a served simulator, and what a product needs to use it."""
    from conformance.vixdisklib.shim.agent_process import AgentOptions, start_agent
    from conformance.vixdisklib.shim.build import build, default_folder

    libdir = Path(args.vddk_libdir) if args.vddk_libdir else default_folder()
    build(libdir)
    socket_dir = Path(args.state_dir) if args.state_dir else None
    agent = start_agent(
        AgentOptions(build=args.vddk_build, proxy_vm=args.proxy_vm),
        socket_path=socket_dir / "vddk-agent.sock" if socket_dir else None,
    )
    env = {"LD_LIBRARY_PATH": str(libdir), **agent.environment()}
    return agent, {"libdir": str(libdir), "build": args.vddk_build, "proxy_vm": args.proxy_vm, "env": env}


def _suites_dir() -> Path:
    """suites/ of this checkout (installed editable) or of the current folder."""
    here = Path(__file__).resolve().parent.parent / "suites"
    return here if here.is_dir() else Path.cwd() / "suites"


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the conformance suites (default: embedded simulator, VDDK 7.0.3, vSphere 7.0 U3) and write reports."""
    import pytest

    from conformance.lab.resources import new_run_id, run_id_problem

    suites = Path(args.suites) if args.suites else _suites_dir()
    if not suites.is_dir():
        raise CliError(f"no suites folder at {suites}: run from the repository or pass --suites PATH")
    run_id = args.run_id or new_run_id()
    problem = run_id_problem(run_id)
    if problem:
        raise CliError(f"--run-id: {problem} (fix: pass another --run-id)")
    argv = [
        str(suites),
        "-p",
        "conformance.plugin",  # never an entry point: the plugin is loaded only into conformance runs
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
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",  # the command line imported conformance before pytest
    ]
    if args.sim_behaviour:
        argv.append(f"--sim-behaviour={args.sim_behaviour}")
    for option in (
        "vddk_backend",
        "vddk_libdir",
        "sim_vsphere",
        "sim_fixed",
        "sim_fault",
        "release_note",
        "assume_fixed",
    ):
        if getattr(args, option, None):
            argv.append(f"--{option.replace('_', '-')}={getattr(args, option)}")
    if args.backup_app:
        argv.append(f"--backup-app={args.backup_app}")
    if args.shard:
        argv.append(f"--shard={args.shard}")
    temp = None
    if not any(a == "--basetemp" or a.startswith("--basetemp=") for a in extra):
        temp = _run_temp(run_id)  # the run's own pytest temp: removed at the end, swept after a hard kill
        argv.append(f"--basetemp={temp / 'pytest'}")
    try:
        code = int(pytest.main([*argv, *extra]))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    run_dir = Path(args.reports) / run_id
    if (run_dir / "summary.json").is_file():  # a usage error stops the run before it writes anything
        print(f"vddk-conformance: reports in {run_dir}", flush=True)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("vddk-conformance: no test was selected", file=sys.stderr)
    return exit_codes.from_pytest(code)


def _run_temp(run_id: str) -> Path:
    """`<tmp>/vddkc-run-<run id>-<pid>-*/` holding owner.pid, so `sweep` knows it once this process is gone."""

    from conformance.lab.local_sweep import RUN_TEMP_PREFIX
    from conformance.ownership import owned_temp_dir

    return owned_temp_dir(f"{RUN_TEMP_PREFIX}{run_id}-")


def _detection_matrix(args: argparse.Namespace) -> int:
    """Run every probe and its baseline; exit 1 unless every selected row is detected with a green baseline."""
    from conformance.runs.detection import Baseline, DetectionError, load_plan, run_probe, select_probes, write_results

    try:
        probes = select_probes(load_plan(Path(args.plan) if args.plan else None), args.items)
    except DetectionError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out) if args.out else Path(args.reports) / f"detection-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.monotonic()
    results = []
    baselines: dict[tuple[str, ...], Baseline] = {}
    for probe in probes:
        results.append(
            run_probe(probe, out / "runs", args.workers, Path(args.suites) if args.suites else None, baselines)
        )
        print(results[-1].progress(), flush=True)
    json_path, md_path = write_results(results, out, time.monotonic() - started)
    print(md_path.read_text(), end="")
    print(f"vddk-conformance: detection matrix in {json_path} and {md_path}")
    return 0 if all(r.detected for r in results) else 1


def _nightly(args: argparse.Namespace) -> int:
    """One run per (build, vSphere) pair; exit 1 when any run failed."""
    from conformance.runs.nightly import NightlyError, pairs, run_pairs
    from conformance.runs.shards import ShardError, parse_shard

    try:
        shard = parse_shard(args.shard) if args.shard else None
        selected = pairs(args.builds, args.vsphere, shard, args.include_unsupported)
    except (ShardError, NightlyError) as exc:
        raise CliError(str(exc)) from None
    print(f"vddk-conformance: {len(selected)} build/vSphere pair(s) to run", flush=True)
    night = run_pairs(selected, Path(args.reports), args.matrix, args.workers)
    print(f"vddk-conformance: nightly summary {night.path}", flush=True)
    if night.stopped_by:
        return exit_codes.INTERRUPTED
    return exit_codes.OK if all(r.exit_status == 0 for r in night.results) else exit_codes.PROBLEMS


def _compare(args: argparse.Namespace) -> int:
    from conformance.runs.compare import CompareError, compare

    try:
        result = compare(Path(args.run_a), Path(args.run_b))
    except CompareError as exc:
        raise CliError(str(exc)) from exc
    print(result.table())
    if args.json:
        Path(args.json).write_text(result.to_json())
    return 0


def _report(args: argparse.Namespace) -> int:
    """Allure HTML (needs Node; one line when it cannot) and the matrix page (always) of the given runs."""
    from conformance.reports.build import build_report
    from conformance.reports.runs import ReportError

    try:
        built = build_report(
            [Path(p) for p in args.run_dirs],
            Path(args.out),
            allure=not args.no_allure,
            cache=Path(args.allure_cache) if args.allure_cache else None,
        )
    except ReportError as exc:
        raise CliError(str(exc)) from exc
    for note in built.notes:
        print(f"vddk-conformance: {note}", file=sys.stderr)
    if built.allure is not None:
        print(f"vddk-conformance: Allure report {built.allure}")
    print(f"vddk-conformance: matrix page {built.matrix}")
    return 0


def _preflight_target(args: argparse.Namespace) -> int:
    """A target file and its server: one line per problem, exit 1 when there is one (2 when the file itself
    cannot be used, like every other command given that file)."""
    from conformance.lab.preflight import target_preflight
    from conformance.lab.target_file import TargetFileError, load_target_file

    try:
        load_target_file(args.target)
    except TargetFileError as exc:
        raise CliError(str(exc)) from exc
    lines = target_preflight(args.target, build=args.vddk_build)
    for line in lines:
        print(line)
    if not lines:
        print(f"preflight: target {args.target}: no problem found")
    return 1 if [line for line in lines if not line.startswith("warning:")] else 0


def _sweep(args: argparse.Namespace) -> int:
    """Remove what interrupted runs left (on the target, and dead simulators' state folders here)."""
    from conformance.lab.sweep import SweepError, sweep_command

    try:
        return sweep_command(
            args.target,
            run_id=args.run_id,
            older_than=args.older_than,
            dry_run=args.dry_run,
            reports=Path(args.reports),
        )
    except SweepError as exc:
        raise CliError(str(exc)) from exc


def _preflight(args: argparse.Namespace) -> int:
    """One line per problem; exit 1 when there is a problem (warnings alone exit 0)."""
    from conformance.lab.preflight import preflight

    if getattr(args, "target", None):
        return _preflight_target(args)
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


def _merge(args: argparse.Namespace) -> int:
    """Merge shard report directories into one run."""
    from conformance.runs.merge import MergeError, merge_runs

    try:
        summary = merge_runs([Path(p) for p in args.run_dirs], Path(args.out), run_id=args.run_id)
    except MergeError as exc:
        raise CliError(str(exc)) from exc
    shards = [str(s.get("shard")) for s in summary["merged_from"] if s.get("shard")]
    print(
        f"vddk-conformance: merged {len(args.run_dirs)} shards ({', '.join(shards)}), "
        f"{len(summary['tests'])} tests, into {args.out}"
    )
    return 0


def _certify(args: argparse.Namespace) -> int:
    """Run a certification profile's tests and pack the bundle."""
    from conformance.certify import CertifyError
    from conformance.certify.command import certify

    try:
        return certify(
            args.target,
            Path(args.product),
            Path(args.out),
            args.profile,
            args.vsphere,
            args.workers,
            args.reports,
            run_command=main,
            command_line=args.command_line,
        )
    except CertifyError as exc:
        raise CliError(str(exc)) from exc


def _conformance_list(args: argparse.Namespace) -> int:
    """Generate, write or check a profile's conformance list."""
    from conformance.certify import CertifyError
    from conformance.certify.list_command import conformance_list

    try:
        return conformance_list(
            args.profile, Path(args.suites) if args.suites else _suites_dir(), args.write, args.check
        )
    except CertifyError as exc:
        raise CliError(str(exc)) from exc


def _verify_bundle(args: argparse.Namespace) -> int:
    """Check a certification bundle and print its verdict."""
    from conformance.certify import CertifyError
    from conformance.certify.command import verify

    try:
        return verify(Path(args.bundle), args.profile)
    except CertifyError as exc:
        raise CliError(str(exc)) from exc


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
    serve.add_argument(
        "--sim-fault", help="comma-separated integrity faults to play (conformance/data/sim_faults.toml)"
    )
    serve.add_argument(
        "--vddk-agent",
        action="store_true",
        help="also serve the simulated libvixDiskLib.so to products (prints its env)",
    )
    serve.add_argument("--vddk-build", default="7.0.3", help="VDDK build the simulated library plays (default 7.0.3)")
    serve.add_argument("--proxy-vm", help="the proxy VM the products' library runs in (for HotAdd)")
    serve.add_argument("--vddk-libdir", help="folder for the built libraries (default: a per-user cache folder)")
    serve.set_defaults(handler=_sim_serve)

    run = commands.add_parser("run", help="run the conformance suites and write reports/<run-id>/")
    run.add_argument("--target", default="sim", help="'sim' (embedded simulator, default) or a target file")
    run.add_argument("--vddk-build", default="7.0.3", help="VDDK build whose expectations apply (default 7.0.3)")
    run.add_argument("--vsphere", default="7.0U3", help="vSphere version or VMC milestone (default 7.0U3)")
    run.add_argument(
        "--vddk-backend",
        choices=("simulated", "native"),
        help="VixDiskLib backend against the embedded simulator: simulated (in-process, default) or native (ctypes "
        "over the simulated libvixDiskLib.so, built for the run, or --vddk-libdir's)",
    )
    run.add_argument("--vddk-libdir", help="with --vddk-backend native: the kit folder holding libvixDiskLib.so.N")
    run.add_argument("--sim-behaviour", help="simulated VDDK behaves as this build (default: --vddk-build)")
    run.add_argument("--sim-vsphere", help="the simulated server presents this vSphere version (default: --vsphere)")
    run.add_argument(
        "--sim-fixed", help="comma-separated known issues the simulated VDDK plays fixed (e.g. K2,K4); not expectations"
    )
    run.add_argument(
        "--sim-fault", help="comma-separated integrity faults the simulator plays (conformance/data/sim_faults.toml)"
    )
    run.add_argument("--release-note", help="comma-separated release-note ids: run only their tests")
    run.add_argument("--assume-fixed", help="comma-separated ids whose tests must pass whatever the catalog says")
    run.add_argument("--backup-app", help="module:Class of the backup application (default: the reference one)")
    run.add_argument("--matrix", default="default", choices=("default", "full"))
    run.add_argument("--reports", default="reports", help="folder for reports/<run-id>/ (default ./reports)")
    run.add_argument("--run-id", help="run id (default: time stamp and random suffix)")
    run.add_argument("--shard", help="K/N: run one deterministic slice of the tests")
    run.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers (default auto, 0 = none)")
    run.add_argument("--suites", help="suites folder (default: the repository's suites/)")
    run.set_defaults(handler=_run)

    detect = commands.add_parser(
        "detection-matrix", help="prove each release-note item's tests fail on a build (or server) with its bug"
    )
    detect.add_argument("--items", help="comma-separated probe ids, e.g. F1,APP-fake-digest (default: all)")
    detect.add_argument("--out", help="output folder (default reports/detection-<time>)")
    detect.add_argument("--reports", default="reports", help="parent of the default output folder")
    detect.add_argument("-n", "--workers", default="2", help="pytest-xdist workers per probe (default 2)")
    detect.add_argument("--plan", help="a detection plan file (default: the packaged detection_plan.toml)")
    detect.add_argument("--suites", help="suites folder (default: the repository's suites/)")
    detect.set_defaults(handler=_detection_matrix)

    nightly = commands.add_parser("nightly", help="one run per VDDK build x vSphere version (the nightly matrix)")
    nightly.add_argument("--builds", default="all", help="VDDK selectors, comma-separated (default all; e.g. 7.0.x)")
    nightly.add_argument("--vsphere", default="all", help="vSphere selectors, comma-separated (default all)")
    nightly.add_argument("--matrix", default="full", choices=("default", "full"), help="per-run matrix (default full)")
    nightly.add_argument("--shard", help="K/N: run every N-th pair, starting with the K-th")
    nightly.add_argument("--include-unsupported", action="store_true", help="also run pairs the policy refuses")
    nightly.add_argument("--reports", default="reports", help="folder for the runs (default ./reports)")
    nightly.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers per run (default auto)")
    nightly.set_defaults(handler=_nightly)

    compare = commands.add_parser("compare", help="which tests and release-note items changed between two runs")
    compare.add_argument("run_a", help="report directory of the first run (reports/<run-id>)")
    compare.add_argument("run_b", help="report directory of the second run")
    compare.add_argument("--json", help="also write the comparison as JSON to this file")
    compare.set_defaults(handler=_compare)

    merge = commands.add_parser("merge", help="merge the report directories of a sharded run into one run")
    merge.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="report directories (reports/<run-id>)")
    merge.add_argument("--out", required=True, help="new or empty folder for the merged run")
    merge.add_argument("--run-id", help="run id of the merged run (default: the --out folder's name)")
    merge.set_defaults(handler=_merge)

    cert = commands.add_parser("certify", help="run a certification profile and pack a verifiable bundle")
    cert.add_argument("--target", default="sim", help="'sim' (embedded simulator, default) or a target file")
    cert.add_argument("--product", required=True, help="PRODUCT.yaml: name, version, vendor of the application")
    cert.add_argument("--out", required=True, help="the bundle to write (FILE.tar.gz, must not exist)")
    cert.add_argument("--profile", help="profile id (e.g. vddk-7.0.3-v1) or file (default: newest approved)")
    cert.add_argument("--vsphere", default="7.0U3", help="vSphere version of the target (default 7.0U3)")
    cert.add_argument("-n", "--workers", default="auto", help="pytest-xdist workers (default auto, 0 = none)")
    cert.add_argument("--reports", help="keep the run's reports under this folder (default: discarded)")
    cert.set_defaults(handler=_certify)

    listing = commands.add_parser(
        "conformance-list", help="a certification profile's conformance list, generated from the suites"
    )
    listing.add_argument("--profile", help="profile id (default: newest approved)")
    listing.add_argument("--suites", help="suites folder (default: this checkout's)")
    mode = listing.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write it to the checked-in file")
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff when the checked-in file differs")
    listing.set_defaults(handler=_conformance_list)

    verify = commands.add_parser("verify-bundle", help="check a certification bundle and print its verdict")
    verify.add_argument("bundle", help="FILE.tar.gz written by certify")
    verify.add_argument("--profile", help="profile file, for bundles of a profile this harness does not publish")
    verify.set_defaults(handler=_verify_bundle)

    report = commands.add_parser("report", help="Allure HTML report and release-note matrix page of one or more runs")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="report directories (reports/<run-id>)")
    report.add_argument("--out", default="report", help="output folder (default ./report; history kept there)")
    report.add_argument("--no-allure", action="store_true", help="write only the matrix page")
    report.add_argument("--allure-cache", help="Allure 3's npm folder (default ~/.cache/vddk-conformance/allure)")
    report.set_defaults(handler=_report)

    add_shim_commands(commands)

    pre = commands.add_parser("preflight", help="check a VDDK build, vSphere version, proxy OS and InitEx config")
    pre.add_argument("--vddk-build", default="7.0.3")
    pre.add_argument("--vsphere", default="7.0U3")
    pre.add_argument("--proxy-os", help='the HotAdd proxy\'s OS, e.g. "Red Hat Enterprise Linux 8.3"')
    pre.add_argument("--config", help="the InitEx configuration file to check")
    pre.add_argument("--transports", help="transport list the run uses, e.g. hotadd:nbdssl")
    pre.add_argument("target", nargs="?", help="a target file: also check its server, login, inventory and libdir")
    pre.set_defaults(handler=_preflight)

    sweep = commands.add_parser("sweep", help="remove leftovers of interrupted runs (snapshots, clones, hot-adds)")
    sweep.add_argument("target", nargs="?", help="target file (without one: only dead simulators' state folders)")
    sweep.add_argument("--run-id", help="only leftovers of this run")
    sweep.add_argument("--older-than", type=float, metavar="MIN", help="only leftovers older than MIN minutes")
    sweep.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    sweep.add_argument("--reports", default="reports", help="report folder of the runs (default ./reports)")
    sweep.set_defaults(handler=_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.command_line = ["vddk-conformance", *(sys.argv[1:] if argv is None else argv)]  # recorded in bundles
    if extra and getattr(args, "handler", None) is not _run:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.handler is _run:
            return _run(args, extra)
        return int(args.handler(args))
    except InputError as exc:  # CliError, and the one-line errors of the commands' own modules
        print(f"vddk-conformance: error: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
