"""A helper process for the lock tests: one reference backup of a shared VM, held for a while, then cleanup."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from conformance.lab.resources import ResourceTracker
from conformance.lab.targets import file_target
from conformance.sequences.context import SequenceContext
from conformance.sequences.reference import ReferenceBackupApp
from conformance.vixdisklib.config import render_config
from conformance.vixdisklib.factory import make_library
from conformance.vsphere.locks import VmLocks
from conformance.vsphere.safety import SafetyGuard
from conformance.vsphere.session import VsphereSession


def main(target_file: str, lock_dir: str, vm_name: str, hold: float, run_id: str) -> None:
    target = file_target(target_file)
    session = VsphereSession(
        target.endpoint,
        target.user,
        target.password,
        target.datacenter,
        guard=SafetyGuard(target.name, target.allow_vms),
        locks=VmLocks(target.lock_key, Path(lock_dir), holder=run_id),
        run_id=run_id,
    )
    work = Path(tempfile.mkdtemp(prefix="vddkc-lock-child-"))
    (work / "vddk.conf").write_text(render_config({"tmpDirectory": str(work / "tmp")}))
    lib = make_library("7.0.3", proxy_vm=target.default_proxy)
    lib.init_ex(work / "vddk.conf")
    tracker = ResourceTracker(run_id)
    ctx = SequenceContext(target, session, lib, tracker, work / "repo", work / "tmp")
    app = ReferenceBackupApp()
    try:
        backup = app.backup(ctx, vm_name, "nbdssl")
        time.sleep(hold)
        app.cleanup(ctx, backup)
    finally:
        tracker.teardown()
        lib.exit()
        session.close()
        shutil.rmtree(work, ignore_errors=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
