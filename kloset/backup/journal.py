"""Batch journals: what one batch of a run stored, kept in the store until the run commits.

A journal object ``runs/<run id>/journal-<batch>`` holds each file the batch read (path, size,
mtime, MD5 if the source has one, chunk ids), its errors and its stats, sealed like every
other metadata object. Commit assembles the snapshot from the journals, so a batch can run on
any machine that sees the source and the store. A run that dies leaves its journals; the next
backup of the same source reuses their entries like a parent snapshot's, so what an earlier
attempt stored is neither read nor downloaded again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from kloset import codec
from kloset.errors import CorruptObject, KlosetError
from kloset.repository import Repository
from kloset.storescan import TMP_MARK, StoredObject, list_objects

RUNS_DIR = "runs"
JOURNAL_AD = b"kloset:journal:"
FORMAT_VERSION = 1


def journal_name(run_id: str, batch_no: int) -> str:
    return f"{RUNS_DIR}/{run_id}/journal-{batch_no:05d}"


def _ad(name: str) -> bytes:
    # Bound to its name: a journal cannot be passed off as another run's or batch's.
    return JOURNAL_AD + name.encode()


def write_journal(repo: Repository, name: str, doc: dict[str, Any]) -> None:
    raw = msgpack.packb(doc, unicode_errors="surrogateescape")
    repo.storage.write(name, codec.encode(repo.cipher, raw, _ad(name), 1))


def read_journal(repo: Repository, name: str) -> dict[str, Any]:
    raw = codec.decode(repo.cipher, repo.storage.read(name), _ad(name), name)
    try:
        doc = msgpack.unpackb(raw, strict_map_key=False, unicode_errors="surrogateescape")
    except Exception as exc:  # noqa: BLE001
        raise CorruptObject(f"{name}: journal is damaged ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("v") != FORMAT_VERSION:
        raise CorruptObject(f"{name}: not a journal this version reads")
    return doc


def batch_of(name: str) -> int | None:
    base = name.rsplit("/", 1)[-1]
    if TMP_MARK in base or not base.startswith("journal-"):
        return None
    digits = base[len("journal-") :]
    return int(digits) if digits.isdigit() else None


def list_runs(repo: Repository) -> dict[str, list[StoredObject]]:
    """Every run with objects under ``runs/``: run id → its objects (journals, temporaries)."""
    out: dict[str, list[StoredObject]] = {}
    for obj in list_objects(repo.storage, RUNS_DIR):
        parts = obj.name.split("/")
        if len(parts) == 3:
            out.setdefault(parts[1], []).append(obj)
    return out


def read_run(
    repo: Repository, run_id: str, objs: list[StoredObject] | None = None
) -> dict[int, Any]:
    """batch number → journal, of one run (unreadable journals raise)."""
    if objs is None:
        objs = list_objects(repo.storage, f"{RUNS_DIR}/{run_id}")
    found: dict[int, Any] = {}
    for obj in objs:
        batch = batch_of(obj.name)
        if batch is not None:
            found[batch] = read_journal(repo, obj.name)
    return found


def delete_run(repo: Repository, run_id: str, objs: list[StoredObject] | None = None) -> int:
    """Remove a run's objects from the store; returns how many."""
    if objs is None:
        objs = list_objects(repo.storage, f"{RUNS_DIR}/{run_id}")
    for obj in objs:
        repo.storage.delete(obj.name)
    if objs and repo.storage.local:
        import contextlib
        import os

        with contextlib.suppress(OSError):
            os.rmdir(repo.storage.path(f"{RUNS_DIR}/{run_id}"))
    return len(objs)


@dataclass
class Reusable:
    """Files earlier (dead) runs of the same source stored: path → (size, mtime, md5, chunks)."""

    files: dict[str, tuple[int, int, str | None, list[bytes]]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def lookup(self, relpath: str, size: int, mtime_ns: int, md5: str | None) -> list[bytes] | None:
        hit = self.files.get(relpath)
        if hit is None:
            return None
        j_size, j_mtime, j_md5, chunks = hit
        if j_size != size or j_mtime != mtime_ns or (md5 and j_md5 and md5 != j_md5):
            return None
        return chunks if chunks or size == 0 else None


def reusable_from(repo: Repository, source: str, runs: dict[str, list[StoredObject]]) -> Reusable:
    """The entries of these runs' journals for `source` whose chunks are all indexed."""
    out = Reusable()
    index = repo.index
    for run_id in sorted(runs):  # oldest first: a later run's entry for a path wins
        try:
            journals = read_run(repo, run_id, runs[run_id])
        except (KlosetError, OSError) as exc:
            out.unreadable.append((run_id, str(exc)))
            continue
        used = False
        for _batch, doc in sorted(journals.items()):
            if doc.get("source") != source:
                continue
            used = True
            for _idx, relpath, size, mtime_ns, md5, ids in doc["files"]:
                chunks = [bytes(c) for c in ids]
                if all(c in index for c in chunks):
                    out.files[str(relpath)] = (int(size), int(mtime_ns), md5, chunks)
        if used:
            out.runs.append(run_id)
    return out
