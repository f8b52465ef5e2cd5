"""Benchmarks of the simulated vCenter: property-read round trip, snapshot create+remove rate, sparseness.

Run: python bench/sim_bench.py [--rounds N] [--json OUT]. Prints a table; numbers are this machine's.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyVim.task import WaitForTask
from pyVmomi import vim

from conformance.sim.instance import Simulator
from conformance.vsphere.connection import Endpoint, connect
from conformance.vsphere.guest import GuestCredentials, GuestWorkload


def property_read_ms(vm: Any, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        _ = vm.runtime.powerState
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def snapshot_cycles_per_second(vm: Any, rounds: int) -> float:
    started = time.perf_counter()
    for n in range(rounds):
        task = vm.CreateSnapshot_Task(f"bench-{n}", None, False, False)
        WaitForTask(task)
        WaitForTask(task.info.result.RemoveSnapshot_Task(False))
    return rounds / (time.perf_counter() - started)


def sparse_bytes(sim: Simulator, content: Any, vm: Any) -> int:
    spec = vim.vm.device.VirtualDeviceSpec(
        operation="add",
        fileOperation="create",
        device=vim.vm.device.VirtualDisk(
            key=-1,
            capacityInBytes=64 * 2**30,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True),
        ),
    )
    WaitForTask(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[spec])))
    guest = GuestWorkload(
        content, vm, GuestCredentials("root", "bench"), ssl.create_default_context(cafile=sim.cert_file)
    )
    guest.write_disk(1, 7 * 2**30, b"\xa5" * 2**20)
    disk = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][1]
    backing: Any = disk.backing  # a VirtualDisk's backing is a file backing with a fileName
    name, rest = backing.fileName[1:].split("] ", 1)
    path = sim.state_dir / "datastores" / name / rest
    return sum(f.stat().st_blocks * 512 for f in path.parent.glob(path.stem + "*"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with Simulator() as sim:
        si = connect(Endpoint(sim.host, sim.port, sim.thumbprint), sim.user, sim.password)
        content = si.RetrieveContent()
        vm = content.searchIndex.FindByInventoryPath("dc1/vm/target-vmfs")
        results = {
            "property_read_median_ms": round(property_read_ms(vm, args.rounds), 3),
            "config_read_median_ms": round(
                statistics.median([_timed(lambda: vm.config) for _ in range(max(10, args.rounds // 4))]), 3
            ),
            "snapshot_create_remove_per_s": round(snapshot_cycles_per_second(vm, max(10, args.rounds // 10)), 1),
            "host_bytes_64GiB_disk_1MiB_written": sparse_bytes(sim, content, vm),
        }
    for key, value in results.items():
        print(f"{key:40} {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _timed(func: Any) -> float:
    started = time.perf_counter()
    func()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    sys.exit(main())
