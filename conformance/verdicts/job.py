"""The step most suites share: the application backs up and cleans up, then the harness checks, from the
server's view and the call trace, that the job left nothing."""

from __future__ import annotations

from conformance.sequences.app import BackupApplication
from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup
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
