"""pytest plugin that certify loads (``-p conformance.certify.selection``): keep the profile's tests, record which
node ids carry which permanent test id, and hand the target's passwords to the secret scan.

Why a plugin: summary.json names tests by node id, a profile by test id; only collection sees both (the
``test_id`` marker). It also refuses a profile whose required or advisory tests are platform checks, or whose
platform tests exercise the backup application (the kind is derived by conformance.plugin.expectations). The
passwords live in the ``vddk_target`` fixture inside the (worker) processes; they are
written to a private folder outside the run directory, which certify reads for the scan and then deletes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.certify import CertifyError
from conformance.certify.profile import Profile, load_profile
from conformance.plugin.expectations import PLATFORM, verdict_kind

#: written into the run directory: {"tests": {nodeid: test_id}, "profile": key}
TEST_MAP = "certification-tests.json"
SECRET_SUFFIX = ".secrets"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vddk-conformance certification")
    group.addoption("--certify-profile", default=None, help="run only this certification profile's tests")
    group.addoption("--certify-secrets", default=None, help="private folder receiving the target's passwords")


def test_id_of(item: pytest.Item) -> str | None:
    """The permanent id of a test (its ``test_id`` marker), if it has one."""
    marker = item.get_closest_marker("test_id")
    return str(marker.args[0]) if marker is not None and marker.args else None


def _write_atomically(path: Path, text: str) -> None:
    """Workers collect the same items and write the same map; a rename keeps every reader whole."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reference = config.getoption("certify_profile")
    if not reference:
        return
    try:
        profile = load_profile(reference)
    except CertifyError as exc:
        raise pytest.UsageError(str(exc)) from None
    wanted = set(profile.test_ids())
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if test_id_of(item) in wanted else drop).append(item)
    check_kinds(profile, keep)
    items[:] = keep
    if drop:
        config.hook.pytest_deselected(items=drop)
    reports, run_id = config.getoption("vddk_reports"), config.getoption("run_id")
    if reports and run_id:
        run_dir = Path(reports) / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        mapping = {item.nodeid: test_id_of(item) for item in sorted(keep, key=lambda i: i.nodeid)}
        _write_atomically(run_dir / TEST_MAP, json.dumps({"profile": profile.key, "tests": mapping}, indent=2))


def check_kinds(profile: Profile, items: list[pytest.Item]) -> None:
    """UsageError when a product test is listed as a platform check or the other way round (one line)."""
    for item in items:
        test = profile.test(test_id_of(item) or "")
        kind = verdict_kind(item)
        if test is not None and test.platform != (kind == PLATFORM):
            why = (
                "it does not use the backup_app fixture; only product tests decide a certification"
                if kind == PLATFORM
                else "it uses the backup_app fixture; list it as required or advisory"
            )
            raise pytest.UsageError(f"profile {profile.key}: test {test.id} is {test.status} but a {kind} test: {why}")


def _record_secrets(config: pytest.Config, target: Any) -> None:
    folder = config.getoption("certify_secrets")
    if not folder:
        return
    values = [getattr(target, "password", None), getattr(getattr(target, "guest", None), "password", None)]
    lines = sorted({v for v in values if isinstance(v, str) and v})
    if lines:
        path = Path(folder) / f"{os.getpid()}-{id(target)}{SECRET_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    result = yield
    if fixturedef.argname == "vddk_target":
        _record_secrets(request.config, result)
    return result


def read_secrets(folder: Path) -> set[str]:
    """Every password the run's processes recorded."""
    found: set[str] = set()
    for path in Path(folder).glob(f"*{SECRET_SUFFIX}"):
        found.update(line for line in path.read_text(encoding="utf-8").splitlines() if line)
    return found
