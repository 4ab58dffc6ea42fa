"""Maintenance tasks: `check` (structure and data of a store) and `prune` (retention + space).

Both return plain dicts (the engine reports' own JSON forms), never raise for damage they
*found* — that is the flow's call, after it has published the report.
"""

from __future__ import annotations

from typing import Any

from blocks import KlosetRepository
from kloset.check import check_store
from kloset.prune import PruneOptions
from kloset.prune import prune as engine_prune
from kloset_tasks.factory import kloset_task
from kloset_tasks.spec import open_repo


@kloset_task("check", retries=2, backoff=5)
def check(
    store: KlosetRepository,
    read_data: bool = False,
    subset: str | None = None,
    snapshots: list[str] | None = None,
) -> dict[str, Any]:
    """Check the store: index, snapshots, trees and packs; with `read_data` or `subset`
    (``n/m`` or ``N%`` of the packs) also download and authenticate the data."""
    report = check_store(open_repo(store), read_data=read_data, subset=subset, snapshots=snapshots)
    return report.to_dict()


# A prune that failed half-way left a valid store; running it again finishes the job.
@kloset_task("prune", retries=1, delay=60)
def prune(store: KlosetRepository, options: PruneOptions) -> dict[str, Any]:
    """Forget snapshots the policy does not keep, then reclaim unused and mostly-unused packs.

    Takes the store's exclusive lock itself (a dry run only a shared one), so it waits for
    no one and never runs beside a backup.
    """
    return engine_prune(open_repo(store), options).to_json()
