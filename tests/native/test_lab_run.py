"""A lab run stays real: with a target file that says `backend = "native"`, no test of the run, nor any helper
process it starts (K2/R4's backup processes), ever builds the simulated library.

Arrangement: `vddk-conformance sim serve` is the lab's vCenter; the target file points at it with the ctypes
backend over the C double (which reads the server's disk files, like test_sequences). A `sitecustomize` on the
run's PYTHONPATH (inherited by every child) makes importing the simulated library fail and records who tried;
the record must stay empty. The hostile case: the same hook, in a process that builds the simulated library,
records it and fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.lab.conftest import run_cli, start_server, stop_server, write_target
from tests.native.conftest import Kits

RECORD_ENV = "VDDKC_TEST_SIMULATED_RECORD"
HOOK = '''
import importlib.abc, os, sys

class _NoSimulatedLibrary(importlib.abc.MetaPathFinder):
    """Record and refuse every import of the simulated VixDiskLib."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith("conformance.vixdisklib.simulated"):
            with open(os.environ["RECORD_ENV"], "a") as record:
                record.write(f"{os.getpid()} {' '.join(sys.argv)[:200]} imported {name}\\n")
            raise ImportError(f"{name}: the simulated library is off in this run")
        return None

sys.meta_path.insert(0, _NoSimulatedLibrary())
'''.replace("RECORD_ENV", RECORD_ENV)
#: a backup over the double, K2-002 and R4-002 (their backup processes), R3 and K5-003 (must skip naming a capability)
SELECTION = (
    "(full_backup and nbdssl and VMFS and random and not thick) or killed_backups_leftovers or nothing_remaining "
    "or fcd_volume or vendor_name"
)


def hooked_env(tmp_path: Path, base: dict[str, str]) -> tuple[dict[str, str], Path]:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    record = tmp_path / "simulated-library.log"
    root = str(Path(__file__).resolve().parents[2])
    env = {**base, "PYTHONPATH": os.pathsep.join([str(hook_dir), root]), RECORD_ENV: str(record)}
    return env, record


def test_the_hook_records_and_refuses_the_simulated_library(tmp_path: Path) -> None:
    env, record = hooked_env(tmp_path, dict(os.environ))
    code = "from conformance.vixdisklib.factory import make_library; make_library('7.0.3')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "the simulated library is off" in done.stderr
    assert "imported conformance.vixdisklib.simulated" in record.read_text()


@pytest.mark.slow
def test_a_native_lab_run_never_builds_the_simulated_library(kits: Kits, tmp_path: Path) -> None:
    server = start_server("Lab-Pa55w0rd-" + os.urandom(6).hex())
    try:
        info = server.info
        proxy = next(line.split('"')[1] for line in write_target(tmp_path / "probe.toml", info).read_text().splitlines()
                     if line.startswith("proxy = "))  # fmt: skip
        vddk = (
            f'[vddk]\nbuild = "7.0.3"\nbackend = "native"\nlibdir = "{kits.lib64}"\ntransports = ["nbdssl", "hotadd"]\n'
        )
        path = write_target(tmp_path / "lab.toml", info, vddk=vddk)
        path.write_text(path.read_text().replace(f'proxy = "{proxy}"', f'proxy = "{proxy}"\nharness_vm = "{proxy}"'))
        base = {
            **server.env,
            "VIXDOUBLE_DISK_ROOT": str(Path(info["state_dir"]) / "datastores"),
            "VIXDOUBLE_THUMBPRINT": info["thumbprint"],
        }
        env, record = hooked_env(tmp_path, base)
        reports = tmp_path / "reports"
        result = run_cli(
            "run", "--target", str(path), "--reports", str(reports), "--run-id", "native", "-n", "0", "-k", SELECTION,
            env=env, timeout=900,
        )  # fmt: skip
    finally:
        stop_server(server)
    summary = json.loads((reports / "native" / "summary.json").read_text())
    outcomes = {t["nodeid"].split("::", 1)[-1]: (t["outcome"], str(t.get("reason", ""))) for t in summary["tests"]}
    assert not record.exists(), record.read_text()  # nobody (run, workers, children) imported the simulated library
    assert [o for n, (o, _) in outcomes.items() if n.startswith("test_full_backup")] == ["passed"], outcomes
    skips = {n.split("[")[0]: r for n, (o, r) in outcomes.items() if o == "skipped"}
    assert "simple-volumes" in skips.get(
        "test_fcd_volume_mounts_after_a_hotadd_backup_and_the_known_file_reads_back", ""
    )
    assert "server-records" in skips.get("test_server_records_the_vendor_name_it_received", "")
    children = [o for n, (o, _) in outcomes.items() if "leftovers" in n or "nothing_remaining" in n]
    assert len(children) == 3 and "skipped" not in children, outcomes  # their backup processes ran, natively
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
