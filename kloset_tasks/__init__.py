"""Prefect tasks over the Kloset engine: the stages of backup, restore and maintenance.

Backup: `enumerate_task` (shown as ``enumerate``), `backup_batch`, `commit_snapshot`,
`verify`. Restore: `plan_restore`, `restore_batch`, `finish_restore`, `verify_restore`.
Maintenance: `check`, `prune`, `sync`. Each opens the store itself from a `KlosetRepository`
block (the store spec), so it runs the same on a thread, a process or a Dask worker.
"""

from kloset_tasks.backup import backup_batch, commit_snapshot, enumerate_task, verify
from kloset_tasks.maintenance import check, prune
from kloset_tasks.restore import finish_restore, plan_restore, restore_batch, verify_restore
from kloset_tasks.sync import sync

__all__ = [
    "backup_batch",
    "check",
    "commit_snapshot",
    "enumerate_task",
    "finish_restore",
    "plan_restore",
    "prune",
    "restore_batch",
    "sync",
    "verify",
    "verify_restore",
]
