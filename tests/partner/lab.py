"""The simulator side of the partner tests: an embedded simulator, the harness's library on it and the example C
product built against the simulated libvixDiskLib.so (`open_lab`), and what the tests build on it: product files
(a deliberately wrong one too), sequence contexts and source VMs written by their guest."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.lab.resources import ResourceTracker, new_run_id
from conformance.lab.targets import Target, simulator_target
from conformance.sequences.context import SequenceContext
from conformance.sequences.product_library import shim_folder
from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession
from tests.partner.conftest import build_sample

MiB = 1024 * 1024
PRODUCT = Path(__file__).resolve().parents[2] / "examples" / "c-backup" / "product.toml"


@dataclass
class Lab:
    sim: Simulator
    target: Target
    vsphere: VsphereSession
    lib: VixDiskLib
    work: Path
    product_dir: Path


@contextmanager
def open_lab(work: Path) -> Iterator[Lab]:
    """The lab in folder `work`; the libraries the product loads are built into `work`/shim."""
    os.environ["VDDKC_SHIM_LIBDIR"] = str(work / "shim")
    try:
        product_dir = work / "product"
        build_sample(product_dir, shim_folder())
        shutil.copy2(PRODUCT, product_dir / "product.toml")
        with Simulator() as sim:
            target = simulator_target(sim)
            vsphere = VsphereSession(target.endpoint, target.user, target.password, target.datacenter)
            config = work / "vddk.conf"
            config.write_text(render_config({"tmpDirectory": str(work / "vddk-tmp")}))
            lib = VixDiskLib(
                SimulatedVixDiskLib("7.0.3", proxy_vm=target.default_proxy, physical_proxy=target.physical_proxy)
            )
            lib.init_ex(config)
            try:
                yield Lab(sim, target, vsphere, lib, work, product_dir)
            finally:
                lib.exit()
                vsphere.close()
    finally:
        os.environ.pop("VDDKC_SHIM_LIBDIR", None)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One lab per test module (import this fixture into the module)."""
    with open_lab(tmp_path_factory.mktemp("lab")) as made:
        yield made


def product_file(lab: Lab, name: str, extra_full: Sequence[str] = ()) -> Path:
    """The example product file, with arguments added to its full command (a deliberately wrong product)."""
    text = (lab.product_dir / "product.toml").read_text()
    if extra_full:
        added = ", ".join(f'"{a}"' for a in extra_full)
        end_of_full = '"--config", "{config}",\n]\nincremental'
        text = text.replace(end_of_full, end_of_full.replace('"{config}",', f'"{{config}}", {added},'))
        assert added in text
    path = lab.product_dir / f"{name}.toml"
    path.write_text(text)
    return path


def context(lab: Lab, name: str) -> SequenceContext:
    resources = ResourceTracker(new_run_id())
    return SequenceContext(
        lab.target, lab.vsphere, lab.lib, resources, lab.work / name / "repository", lab.work / "vddk-tmp",
        proxy_vm=lab.target.default_proxy, trace_dir=lab.work / name / "product-traces",
    )  # fmt: skip


def source_vm(lab: Lab, ctx: SequenceContext, name: str) -> tuple[str, GuestWorkload]:
    """A clone-free source: a VM of the inventory with a new 32 MiB data disk, written by its guest."""
    vm = lab.vsphere.vm(name)
    lab.vsphere.add_disk(vm, 32 * MiB)
    guest = GuestWorkload(lab.vsphere.content, vm, lab.target.guest, lab.target.ssl_context())
    guest.write_disk(1, 1 * MiB, os.urandom(MiB))
    guest.write_disk(1, 20 * MiB + 4096, os.urandom(300 * 1024))
    return name, guest
