"""What a dead run leaves is adopted by the next backup, shown by `info`, removed by prune.

A "dead run" here is a real run of the engine whose lock is gone: it planned, stored some
batches (packs, index, journal) and left a sealed pack in its spool, then stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lifecycle_helpers import MB, assert_check_ok, kloset, open_store, restore_to, tree_digest

from kloset.backup.batch import back_up_batch
from kloset.backup.journal import list_runs
from kloset.backup.pipeline import run_backup
from kloset.backup.plan import BackupOptions, enumerate_source, load_batches
from kloset.locations import open_source
from kloset.pack import BLOB_DATA, PackWriter

GONE_LOCK = "f" * 32  # a lock id no lock in the store has: the run's holder is gone


def _dead_run(store: Path, source: Path, batches: int = 1) -> tuple[list[str], str]:
    """Run the first `batches` batches of a backup, leave one sealed pack in its spool, stop.
    Returns the paths it stored and the spool pack's path."""
    repo = open_store(store)
    src = open_source(str(source))
    opts = BackupOptions(batch_bytes=8 * MB)
    plan = enumerate_source(repo, src, str(store / "tmp"), opts, lock_id=GONE_LOCK)
    items = load_batches(plan.run_dir)
    assert plan.batches > batches
    done = []
    for b in range(batches):
        back_up_batch(repo, src, plan.run, b, items[b])
        done += [row[1] for row in items[b]]
    spool = os.path.join(plan.run_dir, "batch-99999-dead")
    os.makedirs(spool)
    writer = PackWriter(repo.cipher, spool, 3)
    data = b"sealed just before the kill" * 1000
    writer.add(BLOB_DATA, repo.blob_id(data), data)
    sealed = writer.seal()
    return done, sealed.path


class _CountingReads:
    """Counts, per path, how often the engine asks a local source for a file to read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, source_type: type) -> None:
        self.paths: list[str] = []
        original = source_type.local_path

        def local_path(src: object, relpath: str) -> str | None:
            if relpath:
                self.paths.append(relpath)
            return original(src, relpath)  # type: ignore[no-any-return]

        monkeypatch.setattr(source_type, "local_path", local_path)


def test_the_next_backup_adopts_a_dead_run(
    store: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored, spool_pack = _dead_run(store, source, batches=2)
    info = json.loads(kloset("at", str(store), "info", "--json").stdout)["leftovers"]
    assert info["journal_runs"] == 1 and info["journals"] == 2, info
    assert info["spool_entries"] == 1 and info["spool_bytes"] > 0, info

    src = open_source(str(source))
    reads = _CountingReads(monkeypatch, type(src))
    report = run_backup(open_store(store), src, workers=1)  # in-process: reads are counted
    assert report.plan.files_adopted == len(stored)
    assert reads.paths and not set(stored) & set(reads.paths), "a stored file was read again"
    assert report.commit.stats["files_read"] == report.plan.files - len(stored)
    # Its spool pack was verified and moved into the store; its directory and journals are gone.
    name = os.path.basename(spool_pack)
    assert (store / "packs" / name[:2] / name).exists()
    assert not [n for n in os.listdir(store / "tmp") if n.startswith("run-")]
    assert list_runs(open_store(store)) == {}
    assert json.loads(kloset("at", str(store), "info", "--json").stdout)["leftovers"] == {
        "spool_entries": 0,
        "spool_bytes": 0,
        "journal_runs": 0,
        "journals": 0,
        "journal_bytes": 0,
    }
    assert_check_ok(store, read_data=True)
    assert restore_to(store, "latest", store.parent / "r") == tree_digest(source)


def test_a_damaged_spool_pack_is_not_adopted(store: Path, source: Path) -> None:
    _stored, spool_pack = _dead_run(store, source)
    with open(spool_pack, "r+b") as fh:  # a torn write: the name no longer matches the bytes
        fh.seek(10)
        fh.write(b"\0\0\0\0")
    run_backup(open_store(store), open_source(str(source)))
    name = os.path.basename(spool_pack)
    assert not (store / "packs" / name[:2] / name).exists()
    assert not os.path.exists(spool_pack)  # removed with the dead run's directory
    assert_check_ok(store, read_data=True)


def test_prune_keeps_young_leftovers_and_removes_old_ones(store: Path, source: Path) -> None:
    _dead_run(store, source)
    packs = sorted(p for p in (store / "packs").rglob("*") if p.is_file())
    for pack in packs:  # old packs no snapshot uses: only the young journal still names them
        os.utime(pack, (pack.stat().st_atime - 7200, pack.stat().st_mtime - 7200))
    kloset("at", str(store), "prune")  # default grace: a dead run's leftovers stay, and its data
    left = json.loads(kloset("at", str(store), "info", "--json").stdout)["leftovers"]
    assert left["journals"] == 1 and left["spool_entries"] == 1, left
    assert all(p.exists() for p in packs)
    repo = open_store(store)
    (journal,) = [o for objs in list_runs(repo).values() for o in objs]
    kloset("at", str(store), "prune", "--grace", "0")
    left = json.loads(kloset("at", str(store), "info", "--json").stdout)["leftovers"]
    assert left["journals"] == 0 and left["spool_entries"] == 0, left
    assert not (store / journal.name).exists()
    assert not any(p.exists() for p in packs)  # nothing names their data any more
    assert_check_ok(store, read_data=True)
