"""The backup pipeline, as stages callable on their own (Prefect runs each as a task):

enumerate → back_up_batch (one per batch, on any machine) → commit → verify. The CLI runs the
same stages, overlapped (`kloset.backup.pipeline`).
"""

from kloset.backup.batch import BatchResult, back_up_batch
from kloset.backup.commit import CommitResult, commit_snapshot
from kloset.backup.plan import BackupOptions, EnumerateResult, enumerate_source, load_batches
from kloset.backup.runs import RunRef

__all__ = [
    "BackupOptions",
    "BatchResult",
    "CommitResult",
    "EnumerateResult",
    "RunRef",
    "back_up_batch",
    "commit_snapshot",
    "enumerate_source",
    "load_batches",
]
