"""Run-wide chunk claims: batches of one backup run in parallel (Prefect's chunk tasks, in
threads or processes) store each new chunk once, and a claimed chunk never goes missing.
Also the worker processes Prefect's thread runner chunks local sources in."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kloset.backup import procpool, spool
from kloset.backup.chunk import chunk_batch
from kloset.backup.claims import RunClaims
from kloset.backup.commit import commit_snapshot
from kloset.backup.plan import BackupOptions, enumerate_source
from kloset.backup.procpool import chunk_batch_in_process
from kloset.backup.upload import upload_batch
from kloset.config import ChunkerParams
from kloset.crypto import KdfParams
from kloset.errors import KlosetError
from kloset.locations import open_destination, open_source, open_storage
from kloset.repository import Repository
from kloset.restore import run_restore

CHUNKER = ChunkerParams(min_size=16 * 1024, avg_size=32 * 1024, max_size=128 * 1024)


def ids(n: int, salt: int) -> list[bytes]:
    """Chunk-id-like values: 32 bytes that look random."""
    return [hashlib.blake2b(f"{salt}/{i}".encode(), digest_size=32).digest() for i in range(n)]


def test_each_id_has_one_winner_and_retries_win_their_own(tmp_path: Path) -> None:
    path = str(tmp_path / "claims.sqlite")
    a, b = RunClaims(path, 0), RunClaims(path, 1)
    shared, only_a = ids(100, 1), ids(10, 2)
    assert a.claim(shared + only_a) == [True] * 110
    assert b.claim(shared) == [False] * 100
    assert a.claim(shared[:5]) == [False] * 5  # one attempt stores each chunk once
    dup = ids(3, 3)
    assert b.claim(dup + dup) == [True] * 3 + [False] * 3
    a.close()
    retry = RunClaims(path, 0)  # batch 0 again: it must store what it claimed before
    assert retry.claim(only_a + shared) == [True] * 110
    retry.close()
    b.close()


def test_batches_starting_together_on_a_new_file(tmp_path: Path) -> None:
    """Creating the file and switching it to WAL is raced by every batch that starts at once
    (when no enumerate created it first): none of them may fail with "database is locked"."""
    for round_ in range(5):
        path = str(tmp_path / f"claims-{round_}.sqlite")
        barrier = threading.Barrier(8)

        def start(owner: int, path: str = path, barrier: threading.Barrier = barrier) -> bool:
            barrier.wait()
            claims = RunClaims(path, owner)
            try:
                return claims.claim(ids(50, 5))[0]
            finally:
                claims.close()

        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(start, range(8))) == 1


def test_a_batch_starts_while_another_is_claiming(tmp_path: Path) -> None:
    path = str(tmp_path / "claims.sqlite")
    RunClaims.open_db(path).close()  # what enumerate does
    busy = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    busy.execute("BEGIN IMMEDIATE")  # batch 0 in the middle of a claim
    key = int.from_bytes(ids(1, 6)[0][:8], "big", signed=True)
    busy.execute("INSERT INTO claims VALUES (?, 0)", (key,))
    threading.Timer(0.3, lambda: busy.execute("COMMIT")).start()
    late = RunClaims(path, 1)  # must neither fail nor lose the claim race
    assert late.claim(ids(2, 6)) == [False, True]
    late.close()
    busy.close()


def _claim_in_process(path: str, owner: int, queue: multiprocessing.Queue) -> None:
    claims = RunClaims(path, owner)
    rng = random.Random(owner)
    pool = ids(2000, 9)
    won: list[bytes] = []
    for _ in range(40):
        group = rng.sample(pool, 64)
        won += [i for i, mine in zip(group, claims.claim(group), strict=True) if mine]
    claims.close()
    queue.put(won)


def test_processes_never_win_the_same_id(tmp_path: Path) -> None:
    path = str(tmp_path / "claims.sqlite")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(path, n, queue)) for n in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    everything = [i for won in results for i in won]
    assert len(everything) == len(set(everything))  # no id stored twice
    assert all(won for won in results)  # and they really competed


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.create(
        open_storage(str(tmp_path / "store")),
        "pw",
        kdf=KdfParams.fresh(memory_kib=1024, iterations=1),
        pack_size=1 << 20,
        chunker=CHUNKER,
    )


def make_source(root: Path) -> None:
    """The same 3 MiB of content in four folders: one per batch."""
    blob = random.Random(4).randbytes(3 * 1024 * 1024)
    for name in ("a", "b", "c", "d"):
        (root / name).mkdir(parents=True)
        (root / name / "copy.bin").write_bytes(blob)
        (root / name / "own.txt").write_text(f"only in {name}\n" * 100)


def test_parallel_batches_store_shared_content_once(repo: Repository, tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    make_source(src_dir)
    src = open_source(str(src_dir))
    opts = BackupOptions(batch_bytes=3 * 1024 * 1024, batch_files=2)
    plan = enumerate_source(repo, src, str(tmp_path / "spool"), opts)
    assert plan.batches >= 4
    with ThreadPoolExecutor(4) as pool:  # like Prefect's thread runner: no claims passed in
        results = list(pool.map(lambda b: chunk_batch(repo, plan.run_dir, b), range(plan.batches)))
    new_bytes = sum(r.new_bytes for r in results)
    assert 3 * 1024 * 1024 <= new_bytes < 3.1 * 1024 * 1024, new_bytes  # one copy, not four
    for b in range(plan.batches):
        upload_batch(repo, plan.run_dir, b)
    snap = commit_snapshot(repo, plan.run_dir).snapshot_id
    report = run_restore(
        repo, repo.resolve_snapshot(snap), "/", open_destination(str(tmp_path / "r"))
    )
    assert not report.errors
    for name in ("a", "b", "c", "d"):
        for f in ("copy.bin", "own.txt"):
            assert (tmp_path / "r" / name / f).read_bytes() == (src_dir / name / f).read_bytes()


def test_a_claimed_but_unstored_chunk_fails_the_commit(repo: Repository, tmp_path: Path) -> None:
    """A batch skips chunks another batch claimed; if that batch's successful attempt did not
    store them after all, commit refuses instead of writing an unrestorable snapshot."""
    src_dir = tmp_path / "src"
    make_source(src_dir)
    src = open_source(str(src_dir))
    opts = BackupOptions(batch_bytes=3 * 1024 * 1024, batch_files=2)
    plan = enumerate_source(repo, src, str(tmp_path / "spool"), opts)
    assert chunk_batch(repo, plan.run_dir, 0).new_chunks
    # Hand every claim of batch 0 to a batch that will never store it, then retry batch 0.
    with sqlite3.connect(spool.claims_path(plan.run_dir)) as db:
        assert db.execute("UPDATE claims SET owner = 99 WHERE owner = 0").rowcount > 0
    for b in range(plan.batches):
        chunk_batch(repo, plan.run_dir, b)
    for b in range(plan.batches):
        upload_batch(repo, plan.run_dir, b)
    with pytest.raises(KlosetError, match="nothing was committed; run the backup again"):
        commit_snapshot(repo, plan.run_dir)
    assert repo.list_snapshots() == []
    # The next run stores what was missing and commits.
    again = enumerate_source(repo, src, str(tmp_path / "spool"), opts)
    for b in range(again.batches):
        chunk_batch(repo, again.run_dir, b)
        upload_batch(repo, again.run_dir, b)
    snap = commit_snapshot(repo, again.run_dir).snapshot_id
    target = tmp_path / "r"
    header = repo.resolve_snapshot(snap)
    assert not run_restore(repo, header, "/", open_destination(str(target))).errors
    assert (target / "a" / "copy.bin").read_bytes() == (src_dir / "a" / "copy.bin").read_bytes()


def test_batches_chunked_in_worker_processes(repo: Repository, tmp_path: Path) -> None:
    """What Prefect's thread runner uses for local sources: each batch is chunked in a worker
    process (not this one), shared content is still stored once, and the snapshot restores."""
    src_dir = tmp_path / "src"
    make_source(src_dir)
    src = open_source(str(src_dir))
    opts = BackupOptions(batch_bytes=3 * 1024 * 1024, batch_files=2)
    plan = enumerate_source(repo, src, str(tmp_path / "spool"), opts)

    def one(b: int) -> int:
        return chunk_batch_in_process(repo, plan.run_dir, b, src, 2).new_bytes

    with ThreadPoolExecutor(2) as pool:
        new_bytes = sum(pool.map(one, range(plan.batches)))
    assert 3 * 1024 * 1024 <= new_bytes < 3.1 * 1024 * 1024, new_bytes
    for b in range(plan.batches):
        upload_batch(repo, plan.run_dir, b)
    snap = commit_snapshot(repo, plan.run_dir).snapshot_id
    out = open_destination(str(tmp_path / "r"))
    assert not run_restore(repo, repo.resolve_snapshot(snap), "/", out).errors
    assert (tmp_path / "r" / "d" / "copy.bin").read_bytes() == (
        src_dir / "d" / "copy.bin"
    ).read_bytes()


def test_a_killed_worker_process_fails_one_batch_clearly(repo: Repository, tmp_path: Path) -> None:
    src_dir = tmp_path / "src"
    make_source(src_dir)
    src = open_source(str(src_dir))
    plan = enumerate_source(repo, src, str(tmp_path / "spool"), BackupOptions())
    assert chunk_batch_in_process(repo, plan.run_dir, 0, src, 1).files == 8
    # A file that became a FIFO: the worker blocks opening it, and is killed right there.
    (src_dir / "a" / "own.txt").unlink()
    os.mkfifo(src_dir / "a" / "own.txt")
    killer = threading.Thread(target=_kill_busy_worker)
    killer.start()
    with pytest.raises(KlosetError, match="process chunking batch 0 died"):
        chunk_batch_in_process(repo, plan.run_dir, 0, src, 1)
    killer.join()
    (src_dir / "a" / "own.txt").unlink()
    (src_dir / "a" / "own.txt").write_text("only in a\n" * 100)
    assert chunk_batch_in_process(repo, plan.run_dir, 0, src, 1).files == 8  # a fresh worker
    procpool.shutdown()


def _kill_busy_worker() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with procpool._idle_lock:
            busy = list(procpool._busy)
        if busy:
            time.sleep(0.3)  # let it reach the FIFO
            os.kill(busy[0].pid, signal.SIGKILL)
            return
        time.sleep(0.01)
