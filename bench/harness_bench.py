"""Benchmarks of the harness over the embedded simulator: NBD read throughput through the facade against
`cat` of the same bytes on the host, and backup time of a 64 GiB sparse disk against a 64 MiB full one.

Run: python bench/harness_bench.py [--json OUT]. Numbers are this machine's.
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
from conformance.sequences.context import SequenceContext
from conformance.sequences.reference import ReferenceBackupApp
from conformance.sim.instance import Simulator
from conformance.vixdisklib.api import VixDiskLib
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.simulated.library import SimulatedVixDiskLib
from conformance.vixdisklib.types import OpenFlags
from conformance.vsphere.guest import GuestWorkload
from conformance.vsphere.session import VsphereSession, disks_of

MiB = 2**20


def add_disk(vsphere: VsphereSession, vm: Any, capacity: int) -> None:
    vsphere.add_disk(vm, capacity)


def fill(guest: GuestWorkload, disk_index: int, size: int) -> None:
    guest.upload("/tmp/fill.bin", os.urandom(size))
    guest.run("/usr/bin/dd", f"if=/tmp/fill.bin of=/dev/sd{chr(97 + disk_index)} bs=1M conv=notrunc")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--read-mib", type=int, default=256)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    try:
        with Simulator() as sim:
            target = simulator_target(sim)
            vsphere = VsphereSession(target.endpoint, target.user, target.password, target.datacenter)
            config = work / "vddk.conf"
            config.write_text(
                render_config({"tmpDirectory": str(work / "tmp"), "vixDiskLib.nfcAio.Session.BufSizeIn64KB": 16})
            )
            lib = VixDiskLib(
                SimulatedVixDiskLib("7.0.3", proxy_vm=target.default_proxy, physical_proxy=target.physical_proxy)
            )
            lib.init_ex(config)
            guest = GuestWorkload(vsphere.content, vsphere.vm("target-vmfs"), target.guest, target.ssl_context())
            vm = vsphere.vm("target-vmfs")
            add_disk(vsphere, vm, args.read_mib * MiB)
            fill(guest, 1, args.read_mib * MiB)
            snapshot = vsphere.create_snapshot(vm, "bench", quiesce=False)
            disk = disks_of(snapshot)[1]
            for transport in ("nbd", "nbdssl"):
                with (
                    lib.connected(target.connect_params(vm._moId), True, snapshot._moId, transport) as conn,
                    lib.opened(conn, disk.file_name, OpenFlags.READ_ONLY) as handle,
                ):
                    started = time.perf_counter()
                    for sector in range(0, disk.capacity // 512, 2048):
                        lib.read(handle, sector, 2048)
                    results[f"{transport}_read_MBps_facade"] = round(
                        disk.capacity / MiB / (time.perf_counter() - started)
                    )
            name, rest = disk.file_name[1:].split("] ", 1)
            flat = sim.state_dir / "datastores" / name / rest.replace(".vmdk", "-flat.vmdk")
            started = time.perf_counter()
            subprocess.run(["cat", str(flat)], stdout=subprocess.DEVNULL, check=True)
            results["cat_host_file_MBps"] = round(flat.stat().st_size / MiB / (time.perf_counter() - started))
            vsphere.remove_snapshot(snapshot, "bench")

            app = ReferenceBackupApp()
            for label, vm_name, capacity, written in (
                ("64GiB_sparse_1MiB", "target-nfs", 64 * 2**30, MiB),
                ("64MiB_full", "target-nfs41", 64 * MiB, 64 * MiB),
            ):
                bvm = vsphere.vm(vm_name)
                add_disk(vsphere, bvm, capacity)
                g = GuestWorkload(vsphere.content, bvm, target.guest, target.ssl_context())
                if written == capacity:
                    fill(g, 1, written)
                else:
                    g.write_disk(1, capacity // 2, os.urandom(written))
                resources = ResourceTracker(new_run_id())
                ctx = SequenceContext(
                    target, vsphere, lib, resources, work / label, work / "tmp", proxy_vm=target.default_proxy
                )
                started = time.perf_counter()
                backup = app.backup(ctx, vm_name, "nbdssl")
                app.cleanup(ctx, backup)
                results[f"backup_seconds_{label}"] = round(time.perf_counter() - started, 2)
                results[f"backup_bytes_read_{label}"] = backup.bytes_read
            lib.exit()
            vsphere.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the bench disks: tens of MB
    for key, value in results.items():
        print(f"{key:40} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
