"""Run-wide chunk claims: batches of one backup run in parallel (Prefect's chunk tasks, in
threads or processes) store each new chunk once, and a claimed chunk never goes missing.
Also the worker processes batches of local sources run in."""

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

from kloset.backup.batch import back_up_batch, batch_job, ship
from kloset.backup.claims import RunClaims
from kloset.backup.commit import commit_snapshot
from kloset.backup.plan import BackupOptions, enumerate_source, load_batches
from kloset.config import ChunkerParams
from kloset.crypto import KdfParams
from kloset.errors import KlosetError
from kloset.locations import open_destination, open_source, open_storage
from kloset.repository import Repository
from kloset.restore import run_restore
from kloset.workers import WorkerDied, WorkerPool

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


def _plan(repo: Repository, tmp_path: Path, opts: BackupOptions | None = None):
    src_dir = tmp_path / "src"
    if not src_dir.exists():
        make_source(src_dir)
    src = open_source(str(src_dir))
    opts = opts or BackupOptions(batch_bytes=3 * 1024 * 1024, batch_files=2)
    plan = enumerate_source(repo, src, str(tmp_path / "spool"), opts)
    return src_dir, src, plan, load_batches(plan.run_dir)


def _restores(repo: Repository, snap: str, src_dir: Path, target: Path) -> None:
    header = repo.resolve_snapshot(snap)
    assert not run_restore(repo, header, "/", open_destination(str(target))).errors
    for name in ("a", "b", "c", "d"):
        for f in ("copy.bin", "own.txt"):
            assert (target / name / f).read_bytes() == (src_dir / name / f).read_bytes()


def test_parallel_batches_store_shared_content_once(repo: Repository, tmp_path: Path) -> None:
    src_dir, src, plan, batches = _plan(repo, tmp_path)
    assert plan.batches >= 4
    with ThreadPoolExecutor(4) as pool:  # like Prefect's thread runner: no claims passed in
        results = list(
            pool.map(
                lambda b: back_up_batch(repo, src, plan.run, b, batches[b]), range(plan.batches)
            )
        )
    new_bytes = sum(r.new_bytes for r in results)
    assert 3 * 1024 * 1024 <= new_bytes < 3.1 * 1024 * 1024, new_bytes  # one copy, not four
    snap = commit_snapshot(repo, plan.run_dir).snapshot_id
    _restores(repo, snap, src_dir, tmp_path / "r")


class _LostClaims:
    """Claims as a batch sees them when another batch won every chunk and then never stored
    them (it failed on a file it had read before)."""

    def claim(self, ids: list[bytes]) -> list[bool]:
        return [False] * len(ids)


def test_a_claimed_but_unstored_chunk_fails_the_commit(repo: Repository, tmp_path: Path) -> None:
    """A batch skips chunks another batch claimed; if that batch did not store them after all,
    commit refuses instead of writing an unrestorable snapshot."""
    src_dir, src, plan, batches = _plan(repo, tmp_path)
    last = plan.batches - 1  # d/own.txt: content no other batch has
    for b in range(plan.batches):
        claims = _LostClaims() if b == last else None
        back_up_batch(repo, src, plan.run, b, batches[b], claims=claims)
    with pytest.raises(KlosetError, match="nothing was committed; run the backup again"):
        commit_snapshot(repo, plan.run_dir)
    assert repo.list_snapshots() == []
    # The next run stores what was missing and commits.
    _src_dir, _src, again, batches = _plan(repo, tmp_path)
    for b in range(again.batches):
        back_up_batch(repo, src, again.run, b, batches[b])
    _restores(repo, commit_snapshot(repo, again.run_dir).snapshot_id, src_dir, tmp_path / "r")


def test_batches_run_in_worker_processes(repo: Repository, tmp_path: Path) -> None:
    """What the CLI and Prefect's thread runner use for local sources: each batch runs in a
    worker process (not this one), shared content is still stored once, and it restores."""
    src_dir, src, plan, batches = _plan(repo, tmp_path)
    with WorkerPool(2) as workers, ThreadPoolExecutor(2) as pool:

        def one(b: int) -> int:
            return workers.run(batch_job, ship(repo), src, plan.run, b, batches[b]).new_bytes

        new_bytes = sum(pool.map(one, range(plan.batches)))
    assert 3 * 1024 * 1024 <= new_bytes < 3.1 * 1024 * 1024, new_bytes
    _restores(repo, commit_snapshot(repo, plan.run_dir).snapshot_id, src_dir, tmp_path / "r")


def test_a_killed_worker_process_fails_one_batch_clearly(repo: Repository, tmp_path: Path) -> None:
    src_dir, src, plan, batches = _plan(repo, tmp_path, BackupOptions())
    with WorkerPool(1) as workers:
        assert workers.run(batch_job, ship(repo), src, plan.run, 0, batches[0]).files == 8
        # A file that became a FIFO: the worker blocks opening it, and is killed right there.
        (src_dir / "a" / "own.txt").unlink()
        os.mkfifo(src_dir / "a" / "own.txt")
        killer = threading.Thread(target=_kill_busy_worker, args=(workers,))
        killer.start()
        with pytest.raises(WorkerDied, match="died"):
            workers.run(batch_job, ship(repo), src, plan.run, 0, batches[0])
        killer.join()
        (src_dir / "a" / "own.txt").unlink()
        (src_dir / "a" / "own.txt").write_text("only in a\n" * 100)
        # a fresh worker
        assert workers.run(batch_job, ship(repo), src, plan.run, 0, batches[0]).files == 8


def _kill_busy_worker(workers: WorkerPool) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if workers.pids:
            time.sleep(0.5)  # let it reach the FIFO
            os.kill(workers.pids[0], signal.SIGKILL)
            return
        time.sleep(0.01)
