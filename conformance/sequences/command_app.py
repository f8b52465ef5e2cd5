"""A partner's product, run through its command lines (`product.py`), as a backup application of the sequences.

The harness does the control plane a product's server side does (CBT on, snapshot, changed areas, snapshot removal,
a restore target) and runs the product's command once per disk for the VixDiskLib part. The product loads the
harness's C library (`product_library.py`), whose trace of every call is imported into the run's recorder: the
usage rules and the trace verdicts (bytes read, handles left open) judge the product's own calls. Against the
simulator the library's agent is the harness's, and its record of the calls it served must agree with the trace
(`shim/witness.py`), so a product cannot grade itself by editing or writing its trace. Nothing the product prints
is a verdict; its JSON line (if any) only fills the report's figures.

A first-read hook holds the product at its first disk Read (R2 starts host maintenance there, D5 kills the backup
there), as a test wrapping the sequence's library does in process: the harness's simulated library, given
VDDKC_SHIM_FIRST_READ=<folder>, reports the first Read or ReadAsync in <folder>/reached-<pid>.json and waits for
<folder>/go (c/first_read.c); the harness calls the hook with the report while the product waits, then lets it go.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conformance.sequences.context import SequenceContext
from conformance.sequences.extents import changed_areas
from conformance.sequences.images import SparseImage
from conformance.sequences.model import Backup, DiskBackup
from conformance.sequences.product import PASSWORD_VARIABLE, Product
from conformance.sequences.product_library import library_environment, witnessed_agent
from conformance.sequences.reference import ReferenceBackupApp
from conformance.vixdisklib.errors import VixError
from conformance.vixdisklib.recorder import CallRecord
from conformance.vixdisklib.shim.witness import Served, contradictions
from conformance.vixdisklib.trace import check_trace, foreign_records, summary
from conformance.vixdisklib.trace_format import read_trace
from conformance.vsphere.session import DiskRef, disks_of

POLL = 0.02  # seconds: how often a hooked command's folder is checked for the product's first-read report
FIRST_READ_VARIABLE = "VDDKC_SHIM_FIRST_READ"

FirstReadHook = Callable[[dict[str, Any]], None]


class ProductCommandError(RuntimeError):
    """A command of the product failed, timed out, or never loaded the library it was given (one line)."""


class TraceContradictionError(ProductCommandError):
    """The product's trace and the simulated library's own record of the calls it served disagree."""


class ProductVixError(VixError, ProductCommandError):
    """A product command that failed on a VixDiskLib call: the call, code and library detail from its trace."""


class CommandLineApp(ReferenceBackupApp):
    """The product of a product file. Snapshot removal, restore targets and cleanup order are the reference
    application's (inherited); every VixDiskLib call is the product's.

    `first_read_hook`, when set, is called at the first disk Read of every command the product runs (each is its
    own process), with that process's report {"pid", "tid", "transport", "path"}, in the harness's process on the
    thread running the command, while the product waits; the product reads once it returns. If it raises, the
    product's process group is killed and the error propagates. Without one, the sequence's library may offer
    one: a callable `on_product_first_read` attribute of `ctx.lib` (a test wrapping the library, as its in-process
    interception of the first Read would). Only the harness's simulated library honours the hook."""

    def __init__(self, product: Product) -> None:
        self.product = product
        self.name = product.name
        self.first_read_hook: FirstReadHook | None = None
        self._runs = 0

    # --- running one command ---

    def _values(self, ctx: SequenceContext, workdir: Path, **job: str) -> dict[str, str]:
        endpoint = ctx.target.endpoint
        return {
            "here": str(self.product.here),
            "workdir": str(workdir),
            "server": endpoint.host,
            "port": str(endpoint.port),
            "thumbprint": endpoint.thumbprint,
            "user": ctx.target.user,
            "password_env": PASSWORD_VARIABLE,
            "config": str(ctx.lib.config_file or ""),
            "snapshot": "",
            "previous_image": "",
            "changed": "",
            **job,
        }

    def _run(self, ctx: SequenceContext, step: str, workdir: Path, **job: str) -> dict[str, Any]:
        """Run `step` for one disk; import its trace; the product's JSON line (or {})."""
        self._runs += 1
        trace = workdir / f"trace-{self._runs:03d}-{step}.jsonl"
        libdir, library_env = library_environment(ctx.lib.backend, trace)
        values = self._values(ctx, workdir, libdir=str(libdir), **job)
        argv = self.product.command(step, values)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VDDKC_")}
        env.update(library_env)
        env.update(self.product.environment(values))
        env[PASSWORD_VARIABLE] = ctx.target.password
        hook = self._first_read_hook(ctx)
        rendezvous = workdir / f"{trace.stem}.first-read"
        if hook is not None:
            shutil.rmtree(rendezvous, ignore_errors=True)  # a report of an earlier job of this folder is not this one's
            rendezvous.mkdir(parents=True)
            env[FIRST_READ_VARIABLE] = str(rendezvous)
        out, err = workdir / f"{trace.stem}.out", workdir / f"{trace.stem}.err"
        started = time.monotonic()
        with witnessed_agent(ctx.lib.backend, workdir / f"{trace.stem}.agent.log") as agent:
            env.update(agent.environment if agent is not None else {})
            with out.open("wb") as stdout, err.open("wb") as stderr:
                try:
                    process = subprocess.Popen(argv, env=env, cwd=workdir, stdout=stdout, stderr=stderr,
                                               stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
                except OSError as exc:
                    why = exc.strerror or exc
                    raise ProductCommandError(f"{self.name} {step}: cannot start {argv[0]}: {why}") from None
                try:
                    code = self._wait(process, started, hook, rendezvous)
                except BaseException as stopped:  # a timeout, a failed hook, or the run interrupted: the group goes
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    if isinstance(stopped, subprocess.TimeoutExpired):
                        raise ProductCommandError(
                            f"{self.name} {step} of {job.get('disk')} did not finish within "
                            f"{self.product.timeout:.0f} s"
                        ) from None
                    raise
                finally:
                    if hook is not None:
                        shutil.rmtree(rendezvous, ignore_errors=True)
            # what the library served, against what the trace says (a product that failed may have died mid-call)
            served = agent.served() if agent is not None and code == 0 else None
        calls = self._import_trace(ctx, step, trace, libdir, served)
        if code != 0:
            said = [line for line in err.read_text(errors="replace").splitlines() if line.strip()]
            last = (said[-1] if said else "no message").replace(ctx.target.password, "********")
            message = f"{self.name} {step} of {job.get('disk')} exited with {code}: {last[:300]}"
            # the library's own error, as the trace recorded it (not as the product printed it)
            failed = [r for r in calls if r.error is not None]
            if failed:
                detail = str(failed[-1].args.get("error_text") or "")
                raise ProductVixError(failed[-1].error or 1, failed[-1].call, f"{detail} ({message})".strip())
            raise ProductCommandError(message)
        return self._figures(out)

    def _first_read_hook(self, ctx: SequenceContext) -> FirstReadHook | None:
        """The app's own hook, else the one the sequence's library offers (`on_product_first_read`), else None."""
        if self.first_read_hook is not None:
            return self.first_read_hook
        offered = getattr(ctx.lib, "on_product_first_read", None)
        return offered if callable(offered) else None

    def _wait(
        self, process: subprocess.Popen[bytes], started: float, hook: FirstReadHook | None, rendezvous: Path
    ) -> int:
        """The product's exit code; subprocess.TimeoutExpired after the product's timeout. With a hook, the folder
        is polled for the product's first-read report until it comes (or the product ends): the hook is called
        with it, then the product is let go (`go`)."""
        timeout = self.product.timeout
        if hook is None:
            return process.wait(timeout)
        while (code := process.poll()) is None:
            reports = sorted(rendezvous.glob("reached-*.json"))
            if reports:
                hook(json.loads(reports[0].read_text()))
                (rendezvous / "go").touch()
                return process.wait(max(0.0, timeout - (time.monotonic() - started)))
            if time.monotonic() - started >= timeout:
                raise subprocess.TimeoutExpired(process.args, timeout)
            time.sleep(POLL)
        return code

    def _import_trace(
        self, ctx: SequenceContext, step: str, trace: Path, libdir: Path, served: list[Served] | None
    ) -> list[CallRecord]:
        """The product's calls of this command, added to the run's recorder (and kept for the reports). With
        the library's own record of what it served, a trace that contradicts it fails the command: its
        verdicts would be the product's word."""
        if not trace.exists():
            raise ProductCommandError(
                f"{self.name} {step} made no VixDiskLib call through the harness's library: it must load "
                f'libvixDiskLib.so.N from {libdir} (e.g. LD_LIBRARY_PATH = "{{libdir}}" in the product file\'s [env])'
            )
        read = read_trace(trace)
        contradicted = contradictions(served, read) if served is not None else []
        if ctx.trace_dir is not None:  # the raw trace and its own verdicts, for the reports and the bundle
            ctx.trace_dir.mkdir(parents=True, exist_ok=True)
            kept = ctx.trace_dir / f"{ctx.resources.name(step)}.jsonl"
            shutil.copyfile(trace, kept)
            verdicts = {**summary(read, check_trace(read)), "file": kept.name}  # the kept copy, beside it
            if served is not None:
                verdicts["witness"] = {"calls_served": len(served), "contradictions": contradicted}
            kept.with_suffix(".summary.json").write_text(json.dumps(verdicts, indent=1))
        if contradicted:
            raise TraceContradictionError(
                f"{self.name} {step}: its trace contradicts what the library served "
                f"({len(contradicted)} thread(s)); first: {contradicted[0]}"
            )
        records, before = foreign_records(read)
        ctx.lib.recorder.import_records(records, before)
        return records

    @staticmethod
    def _figures(out: Path) -> dict[str, Any]:
        lines = [line for line in out.read_text(errors="replace").splitlines() if line.strip()]
        try:
            figures = json.loads(lines[-1]) if lines else {}
        except ValueError:
            return {}
        return figures if isinstance(figures, dict) else {}

    @staticmethod
    def _transport_of(ctx: SequenceContext, since: int, path: str) -> str:
        """The transport the product's library chose for `path`, from the trace (its last successful Open)."""
        opens = [
            r for r in ctx.lib.recorder.records()
            if r.seq > since and r.call == "VixDiskLib_Open" and r.error is None and r.args.get("path") == path
        ]  # fmt: skip
        return str(opens[-1].args.get("transport", "")) if opens else ""

    # --- backup ---

    def backup(self, ctx: SequenceContext, vm_name: str, transports: str, previous: Backup | None = None) -> Backup:
        if previous is not None and "incremental" not in self.product.commands:
            raise ProductCommandError(f"{self.name} has no incremental command in {self.product.path}")
        return super().backup(ctx, vm_name, transports, previous)

    def _prepare_access(self, ctx: SequenceContext, vm: Any) -> None:
        """PrepareForAccess is the product's call (its library is the one that would make it), not the harness's."""

    def _read_disks(
        self, ctx: SequenceContext, backup: Backup, vm: Any, snapshot: Any, transports: str, previous: Backup | None
    ) -> list[DiskBackup]:
        folder = ctx.repository / backup.vm_name / backup.snapshot_name
        folder.mkdir(parents=True, exist_ok=True)
        return [
            self._back_up_disk(ctx, backup, vm, snapshot, disk, transports, folder, previous)
            for disk in disks_of(snapshot)
        ]

    def _back_up_disk(
        self,
        ctx: SequenceContext,
        backup: Backup,
        vm: Any,
        snapshot: Any,
        disk: DiskRef,
        transports: str,
        folder: Path,
        previous: Backup | None,
    ) -> DiskBackup:
        image = folder / f"disk-{disk.key}.img"
        job = {
            "vm_name": backup.vm_name, "vm_moref": backup.vm_moref, "vmx_spec": f"moref={backup.vm_moref}",
            "snapshot": backup.snapshot_moref, "transports": transports, "disk": disk.file_name,
            "disk_key": str(disk.key), "capacity": str(disk.capacity), "image": str(image),
        }  # fmt: skip
        step = "full"
        if previous is not None:
            step = "incremental"
            before = previous.disk(disk.key)
            areas = changed_areas(vm, snapshot, disk, before.change_id or "*")
            changed = folder / f"disk-{disk.key}.changed"
            changed.write_text("".join(f"{offset} {length}\n" for offset, length in areas))
            SparseImage(before.image, disk.capacity).copy_to(image)  # the incremental updates it in place
            job.update(previous_image=str(before.image), changed=str(changed))
        else:
            SparseImage(image, disk.capacity)  # the empty image of the disk's capacity the product writes into
        since = max((r.seq for r in ctx.lib.recorder.records()), default=0)
        figures = self._run(ctx, step, folder, **job)
        return DiskBackup(
            disk.key,
            disk.file_name,
            disk.capacity,
            disk.change_id,
            image,
            self._transport_of(ctx, since, disk.file_name),
            int(figures.get("bytes_read", 0) or 0),
            int(figures.get("blocks", 0) or 0),
        )

    def cleanup(self, ctx: SequenceContext, backup: Backup) -> None:
        """The product's own cleanup command (if any), then the snapshot removal and the rest of the job (LIFO)."""
        if "cleanup" in self.product.commands:
            folder = ctx.repository / backup.vm_name / backup.snapshot_name
            self._run(
                ctx, "cleanup", folder, vm_name=backup.vm_name, vm_moref=backup.vm_moref,
                vmx_spec=f"moref={backup.vm_moref}", snapshot=backup.snapshot_moref, transports="",
                disk="", disk_key="", capacity="", image="",
            )  # fmt: skip
        ctx.resources.unwind(getattr(backup, "job_mark", 0))

    # --- restore ---

    def _write_disks(
        self, ctx: SequenceContext, backup: Backup, transports: str, vm: Any, targets: list[DiskRef], original: bool
    ) -> tuple[int, str]:
        folder = ctx.repository / vm.name / ctx.resources.name("restore")
        folder.mkdir(parents=True, exist_ok=True)
        since = max((r.seq for r in ctx.lib.recorder.records()), default=0)
        written, transport = 0, ""
        for source, target in zip(backup.disks, targets, strict=False):
            figures = self._run(
                ctx, "restore", folder, vm_name=vm.name, vm_moref=vm._moId, vmx_spec=f"moref={vm._moId}",
                transports=transports, disk=target.file_name, disk_key=str(target.key),
                capacity=str(source.capacity), image=str(source.image),
            )  # fmt: skip
            written += int(figures.get("bytes_written", 0) or 0)
            transport = self._transport_of(ctx, since, target.file_name) or transport
        return written, transport
