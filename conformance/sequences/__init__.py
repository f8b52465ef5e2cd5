"""Backup, restore and cleanup sequences behind a pluggable backup-application interface."""
