"""Every conformance run writes reports/<run-id>/: JUnit XML, allure-results (with environment.properties and
categories.json) and summary.json. Under xdist the controller collects the results; workers only run tests, and
each process completes its own Allure results (labels, run parameters, call-trace and InitEx attachments)."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.plugin.expectations import KnownIssueHooks
from conformance.plugin.run_folder import RunFolderOwner
from conformance.plugin.scrubbing import SecretScrubber
from conformance.plugin.settings import SETTINGS, RunSettings
from conformance.reports import attachments, labels
from conformance.reports.categories import write_categories

RESULTS = pytest.StashKey[dict[str, dict[str, Any]]]()
RUN_DIR = pytest.StashKey[Path]()
STARTED = pytest.StashKey[float]()
TARGET_INFO = pytest.StashKey[dict[str, Any]]()
TRACE_MARKS = pytest.StashKey[dict[int, int]]()


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def configure(config: pytest.Config, settings: RunSettings) -> None:
    if not config.pluginmanager.has_plugin(KnownIssueHooks.NAME):
        config.pluginmanager.register(KnownIssueHooks(), KnownIssueHooks.NAME)
    config.stash[RESULTS] = {}
    config.stash[STARTED] = time.time()
    config.pluginmanager.register(_AllureHooks(config, settings), "vddk-conformance-allure")
    run_dir_or_none = None if settings.reports is None or is_worker(config) else settings.reports / settings.run_id
    config.pluginmanager.register(SecretScrubber(run_dir_or_none), SecretScrubber.NAME)
    if settings.reports is None:
        return
    run_dir = settings.reports / settings.run_id
    (run_dir / "allure-results").mkdir(parents=True, exist_ok=True)
    if hasattr(config.option, "allure_report_dir") and not config.option.allure_report_dir:
        config.option.allure_report_dir = str(run_dir / "allure-results")  # workers write their own results
    if is_worker(config):
        return
    config.stash[RUN_DIR] = run_dir
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(run_dir / "junit.xml")
    config.pluginmanager.register(_ControllerHooks(config), "vddk-conformance-controller")
    config.pluginmanager.register(RunFolderOwner(run_dir), RunFolderOwner.NAME)  # last: its marker goes last


def select_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--shard K/N keeps a deterministic slice (by a hash of the node id) so shards never overlap."""
    settings = config.stash[SETTINGS]
    if settings.shard is None:
        return
    index, total = settings.shard
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        bucket = int(hashlib.sha256(item.nodeid.encode()).hexdigest(), 16) % total
        (keep if bucket == index - 1 else drop).append(item)
    items[:] = keep
    config.hook.pytest_deselected(items=drop)


def outcome_of(report: pytest.TestReport) -> str | None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            return "xfailed" if report.skipped else "xpassed"
        if report.when == "setup" and report.failed:
            return "error"
        return str(report.outcome)
    if report.when == "teardown" and report.failed:
        return "error"
    return None


class _AllureHooks:
    """Completes each Allure test result in the process that runs the test (a no-op without allure-pytest).

    Run parameters go in before setup (Allure derives the history id from parameters at teardown); labels and the
    release-note link are completed at teardown, after the ``vddk_labels`` fixture had its chance, so that tests
    skipped at setup get them too; the call trace and InitEx configuration are attached after the call."""

    def __init__(self, config: pytest.Config, settings: RunSettings) -> None:
        self._config = config
        self._settings = settings

    def _result(self) -> Any:
        listener = self._config.pluginmanager.getplugin("allure_listener")
        return listener.allure_logger.get_test(None) if listener is not None else None

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        result = self._result()
        if result is not None:
            labels.add_parameters(result, labels.run_parameters(self._settings.build, self._settings.vsphere))
        yield
        if result is not None:
            item.stash[TRACE_MARKS] = attachments.marks(attachments.libraries(_fixture_values(item)))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        result = self._result()
        if result is None:
            return
        report = outcome.get_result()
        if call.when == "teardown":
            note = item.get_closest_marker("release_note")
            story = item.get_closest_marker("sequence")
            labels.complete(result, labels.wanted(
                str(note.args[0]) if note is not None and note.args else None,
                workaround=note.kwargs.get("workaround") if note is not None else None,
                sequence=str(story.args[0]) if story is not None and story.args else None,
            ))  # fmt: skip
            props = dict(item.user_properties)
            if props.get("test_uuid"):  # the permanent identity, as labels a history or a search can key by
                identity = labels.Wanted()
                identity.labels.update({"test_uuid": str(props["test_uuid"]), "test_name": str(props["test_name"])})
                labels.complete(result, identity)
        elif call.when == "call" or report.failed:
            _attach(item)


def _fixture_values(item: pytest.Item) -> list[Any]:
    return list(getattr(item, "funcargs", {}).values())


def _attach(item: pytest.Item) -> None:
    """The test's own VixDiskLib calls and the InitEx configurations in use, secrets scrubbed."""
    import allure

    values = _fixture_values(item)
    target = getattr(item, "funcargs", {}).get("vddk_target")
    secrets = [str(getattr(target, "password", "") or "")]
    libs = attachments.libraries(values)
    trace = attachments.call_trace(libs, item.stash.get(TRACE_MARKS, {}), secrets)
    if trace:
        allure.attach(trace, name="VixDiskLib call trace", attachment_type=allure.attachment_type.JSON)
    for path in attachments.init_configs(libs):
        text = attachments.sanitize_config(path.read_text(encoding="utf-8", errors="replace"), secrets)
        allure.attach(text, name=f"InitEx configuration ({path.name})", attachment_type=allure.attachment_type.TEXT)
    compared = [d for value in values for d in getattr(value, "digests", None) or [] if isinstance(d, dict)]
    if compared:  # the sequence context's content comparisons (restore: backup image vs disk read back)
        allure.attach(
            json.dumps(compared, indent=2), name="Disk digests compared", attachment_type=allure.attachment_type.JSON
        )


class _ControllerHooks:
    """Collects outcomes from (possibly remote) test reports and writes the run's summary."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        settings = node.config.stash[SETTINGS]
        node.workerinput["vddk_run_id"] = settings.run_id

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        config = self._config
        outcome = outcome_of(report)
        if outcome is None:
            return
        results = config.stash[RESULTS]
        props: dict[str, Any] = dict(report.user_properties)
        entry = results.setdefault(report.nodeid, {"nodeid": report.nodeid, "duration": 0.0})
        entry["duration"] += report.duration
        if entry.get("outcome") not in ("failed", "error") or outcome == "error":
            entry["outcome"] = outcome
        entry["release_note"] = props.get("release_note")
        entry["expectation"] = props.get("expectation")
        entry["verdict_kind"] = props.get("verdict_kind")  # "product" or "platform" (plugin/expectations.py)
        if props.get("test_uuid"):  # the permanent identity (plugin/identity.py): uuid + case outlive renames
            entry["test_name"] = props.get("test_name")
            entry["test_uuid"] = props.get("test_uuid")
            entry["test_case"] = props.get("test_case") or ""
        if "metrics" in props:
            entry["metrics"] = props["metrics"]
        if "target" in props:
            config.stash[TARGET_INFO] = dict(props["target"])
        if report.skipped and not hasattr(report, "wasxfail"):
            entry["reason"] = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        elif hasattr(report, "wasxfail"):
            entry["reason"] = report.wasxfail
        elif report.failed:
            entry["reason"] = report.longreprtext.strip().splitlines()[-1][:500] if report.longreprtext else ""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        write_summary(session.config, exitstatus)


def selection(config: pytest.Config) -> dict[str, Any]:
    """What narrowed the run besides --shard (-k, -m, paths, --release-note): shards merge only when it agrees,
    and a subset never passes for the whole run."""
    option = config.option
    root = Path(str(config.rootpath))
    paths = []
    for arg in config.args:
        path = Path(arg.split("::", 1)[0])
        try:
            relative = path.resolve().relative_to(root).as_posix()
        except ValueError:
            relative = path.as_posix()
        paths.append(relative + (arg[len(arg.split("::", 1)[0]) :] if "::" in arg else ""))
    return {
        "keyword": option.keyword or None,
        "markers": option.markexpr or None,
        "paths": sorted(paths),
        "release_notes": list(config.stash[SETTINGS].release_notes),
    }


def write_summary(config: pytest.Config, exitstatus: int) -> None:
    run_dir = config.stash.get(RUN_DIR, None)
    if run_dir is None:
        return
    settings = config.stash[SETTINGS]
    results = sorted(config.stash[RESULTS].values(), key=lambda r: r["nodeid"])
    totals: dict[str, int] = {}
    items: dict[str, dict[str, int]] = {}
    for result in results:
        totals[result["outcome"]] = totals.get(result["outcome"], 0) + 1
        if result.get("release_note"):
            per = items.setdefault(result["release_note"], {})
            per[result["outcome"]] = per.get(result["outcome"], 0) + 1
    target = config.stash.get(TARGET_INFO, {})
    summary = {
        "run_id": settings.run_id,
        "vddk_build": settings.build,
        "sim_behaviour": settings.sim_behaviour,
        "sim_vsphere": settings.sim_vsphere or settings.vsphere,
        "selected_release_notes": list(settings.release_notes),
        "assumed_fixed": list(settings.assume_fixed),
        "sim_fixed": list(settings.sim_fixed),  # known issues the simulator played fixed: no real build does
        "sim_faults": list(settings.sim_faults),  # integrity faults the simulator played: a lying server or library
        "vsphere": settings.vsphere,
        "backup_app": settings.backup_app or "reference",
        "matrix": settings.matrix,
        "shard": f"{settings.shard[0]}/{settings.shard[1]}" if settings.shard else None,
        "selection": selection(config),
        "target": target,
        "started": config.stash[STARTED],
        "finished": time.time(),
        "exit_status": int(exitstatus),
        "totals": totals,
        "release_notes": items,
        "tests": results,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    environment = {
        "vddk.build": settings.build,
        "vddk.behaviour": settings.sim_behaviour,
        "vsphere.behaviour": settings.sim_vsphere or settings.vsphere,
        "sim.faults": ",".join(settings.sim_faults) or "none",
        "vsphere": settings.vsphere,
        "target": target.get("name", settings.target),
        "transports": ",".join(target.get("transports", [])),
        "backup.app": settings.backup_app or "reference",
        "python": platform.python_version(),
        "run.id": settings.run_id,
    }
    (run_dir / "allure-results" / "environment.properties").write_text(
        "".join(f"{k}={v}\n" for k, v in environment.items())
    )
    write_categories(run_dir / "allure-results")
