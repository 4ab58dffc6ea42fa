"""`check_store` and `verify_snapshot`: the steps of a check, in order, under a shared lock."""

from __future__ import annotations

import time

from kloset.check import damage, data, structure
from kloset.check.findings import Findings, ProgressFn
from kloset.check.report import CheckReport, parse_subset, select_packs
from kloset.locks import store_lock
from kloset.pack import pack_name
from kloset.repository import Repository


def check_store(
    repo: Repository,
    *,
    read_data: bool = False,
    subset: str | None = None,
    snapshots: list[str] | None = None,
    progress: ProgressFn | None = None,
    lock: bool = True,
) -> CheckReport:
    """Check the structure of the store (or of some snapshots) and, optionally, read its data.

    `subset` (implies reading data) is `n/m` (packs whose id's first byte mod m is n-1) or
    `N%` (a random sample of the packs). A shared lock keeps a prune from deleting packs
    under the check (which would look like damage); `lock=False` when the caller holds one.
    """
    if lock:
        with store_lock(repo, False, "check", required=False):
            return check_store(
                repo, read_data=read_data, subset=subset, snapshots=snapshots,
                progress=progress, lock=False,
            )  # fmt: skip
    started = time.perf_counter()
    found = Findings(repo, progress or (lambda _e, _d: None))
    if subset is not None:
        parse_subset(subset)  # fail on a typo before doing any work
    structure.load_index(found)
    structure.load_snapshots(found, snapshots)
    structure.walk_trees(found)
    listed = structure.check_packs(found)
    if read_data or subset is not None:
        candidates = structure.used_packs(found) if snapshots else set(repo.index.pack_sizes)
        damaged = set(found.report.damaged_packs)
        wanted = [p for p in candidates if pack_name(p) not in damaged]
        data.read_packs(found, select_packs(wanted, subset), listed)
    damage.trace_damage(found)
    found.report.duration = round(time.perf_counter() - started, 3)
    return found.report


def verify_snapshot(
    repo: Repository,
    snapshot_hex: str,
    read_data_fraction: float = 0.0,
    *,
    progress: ProgressFn | None = None,
    lock: bool = True,
) -> CheckReport:
    """Structure of one snapshot, plus a random `read_data_fraction` of its data blobs opened.

    Used after each backup (the Prefect verify task): it reads only what this snapshot
    references, so verifying a small incremental snapshot stays cheap.
    """
    if lock:
        with store_lock(repo, False, "verify", required=False):
            return verify_snapshot(
                repo, snapshot_hex, read_data_fraction, progress=progress, lock=False
            )
    started = time.perf_counter()
    found = Findings(repo, progress or (lambda _e, _d: None))
    structure.load_index(found)
    structure.load_snapshots(found, [snapshot_hex])
    structure.walk_trees(found)
    structure.check_packs(found, only=structure.used_packs(found))
    data.sample_blobs(found, read_data_fraction)
    damage.trace_damage(found)
    found.report.duration = round(time.perf_counter() - started, 3)
    return found.report
