"""The step most suites share: the application backs up and cleans up, then the harness checks, from the
server's view and the call trace, that the job left nothing."""

from __future__ import annotations

from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup, Restore
from conformance.verdicts.cleanup import assert_clean, baseline


def backed_up(
    ctx: SequenceContext, app: BackupApplication, vm_name: str, transports: str, previous: Backup | None = None
) -> Backup:
    """The application's backup of the VM and its cleanup; CleanupIncompleteError if anything is left."""
    before = baseline(ctx, vm_name)
    backup = app.backup(ctx, vm_name, transports, previous)
    app.cleanup(ctx, backup)
    assert_clean(ctx, vm_name, before)
    return backup


def restored(
    ctx: SequenceContext,
    app: BackupApplication,
    backup: Backup,
    transports: str,
    vm_name: str | None = None,
    thin: bool = True,
) -> Restore:
    """The application's restore (into the backed-up VM, or a new VM `vm_name`); CleanupIncompleteError if the
    restore job left anything (a restore-point snapshot, its delta, a hot-added disk), so the test that restored
    reports it, not whichever test touches the VM next."""
    target = vm_name or backup.vm_name
    before = baseline(ctx, target) if vm_name is None else None
    restore = app.restore(ctx, backup, transports, vm_name=vm_name, thin=thin)
    assert_clean(ctx, target, before)
    return restore
