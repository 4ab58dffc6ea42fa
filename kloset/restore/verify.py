"""Verify a restore: read back what each restore batch wrote and compare hashes.

`restore_batch` records the MD5 of every file as it streamed it out (``written-N`` in the run
directory). Here the destination is asked what it now holds (local files are re-read, Koofr
answers with the MD5 it computed on upload) and both are compared, and with the source's own
MD5 when the snapshot recorded one (Koofr listings carry it), so a restore is checked end to
end: source at backup time → store → destination.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kloset import rundir
from kloset.destination import Destination
from kloset.errors import KlosetError
from kloset.tree import Entry


@dataclass
class RestoreVerifyResult:
    """Small summary: how much was read back and which paths did not match."""

    files_checked: int = 0
    bytes_checked: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def written_path(run_dir: str, batch_no: int) -> str:
    """Where `restore_batch` records the MD5s of the files it wrote for `batch_no`."""
    return os.path.join(run_dir, f"written-{rundir.batch_name(batch_no)}")


def _check(dest: Destination, rel: str, entry: Entry, written_md5: str) -> tuple[int, str | None]:
    try:
        found = dest.digest(rel)
    except (OSError, KlosetError) as exc:
        return 0, f"cannot read back: {exc}"
    except Exception as exc:  # noqa: BLE001 - remote destinations raise their own errors
        return 0, f"cannot read back: {exc}"
    if found is None:
        return 0, "missing after restore"
    size, md5 = found
    if size != entry.size:
        return size, f"size is {size}, snapshot says {entry.size}"
    if written_md5 and md5 != written_md5:
        return size, f"content differs from what was written (md5 {md5} != {written_md5})"
    source_md5 = entry.extra.get("md5") if entry.extra else None
    if source_md5 and str(source_md5).lower() != md5:
        return size, f"content differs from the source's md5 at backup time ({source_md5})"
    return size, None


def verify_restored(
    run_dir: str,
    dest: Destination,
    batches: Iterable[int] | None = None,
    *,
    threads: int = 4,
    plan: dict[str, Any] | None = None,
) -> RestoreVerifyResult:
    """Read back the files written by `batches` (default: all) of the restore in `run_dir`."""
    plan = plan or rundir.read_msgpack(rundir.plan_path(run_dir))
    items = plan["items"]
    todo: list[tuple[str, Entry, str]] = []
    for batch_no in range(len(plan["batches"])) if batches is None else batches:
        path = written_path(run_dir, batch_no)
        if not os.path.exists(path):
            continue  # the batch wrote nothing (or never ran): nothing of it to read back
        written: dict[str, str] = rundir.read_msgpack(path)
        for idx in plan["batches"][batch_no]:
            rel = items[idx][0]
            if rel in written:
                todo.append((rel, Entry.from_obj(items[idx][1]), str(written[rel] or "")))
    result = RestoreVerifyResult()

    def one(item: tuple[str, Entry, str]) -> tuple[str, int, str | None]:
        rel, entry, md5 = item
        size, err = _check(dest, rel, entry, md5)
        return rel, size, err

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for rel, size, err in pool.map(one, todo):
            result.files_checked += 1
            result.bytes_checked += size
            if err is not None:
                result.errors.append(("/" + rel, err))
    return result
