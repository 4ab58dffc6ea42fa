"""Restore: plan → batches → finish, the same stages for the CLI, the UI and the Prefect flow.

`plan` walks the snapshot (the paths `select` covers), removes extras for `--delete`
(`delete`) and batches files by where their data lives, `batch` writes one batch, `finish`
applies symlinks and directory metadata last, `verify` reads back what was written, and `run`
chains them in-process.
"""

from kloset.restore.batch import RestoreBatchResult, restore_batch
from kloset.restore.finish import finish_restore
from kloset.restore.plan import RestorePlan, plan_restore
from kloset.restore.run import RestoreReport, run_restore
from kloset.restore.select import Selection

__all__ = [
    "RestoreBatchResult",
    "RestorePlan",
    "RestoreReport",
    "Selection",
    "finish_restore",
    "plan_restore",
    "restore_batch",
    "run_restore",
]
