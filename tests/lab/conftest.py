"""Lab-path fixtures: a `vddk-conformance sim serve` subprocess and target files that point at it.

Why a subprocess: the real-target path must not share anything with the server but the network (the run
reads the target file, pins the thumbprint and takes the password from the environment, as against a lab).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.sim.inventory import default_inventory
from conformance.vsphere.locks import LOCK_DIR_ENV
from tests.cli import CLI, run_cli  # noqa: F401 - re-exported for the lab tests

PASSWORD_ENV = "VDDKC_LAB_TEST_PASSWORD"
GUEST_ENV = "VDDKC_LAB_TEST_GUEST"


@dataclass
class SimServer:
    info: dict[str, Any]
    password: str
    process: subprocess.Popen[str]
    lock_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """The environment a run needs: the passwords (and this server's own VM lock folder)."""
        return {
            **os.environ,
            PASSWORD_ENV: self.password,
            GUEST_ENV: "simulated-guest",
            LOCK_DIR_ENV: str(self.lock_dir),
        }


def start_server(password: str, *options: str) -> SimServer:
    process = subprocess.Popen(
        [*CLI, "sim", "serve", "--password-env", PASSWORD_ENV, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, PASSWORD_ENV: password},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise AssertionError(f"sim serve did not start: {process.stderr.read() if process.stderr else ''}")
    return SimServer(json.loads(line), password, process, Path(tempfile.mkdtemp(prefix="vddkc-locks-")))


def stop_server(server: SimServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    for stream in (server.process.stdout, server.process.stderr):
        if stream is not None:
            stream.close()
    shutil.rmtree(server.lock_dir, ignore_errors=True)


@pytest.fixture
def sim_server() -> Iterator[SimServer]:
    server = start_server("Lab-Pa55w0rd-" + os.urandom(6).hex())
    try:
        yield server
    finally:
        stop_server(server)


def target_text(info: dict[str, Any], **overrides: str) -> str:
    """A target file for the server of `info`: the default inventory's VMs allowed, its first Linux proxy."""
    inventory = default_inventory()
    ds_type = {d.name: d.type for d in inventory.datastores}
    sources: dict[str, str] = {}
    for vm in inventory.vms:
        if vm.role != "proxy" and not vm.guest_id.startswith("windows"):
            sources.setdefault(ds_type[vm.datastore], vm.name)
    proxy = next(vm.name for vm in inventory.vms if vm.role == "proxy")
    datastores = "\n".join(f'{t} = ["{n}"]' for n, t in ds_type.items())
    sections = {
        "head": 'name = "sim-serve"\ncapabilities = ["create-vms", "guest-operations"]\n',
        "server": (
            f'[server]\nhost = "{info["host"]}"\nport = {info["port"]}\nthumbprint = "{info["thumbprint"]}"\n'
            f'datacenter = "{inventory.datacenter}"\nvsphere = "{info["vsphere"]}"\n'
        ),
        "credentials": f'[credentials]\nuser = "{info["user"]}"\npassword_env = "{PASSWORD_ENV}"\n',
        "vms": (
            "[vms]\nallow = [" + ", ".join(f'"{vm.name}"' for vm in inventory.vms) + "]\n"
            f'proxy = "{proxy}"\nphysical_proxy = "{inventory.physical_proxies[0].name}"\nsources = {{ '
            + ", ".join(f'{t} = "{n}"' for t, n in sources.items())
            + " }\n"
        ),
        "datastores": f"[datastores]\n{datastores}\n",
        "vddk": '[vddk]\nbuild = "7.0.3"\nbackend = "simulated"\ntransports = ["nbd", "nbdssl", "hotadd"]\n',
        "guest": f'[guest]\nuser = "root"\npassword_env = "{GUEST_ENV}"\n',
    }
    sections.update(overrides)
    return "\n".join(sections.values())


def write_target(path: Path, info: dict[str, Any], **overrides: str) -> Path:
    path.write_text(target_text(info, **overrides))
    return path
