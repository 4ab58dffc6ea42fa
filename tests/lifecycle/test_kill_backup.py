"""kill -9 during backups: the store stays valid, reported snapshots survive, nothing is resent.

Each round adds fresh data to the source, starts `kloset at STORE backup SRC` as a real
process and SIGKILLs it after a random delay. Half of the delays count from the spawn (they
land anywhere: start-up, locking, planning...), half from the moment the run's spool directory
appears (so they spread over chunking, upload and commit, where a kill costs the most).
After every kill `check` must pass and every snapshot a run ever reported must still exist;
then a normal backup runs, and the blobs it uploads that the killed run had already uploaded
must be under 10% of what the killed run uploaded.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

from lifecycle_helpers import (
    MB,
    assert_check_ok,
    blobs_of,
    kloset,
    open_store,
    pack_sizes,
    restore_to,
    snapshot_ids,
    spawn,
    tree_digest,
    write_tree,
)

from kloset.backup import spool
from kloset.backup.batch import back_up_batch
from kloset.backup.journal import delete_run
from kloset.backup.pipeline import run_backup
from kloset.backup.plan import BackupOptions, enumerate_source, load_batches
from kloset.locations import open_source

KILLS = 20
FRESH = 6 * MB


def _wait_for_run_dir(store: Path, proc, known: set[str], timeout: float = 10.0) -> bool:
    """Block until the backup's spool directory shows up (planning started)."""
    deadline = time.monotonic() + timeout
    tmp = store / "tmp"
    while time.monotonic() < deadline and proc.poll() is None:
        if tmp.is_dir() and any(n.startswith("run-") and n not in known for n in os.listdir(tmp)):
            return True
        time.sleep(0.002)
    return False


def test_kill_backup_loop(store: Path, source: Path) -> None:
    rng = random.Random(20240611)
    reported: set[str] = set()
    out = kloset("at", str(store), "backup", str(source))
    reported.update(snapshot_ids(out.stdout))
    # Calibrate: how long a round's run lasts from spawn, and from planning to exit.
    write_tree(source / "fresh-cal", rng, FRESH, prefix="c")
    started = time.monotonic()
    proc = spawn("at", str(store), "backup", str(source))
    _wait_for_run_dir(store, proc, set())
    planned = time.monotonic()
    stdout, _ = proc.communicate(timeout=60)
    total, work = time.monotonic() - started, time.monotonic() - planned
    reported.update(snapshot_ids(stdout))
    shutil.rmtree(source / "fresh-cal")

    kills = rounds = 0
    killed_bytes = resent_bytes = 0
    kills_with_uploads = 0
    scale = 1.0  # shrinks when runs finish before their kill (a faster machine than calibrated)
    while kills < KILLS and rounds < 3 * KILLS:
        rounds += 1
        write_tree(source / f"fresh-{rounds}", rng, FRESH, prefix=f"r{rounds}-")
        if rounds > 1:
            shutil.rmtree(source / f"fresh-{rounds - 1}")
        before = pack_sizes(store)
        known = set(os.listdir(store / "tmp")) if (store / "tmp").is_dir() else set()
        proc = spawn("at", str(store), "backup", str(source))
        if rounds % 2:
            time.sleep(rng.uniform(0.0, total * scale))
        elif _wait_for_run_dir(store, proc, known):
            time.sleep(rng.uniform(0.0, work * scale))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
            scale = min(1.2, scale * 1.05)
        else:
            scale *= 0.8
        stdout, _ = proc.communicate(timeout=60)
        reported.update(snapshot_ids(stdout))

        assert_check_ok(store)
        repo = open_store(store)
        present = {h.hex for h in repo.list_snapshots()}
        assert reported <= present, f"lost snapshots after kill {kills}: {reported - present}"

        after_kill = pack_sizes(store)
        new_by_kill = sorted(set(after_kill) - set(before))
        uploaded = sum(after_kill[n] for n in new_by_kill)
        kill_blobs = blobs_of(repo, new_by_kill, after_kill)
        # The next backup (in-process: the same engine, minus a second start-up per round).
        reported.add(run_backup(open_store(store), open_source(str(source))).commit.snapshot_id)
        after = pack_sizes(store)
        resent_blobs = blobs_of(open_store(store), sorted(set(after) - set(after_kill)), after)
        resent = sum(n for bid, n in resent_blobs.items() if bid in kill_blobs)
        if uploaded >= MB:
            kills_with_uploads += 1
            assert resent < 0.1 * uploaded, f"round {rounds}: resent {resent} of {uploaded}"
        killed_bytes += uploaded
        resent_bytes += resent

    assert kills >= KILLS
    # Not vacuous: a good share of the kills came after the killed run had uploaded data.
    assert kills_with_uploads >= 3, kills_with_uploads
    assert resent_bytes <= 0.1 * killed_bytes
    print(
        f"\nkill loop: {kills} kills in {rounds} rounds, {kills_with_uploads} after uploads; "
        f"killed runs uploaded {killed_bytes / MB:.1f} MiB, next runs resent "
        f"{resent_bytes / MB:.3f} MiB ({100 * resent_bytes / max(1, killed_bytes):.2f}%)"
    )
    assert_check_ok(store, read_data=True)
    latest = restore_to(store, "latest", store.parent / "restored")
    assert latest == tree_digest(source)


def test_unindexed_packs_are_adopted_not_resent(store: Path, source: Path) -> None:
    """The window a random kill rarely hits on local disk (packs uploaded, their index not yet
    written) reproduced exactly: the next backup must index those packs, not upload again."""
    repo = open_store(store)
    src = open_source(str(source))
    plan = enumerate_source(repo, src, str(store / "tmp"), BackupOptions(batch_bytes=8 * MB))
    for batch, items in enumerate(load_batches(plan.run_dir)):
        back_up_batch(repo, src, plan.run, batch, items)
    # ... "killed" right after the packs: no index file, no journal.
    for name in repo.storage.iter_names("index"):
        repo.storage.delete(name)
    delete_run(repo, plan.run_id)
    spool.remove_run(plan.run_dir)
    uploaded = sum(pack_sizes(store).values())
    assert uploaded > 20 * MB
    before = sum(pack_sizes(store).values())
    report = run_backup(open_store(store), src)
    grown = sum(pack_sizes(store).values()) - before
    assert grown < 0.02 * uploaded, (grown, uploaded)  # only the trees are new
    assert report.commit.stats["files"] > 50
    assert_check_ok(store, read_data=True)
    assert restore_to(store, "latest", store.parent / "r") == tree_digest(source)


def test_killed_before_commit_costs_only_a_reread(store: Path, source: Path) -> None:
    """A run killed after uploading every batch, before its snapshot: its data is indexed, so
    the next run re-reads the files but stores nothing again except its trees."""
    repo = open_store(store)
    src = open_source(str(source))
    plan = enumerate_source(repo, src, str(store / "tmp"), BackupOptions(batch_bytes=8 * MB))
    for batch, items in enumerate(load_batches(plan.run_dir)):
        back_up_batch(repo, src, plan.run, batch, items)
    spool.remove_run(plan.run_dir)  # killed here: no trees, no snapshot
    before = sum(pack_sizes(store).values())
    assert before > 30 * MB and not open_store(store).list_snapshots()
    report = run_backup(open_store(store), src)
    assert sum(pack_sizes(store).values()) - before < 0.02 * before
    assert report.commit.stats["bytes_read"] > 30 * MB
