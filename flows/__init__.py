"""Prefect flows of prefect-kloset: backup, restore, verify and prune.

Each takes its store as a `KlosetRepository` block or a location string, and its source or
target as a `KoofrStorage` block or a location string (path, fsspec URL, ``@NAME[:/sub]``).
"""

from flows.backup import backup_flow
from flows.maintenance import prune_flow, verify_flow
from flows.restore import restore_flow
from flows.sync import sync_flow

__all__ = ["backup_flow", "prune_flow", "restore_flow", "sync_flow", "verify_flow"]
