"""Restore, stage 2: write one batch's files, fetching their blobs with coalesced range reads.

Batches write files from several threads because creating a file costs kernel time that only
overlap hides; small files' blobs are fetched for the whole batch at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kloset import rundir
from kloset.destination import Destination
from kloset.errors import KlosetError
from kloset.fetch import fetch_blobs
from kloset.repository import Repository
from kloset.tree import Entry

BIG_FILE = 16 * 1024 * 1024
WINDOW_CHUNKS = 8


@dataclass
class RestoreBatchResult:
    batch: int
    files_written: int = 0
    files_skipped: int = 0
    bytes_written: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def _file_blocks(repo: Repository, entry: Entry, cache: dict[bytes, bytes]) -> Iterator[bytes]:
    if all(c in cache for c in entry.chunks):
        for c in entry.chunks:
            yield cache[c]
        return
    for start in range(0, len(entry.chunks), WINDOW_CHUNKS):
        window = entry.chunks[start : start + WINDOW_CHUNKS]
        blobs = fetch_blobs(repo, window)
        for c in window:
            yield blobs[c]


def restore_batch(
    repo: Repository,
    run_dir: str,
    batch_no: int,
    dest: Destination,
    *,
    overwrite: bool = False,
    threads: int = 8,
    plan: dict[str, Any] | None = None,
    on_file: Callable[[int, bool], None] | None = None,
) -> RestoreBatchResult:
    """Write batch `batch_no`'s files; idempotent (identical files already there are skipped).
    `on_file(size, skipped)` follows every file: written, failed, or skipped as identical."""
    plan = plan or rundir.read_msgpack(rundir.plan_path(run_dir))
    items = plan["items"]
    entries = [(items[i][0], Entry.from_obj(items[i][1])) for i in plan["batches"][batch_no]]
    result = RestoreBatchResult(batch_no)
    todo: list[tuple[str, Entry]] = []
    for rel, entry in entries:
        current = dest.is_current(rel, entry)
        if current is True:
            result.files_skipped += 1
            if on_file is not None:
                on_file(entry.size, True)
        elif current is False and not overwrite:
            result.errors.append(("/" + rel, "exists and differs (use --overwrite to replace)"))
        else:
            todo.append((rel, entry))
    small = [c for rel, e in todo if e.size <= BIG_FILE for c in e.chunks]
    # Blobs that fail here are fetched again per file, so only the files using them fail.
    cache = fetch_blobs(repo, small, on_error=lambda _bid, _exc: None) if small else {}
    md5s: dict[str, str] = {}

    def write(item: tuple[str, Entry]) -> tuple[str, int, str | None, str | None]:
        rel, entry = item
        try:
            digest = dest.write_file(rel, entry, _file_blocks(repo, entry, cache))
            return rel, entry.size, digest, None
        except (OSError, KlosetError) as exc:
            return rel, 0, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - remote destinations raise their own errors
            return rel, 0, None, str(exc)

    def write_group(
        group: list[tuple[str, Entry]],
    ) -> list[tuple[str, int, str | None, str | None]]:
        return [write(item) for item in group]

    # Files go to the threads in groups: one future per file costs more GIL time than the
    # small files themselves take to write.
    step = max(1, min(64, len(todo) // (4 * max(1, threads)) or 1))
    groups = [todo[i : i + step] for i in range(0, len(todo), step)]
    with ThreadPoolExecutor(max(1, threads)) as pool:
        results = (r for rs in pool.map(write_group, groups) for r in rs)
        for rel, size, digest, err in results:
            if err is not None:
                result.errors.append(("/" + rel, err))
            else:
                result.files_written += 1
                result.bytes_written += size
                md5s[rel] = digest or ""
            if on_file is not None:
                on_file(size, False)
    rundir.write_msgpack(os.path.join(run_dir, f"written-{rundir.batch_name(batch_no)}"), md5s)
    return result
