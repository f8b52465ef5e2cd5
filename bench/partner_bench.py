"""Read throughput of a partner's C product through the simulated libvixDiskLib.so next to the Python facade's.

One VM of the embedded simulator gets a data disk filled with random data; the harness's own library reads it
whole over NBDSSL (MB/s), then the example product (examples/c-backup, built here against our library) backs it
up with the same transport through `CommandLineApp` (MB/s of the product's reads, from InitEx to Exit, private
agent start included, and of its read loop alone).

Run: python bench/partner_bench.py [--mib 256] [--json OUT]. Numbers are this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.lab.resources import ResourceTracker, new_run_id
from conformance.lab.targets import simulator_target
from conformance.sequences.command_app import CommandLineApp
from conformance.sequences.context import SequenceContext
from conformance.sequences.product import load_product
from conformance.sequences.product_library import shim_folder
from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.shim.build import SOURCES
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import OpenFlags
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession, disks_of

MiB = 2**20
ROOT = Path(__file__).resolve().parents[1]


def build_product(folder: Path, libdir: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["gcc", "-std=c11", "-O2", "-pthread", f"-I{SOURCES}", "-o", str(folder / "vddkc_sample"),
         str(ROOT / "examples" / "c-backup" / "vddkc_sample.c"), f"-L{libdir}", "-l:libvixDiskLib.so.7"],
        check=True,
    )  # fmt: skip
    shutil.copy2(ROOT / "examples" / "c-backup" / "product.toml", folder / "product.toml")
    return folder / "product.toml"


def measure(mib: int) -> dict[str, Any]:
    results: dict[str, Any] = {"disk_mib": mib}
    work = Path(tempfile.mkdtemp(prefix="vddkc-partner-bench-"))
    os.environ["VDDKC_SHIM_LIBDIR"] = str(work / "shim")
    try:
        product = build_product(work / "product", shim_folder())
        with Simulator() as sim:
            target = simulator_target(sim)
            vsphere = VsphereSession(target.endpoint, target.user, target.password, target.datacenter)
            config = work / "vddk.conf"
            config.write_text(render_config({"tmpDirectory": str(work / "tmp")}))
            lib = VixDiskLib(SimulatedVixDiskLib("7.0.3", proxy_vm=target.default_proxy))
            lib.init_ex(config)
            vm = vsphere.vm("target-vmfs")
            vsphere.add_disk(vm, mib * MiB)
            guest = GuestWorkload(vsphere.content, vm, target.guest, target.ssl_context())
            guest.upload("/tmp/fill.bin", os.urandom(mib * MiB))
            guest.run("/usr/bin/dd", "if=/tmp/fill.bin of=/dev/sdb bs=1M conv=notrunc")
            snapshot = vsphere.create_snapshot(vm, "bench", quiesce=False)
            disk = disks_of(snapshot)[1]
            with (
                lib.connected(target.connect_params(vm._moId), True, snapshot._moId, "nbdssl") as connection,
                lib.opened(connection, disk.file_name, OpenFlags.READ_ONLY) as handle,
            ):
                started = time.perf_counter()
                for sector in range(0, disk.capacity // 512, 2048):
                    lib.read(handle, sector, 2048)
                results["python_facade_MBps"] = round(disk.capacity / MiB / (time.perf_counter() - started), 1)
            vsphere.remove_snapshot(snapshot, "bench")
            app = CommandLineApp(load_product(product))
            ctx = SequenceContext(target, vsphere, lib, ResourceTracker(new_run_id()), work / "repo", work / "tmp",
                                  proxy_vm=target.default_proxy)  # fmt: skip
            started = time.perf_counter()
            backup = app.backup(ctx, "target-vmfs", "nbdssl")
            wall = time.perf_counter() - started
            app.cleanup(ctx, backup)
            data = sorted(backup.disks, key=lambda d: d.key)[1]
            reads = [
                r for r in lib.recorder.records() if r.call == "VixDiskLib_Read" and r.handle and "pid" in r.handle
            ]
            read_seconds = sum(r.duration for r in reads if r.args.get("numSectors"))
            results["c_product_bytes_read"] = data.bytes_read
            results["c_product_job_seconds"] = round(wall, 2)
            results["c_product_read_MBps_incl_start"] = round(sum(d.bytes_read for d in backup.disks) / MiB / wall, 1)
            results["c_product_read_loop_MBps"] = round(
                sum(int(r.args["numSectors"]) * 512 for r in reads) / MiB / read_seconds, 1
            )
            lib.exit()
            vsphere.close()
    finally:
        os.environ.pop("VDDKC_SHIM_LIBDIR", None)
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = measure(args.mib)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
