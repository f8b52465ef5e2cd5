"""Where a library runs: a target places it in a proxy VM only when it can (proxy-placement); otherwise the test
skips naming the capability instead of running on the harness machine and passing for a proxy it never ran in.
And a helper process gets the run's library spec, with the password outside its argv and environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.lab.targets import PROXY_PLACEMENT, file_target
from conformance.plugin.fixtures import library_spec
from conformance.plugin.settings import RunSettings
from conformance.sequences.backup_process import child_env
from conformance.vixdisklib.factory import LibrarySpec
from tests.lab.conftest import GUEST_ENV, PASSWORD_ENV, write_target

INFO = {"host": "127.0.0.1", "port": 8443, "thumbprint": "AB:" * 19 + "CD", "user": "root", "vsphere": "7.0U3"}
SETTINGS = RunSettings("lab.toml", "7.0.3", "7.0U3", None, "7.0.3", "default", None, "run-1", None)
PROXY, OTHER = "proxy-rhel83", "proxy-win2019"


def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, harness_vm: str | None) -> Path:
    monkeypatch.setenv(PASSWORD_ENV, "Lab-secret-pw")
    monkeypatch.setenv(GUEST_ENV, "guest-pw")
    vddk = f'[vddk]\nbackend = "{backend}"\n' + (f'libdir = "{tmp_path}"\n' if backend == "native" else "")
    path = write_target(tmp_path / "lab.toml", INFO, vddk=vddk)
    text = path.read_text()
    proxy = text.split('proxy = "', 1)[1].split('"', 1)[0]
    text = text.replace(f'proxy = "{proxy}"', f'proxy = "{PROXY}"')
    if harness_vm:
        text = text.replace(f'proxy = "{PROXY}"', f'proxy = "{PROXY}"\nharness_vm = "{harness_vm}"')
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("backend", "harness_vm", "default_proxy", "placeable"),
    [
        pytest.param("simulated", None, PROXY, {PROXY, OTHER}, id="simulated-places-anywhere"),
        pytest.param("native", PROXY, PROXY, {PROXY}, id="native-in-the-harness-vm"),
        pytest.param("native", None, None, set(), id="native-outside-any-proxy"),
    ],
)
def test_a_target_places_a_library_only_where_it_can(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    harness_vm: str | None,
    default_proxy: str | None,
    placeable: set[str],
) -> None:
    target = file_target(lab(tmp_path, monkeypatch, backend, harness_vm), read_server=False)
    assert target.default_proxy == default_proxy
    assert target.supports(PROXY_PLACEMENT) == (backend == "simulated")
    assert {vm for vm in (PROXY, OTHER) if target.placement_missing(vm) is None} == placeable
    assert target.placement_missing(None) is None  # the default: wherever the library runs


def test_asking_for_a_library_in_another_proxy_vm_skips_naming_the_capability(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = file_target(lab(tmp_path, monkeypatch, "native", PROXY), read_server=False)
    assert library_spec(SETTINGS, target, PROXY) == LibrarySpec(
        "7.0.3", "native", tmp_path, PROXY, target.physical_proxy
    )
    with pytest.raises(pytest.skip.Exception, match=f"does not offer {PROXY_PLACEMENT}: .* not in {OTHER}"):
        library_spec(SETTINGS, target, OTHER)


def test_a_backup_process_gets_the_runs_library_and_no_password_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = file_target(lab(tmp_path, monkeypatch, "native", PROXY), read_server=False)
    spec = library_spec(SETTINGS, target)
    launch = child_env("cleanup", target.connect_params(), spec)
    assert LibrarySpec.from_env(launch.env) == spec
    assert launch.password == "Lab-secret-pw"
    assert "Lab-secret-pw" not in repr(launch) and all("Lab-secret-pw" not in v for v in launch.env.values())
