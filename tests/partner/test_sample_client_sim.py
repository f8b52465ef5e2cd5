"""The example partner product (examples/c-backup, C, public ABI only) run by the harness as a command-line
backup application (`--backup-app product.toml`) against the simulator, through the simulated libvixDiskLib.so.

What must hold, judged by the harness alone: over nbd, nbdssl and hotadd a full backup, an incremental backup and a
restore into a new VM give images and a restored disk equal to the source disk (whole-disk digests read through the
harness's own library, and `qemu-img compare` of the disk files); the incremental reads at most the changed CBT
blocks; the product's trace shows no rule broken; a deliberately wrong product is caught by the rule and the call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conformance.sequences.command_app import CommandLineApp
from conformance.sequences.model import Backup
from conformance.sequences.product import load_product
from conformance.verdicts.trace import changed_bytes, snapshot_reads, trace_mark
from conformance.verdicts.transport import event_mark, transport_problems
from conformance.vixdisklib.types import OpenFlags
from conformance.vsphere.session import disks_of
from tests.partner.lab import Lab, context, lab, product_file, source_vm

__all__ = ["lab"]  # the module's fixture
MiB = 1024 * 1024


def whole_disk(lab: Lab, vm_name: str, key: int) -> bytes:
    """The VM's disk `key` as the harness's own library reads it, every byte."""
    vm = lab.vsphere.vm(vm_name)
    disk = next(d for d in disks_of(vm) if d.key == key)
    with (
        lab.lib.connected(lab.target.connect_params(vm._moId), True, None, "nbdssl") as connection,
        lab.lib.opened(connection, disk.file_name, OpenFlags.READ_ONLY) as handle,
    ):
        sectors = disk.capacity // 512
        return b"".join(lab.lib.read(handle, s, min(2048, sectors - s)) for s in range(0, sectors, 2048))


def host_file(lab: Lab, vm_name: str, key: int) -> Path:
    disk = next(d for d in disks_of(lab.vsphere.vm(vm_name)) if d.key == key)
    name, rest = disk.file_name[1:].split("] ", 1)
    return lab.sim.state_dir / "datastores" / name / rest


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_disk(backup: Backup) -> Any:
    return sorted(backup.disks, key=lambda d: d.key)[1]


@pytest.mark.parametrize(
    ("transport", "vm"), [("nbd", "target-vmfs"), ("nbdssl", "target-nfs"), ("hotadd", "target-vvol")]
)
def test_the_c_product_backs_up_incrementally_and_restores_byte_equal(lab: Lab, transport: str, vm: str) -> None:
    app = CommandLineApp(load_product(product_file(lab, "product")))
    ctx = context(lab, f"roundtrip-{transport}")
    try:
        name, guest = source_vm(lab, ctx, vm)
        events = event_mark(ctx)
        full = app.backup(ctx, name, transport)
        app.cleanup(ctx, full)
        disk = data_disk(full)
        assert disk.transport == transport
        assert transport_problems(ctx, name, {transport}, events) == []  # as the server saw it
        source = whole_disk(lab, name, disk.key)
        assert digest(disk.image.read_bytes()) == digest(source)

        guest.write_disk(1, 8 * MiB + 512, os.urandom(70 * 1024))
        since = trace_mark(lab.lib)
        incremental = app.backup(ctx, name, transport, previous=full)
        app.cleanup(ctx, incremental)
        changed = data_disk(incremental)
        reads = snapshot_reads(lab.lib, since, incremental.snapshot_moref, {changed.path})  # the product's only
        assert 0 < reads.total <= changed_bytes([(8 * MiB + 512, 70 * 1024)])
        source = whole_disk(lab, name, changed.key)
        assert digest(changed.image.read_bytes()) == digest(source)

        restored = ctx.resources.name(f"restored-{transport}")
        app.restore(ctx, incremental, transport, vm_name=restored)
        assert digest(whole_disk(lab, restored, changed.key)) == digest(source)
        if shutil.which("qemu-img"):
            compare = subprocess.run(
                ["qemu-img", "compare", "-f", "vmdk", "-F", "vmdk", str(host_file(lab, name, changed.key)),
                 str(host_file(lab, restored, changed.key))],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert compare.returncode == 0, compare.stdout + compare.stderr
        assert [str(v) for v in lab.lib.violations()] == []
        # every command's raw trace is kept for the reports and the bundle, with its own verdicts beside it
        kept = sorted(ctx.trace_dir.glob("*.jsonl")) if ctx.trace_dir else []
        assert len(kept) == 2 * 3  # full, incremental and restore of both disks
        for trace in kept:
            verdicts = json.loads(trace.with_suffix(".summary.json").read_text())
            assert verdicts["file"] == trace.name and verdicts["violations"] == []
    finally:
        ctx.resources.unwind()  # TeardownError names anything that could not be undone


@pytest.mark.parametrize(
    ("misuse", "transport", "rule", "call"),
    [
        ("qab-off-thread", "nbdssl", "qab-thread", "VixDiskLib_QueryAllocatedBlocks"),
        ("threads-before-init", "nbdssl", "threads-after-init", "VixDiskLib_AllocateConnectParams"),
        ("skip-cleanup", "hotadd", "cleanup-before-snapshot-removal", "vsphere.RemoveSnapshot"),
    ],
)
def test_a_wrong_c_product_is_caught_from_its_trace(
    lab: Lab, misuse: str, transport: str, rule: str, call: str
) -> None:
    app = CommandLineApp(load_product(product_file(lab, misuse, ["--misuse", misuse])))
    ctx = context(lab, misuse)
    mark = trace_mark(lab.lib)
    try:
        full = app.backup(ctx, "target-vmfs", transport)
        app.cleanup(ctx, full)
    finally:
        ctx.resources.unwind()
        lab.lib.cleanup(lab.target.connect_params())  # what a wrong product left (a hot-added disk)
    found = [v for v in lab.lib.violations() if v.seq > mark]
    # one violation per disk (one product process each), each naming the rule and the call
    assert {(v.rule, v.call) for v in found if v.rule == rule} == {(rule, call)}, [str(v) for v in found]
