"""The backup pipeline, as stages callable on their own (Prefect runs each as a task):

enumerate → chunk → upload → commit → verify. The CLI runs the same stages, overlapped.
"""

from kloset.backup.chunk import ChunkResult, chunk_batch
from kloset.backup.commit import CommitResult, commit_snapshot
from kloset.backup.plan import BackupOptions, EnumerateResult, enumerate_source
from kloset.backup.upload import UploadResult, upload_batch

__all__ = [
    "BackupOptions",
    "ChunkResult",
    "CommitResult",
    "EnumerateResult",
    "UploadResult",
    "chunk_batch",
    "commit_snapshot",
    "enumerate_source",
    "upload_batch",
]
