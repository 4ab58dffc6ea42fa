"""One batch of a backup, on any machine that sees the source and the store.

`back_up_batch` reads and chunks the batch's files (given as data: no run directory needed),
puts each sealed pack straight into the store, then the packs' index file, then the batch's
journal (`kloset.backup.journal`), and returns only small metadata. It is the unit the CLI's
worker processes, Prefect tasks and Dask workers run, and it is safe to run again after any
failure: packs the store has are not sent twice, and the journal is rewritten whole.

Claims (which batch stores a new chunk) use the run's SQLite file when this machine sees the
run directory, else a claims file of this machine's own: across machines, a chunk new to the
run may be stored once per machine running batches at the same time (prune's repack removes
the extra copies); it is never lost, since commit refuses a snapshot naming an unstored chunk.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kloset.backup.chunk import BatchChunker, file_chunks, prefetched
from kloset.backup.claims import Claims, RunClaims
from kloset.backup.journal import FORMAT_VERSION, journal_name, write_journal
from kloset.backup.runs import RunRef, local_run_dir
from kloset.backup.sink import NullSink, PackSink, StoreSink
from kloset.backup.spool import claims_path
from kloset.config import StoreConfig
from kloset.crypto import KeySet
from kloset.errors import KlosetError
from kloset.repository import Repository
from kloset.source import Source
from kloset.storage import Storage

# A batch item: [plan index, relpath, size, mtime_ns, md5 or None].
BatchItem = list[Any]
OnFile = Callable[[int], None]


class BatchStopped(KlosetError):
    """The run was interrupted: this batch stopped between two files."""


@dataclass
class BatchResult:
    """Small summary of one batch (what a Prefect task returns)."""

    batch: int
    files: int
    bytes_read: int
    chunks: int
    new_chunks: int
    new_bytes: int
    stored_bytes: int
    packs: int
    index: str | None
    journal: str | None
    errors: list[tuple[str, str]] = field(default_factory=list)


def back_up_batch(
    repo: Repository,
    source: Source,
    run: RunRef,
    batch_no: int,
    items: list[BatchItem],
    *,
    claims: Claims | None = None,
    on_file: OnFile | None = None,
    sink: PackSink | None = None,
    stop: threading.Event | None = None,
) -> BatchResult:
    """Back up one batch: packs into the store, then their index, then the batch's journal.

    Unreadable files are recorded as errors, not raised: one bad file must not fail the batch.
    `stop` (set by an interrupt) ends the batch between two files with BatchStopped.
    """
    run_dir = local_run_dir(repo, run)
    spool_dir = os.path.join(run_dir, f"batch-{batch_no:05d}-{os.urandom(4).hex()}")
    if sink is None:
        sink = NullSink(spool_dir) if run.dry_run else StoreSink(repo, spool_dir)
    own_claims = None
    if claims is None:
        claims = own_claims = RunClaims(claims_path(run_dir), batch_no)
    chunker = BatchChunker(repo, sink, claims)
    try:
        files, errors, bytes_read = _read_all(chunker, source, items, on_file, stop)
        sealed = chunker.finish()
        index = sink.index(sealed)
        stored = sum(p.size for p in sealed)
        journal = None
        if not run.dry_run:
            journal = journal_name(run.id, batch_no)
            stats = {
                "bytes_read": bytes_read,
                "chunks": chunker.chunks,
                "new_chunks": chunker.new_chunks,
                "new_bytes": chunker.new_bytes,
                "stored_bytes": stored,
            }
            doc = {
                "v": FORMAT_VERSION,
                "run": run.id,
                "batch": batch_no,
                "source": run.source,
                "files": files,
                "errors": [list(e) for e in errors],
                "index": index,
                "packs": [p.pack_id for p in sealed],
                "stats": stats,
            }
            write_journal(repo, journal, doc)
    finally:
        chunker.abort()
        sink.close()
        if own_claims is not None:
            own_claims.close()
    return BatchResult(
        batch=batch_no,
        files=len(files),
        bytes_read=bytes_read,
        chunks=chunker.chunks,
        new_chunks=chunker.new_chunks,
        new_bytes=chunker.new_bytes,
        stored_bytes=stored,
        packs=len(sealed),
        index=index,
        journal=journal,
        errors=errors,
    )


def _read_all(
    chunker: BatchChunker,
    source: Source,
    items: list[BatchItem],
    on_file: OnFile | None,
    stop: threading.Event | None,
) -> tuple[list[list[Any]], list[tuple[str, str]], int]:
    files: list[list[Any]] = []
    errors: list[tuple[str, str]] = []
    bytes_read = 0
    for item, fetched in prefetched(source, items):
        if stop is not None and stop.is_set():
            raise BatchStopped("interrupted")
        idx, relpath, size, mtime_ns, md5 = item
        try:
            ids, got = file_chunks(chunker, source, relpath, fetched, size, md5)
        except (OSError, ValueError) as exc:
            errors.append(("/" + relpath, f"cannot read: {getattr(exc, 'strerror', None) or exc}"))
            if on_file is not None:
                on_file(0)
            continue
        except Exception as exc:  # noqa: BLE001 - remote sources raise their own errors
            errors.append(("/" + relpath, f"cannot read: {exc}"))
            if on_file is not None:
                on_file(0)
            continue
        # The size actually read: the journal must describe what the chunks hold.
        files.append([idx, relpath, got, mtime_ns, md5, ids])
        bytes_read += got
        if on_file is not None:
            on_file(got)
    return files, errors, bytes_read


# -- in a worker process (kloset.workers) ------------------------------------------------------

ShippedRepo = tuple[Storage, bytes, bytes]


def ship(repo: Repository) -> ShippedRepo:
    """What a worker process needs to open `repo` without a key derivation."""
    return repo.storage, repo.config.to_bytes(), repo.keys.to_bytes()


# In each worker process: the stores it opened, newest last.
_repos: OrderedDict[tuple[str, str], Repository] = OrderedDict()
REPORT_EVERY = 0.1  # seconds between progress messages from a worker


def _worker_repo(shipped: ShippedRepo) -> Repository:
    storage, config, keys = shipped
    cfg = StoreConfig.from_bytes(config)
    key = (cfg.store_id, storage.location)
    repo = _repos.get(key)
    if repo is None:
        repo = Repository(storage, cfg, KeySet.from_bytes(keys))
        _repos[key] = repo
        while len(_repos) > 2:
            _repos.popitem(last=False)
    else:
        _repos.move_to_end(key)
        repo.refresh_index()  # batches indexed since this worker's last one
    return repo


def batch_job(
    report: Callable[[Any], None],
    shipped: ShippedRepo,
    source: Source,
    run: RunRef,
    batch_no: int,
    items: list[BatchItem],
) -> BatchResult:
    """`back_up_batch` in a worker process; reports ``(bytes, files)`` read as it goes."""
    from kloset.gcpause import fewer_collections

    pending = [0, 0]
    last = [time.monotonic()]

    def on_file(nbytes: int) -> None:
        pending[0] += nbytes
        pending[1] += 1
        now = time.monotonic()
        if now - last[0] >= REPORT_EVERY:
            report((pending[0], pending[1]))
            pending[0] = pending[1] = 0
            last[0] = now

    with fewer_collections():
        result = back_up_batch(_worker_repo(shipped), source, run, batch_no, items, on_file=on_file)
    if pending[1]:
        report((pending[0], pending[1]))
    return result
