"""The backup-application interface the sequences drive, and loading a partner's implementation.

The built-in reference application is the default; `--backup-app module:Class` loads another one, which
must provide these methods (checked at load time, one line per problem); `--backup-app product.toml` runs a
partner's product through its command lines (`command_app.py`). An application reports what it did;
it never grades itself: the suites judge it with `conformance.verdicts`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from conformance.sequences.context import SequenceContext
from conformance.sequences.model import Backup, Restore

REQUIRED_METHODS = ("backup", "cleanup", "restore")


@runtime_checkable
class BackupApplication(Protocol):
    name: str

    def backup(self, ctx: SequenceContext, vm_name: str, transports: str, previous: Backup | None = None) -> Backup:
        """Full backup (previous None) or incremental from `previous`; leaves the snapshot for cleanup()."""
        ...

    def cleanup(self, ctx: SequenceContext, backup: Backup) -> None:
        """Close, disconnect, VixDiskLib_Cleanup, remove the snapshot, EndAccess (the harness then checks, from
        the server's view and the call trace, that nothing is left)."""
        ...

    def restore(
        self, ctx: SequenceContext, backup: Backup, transports: str, vm_name: str | None = None, thin: bool = True
    ) -> Restore:
        """Restore into the original VM (vm_name None) or a new VM named vm_name (the harness reads it back)."""
        ...


class BackupAppError(ValueError):
    """--backup-app names something that is not a usable backup application."""


def load_backup_app(spec: str | None) -> BackupApplication:
    if not spec:
        from conformance.sequences.reference import ReferenceBackupApp

        return ReferenceBackupApp()
    if spec.endswith(".toml"):  # a partner's product, described by its command lines
        from conformance.sequences.command_app import CommandLineApp
        from conformance.sequences.product import ProductFileError, load_product

        try:
            return CommandLineApp(load_product(Path(spec)))
        except ProductFileError as exc:
            raise BackupAppError(f"--backup-app {spec}: {exc}") from None
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise BackupAppError(f"--backup-app {spec!r}: use module:Class, e.g. mybackup.vddk:Adapter")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackupAppError(f"--backup-app {spec!r}: cannot import {module_name} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BackupAppError(f"--backup-app {spec!r}: {module_name} has no {class_name}")
    try:
        app = cls()
    except Exception as exc:
        raise BackupAppError(f"--backup-app {spec!r}: {class_name}() failed: {exc}") from exc
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(app, m, None))]
    if missing:
        raise BackupAppError(f"--backup-app {spec!r}: {class_name} lacks {', '.join(missing)}")
    if not hasattr(app, "name"):
        app.name = class_name
    return app
