"""`sync`: copy snapshots from one store to another (`kloset.sync`), e.g. local → off-site.

The engine sends only blobs the target lacks; with linked keys (a target created from the
source, `kloset.keys_change.create_linked`) sealed blobs and headers are copied as they are,
so a snapshot keeps its id off-site. A rerun adopts what a killed one left, so retrying is safe.
"""

from __future__ import annotations

from typing import Any

from blocks import KlosetRepository
from kloset.errors import PassphraseRequired, StoreNotFound
from kloset_tasks.factory import kloset_task
from kloset_tasks.spec import open_repo


@kloset_task("sync", retries=2)
def sync(
    store: KlosetRepository,
    target: KlosetRepository,
    snapshots: list[str] | None = None,
    create_target: bool = True,
) -> dict[str, Any]:
    """Copy `snapshots` (ids, prefixes or ``latest``; default all) from `store` to `target`.

    With `create_target`, a location holding no store yet gets one sharing the source's keys
    (under the target's own passphrase): the first run of an off-site copy needs no setup.
    """
    from kloset.keys_change import create_linked
    from kloset.sync import sync_snapshots

    src = open_repo(store)
    created = False
    try:
        dst = target.open_repository()
    except StoreNotFound:
        if not create_target:
            raise
        secret = target.get_passphrase()
        if src.config.encrypted and not secret:
            raise PassphraseRequired(
                "creating the off-site store needs a passphrase: set it on the target's "
                "Kloset Repository block"
            ) from None
        dst = create_linked(target.get_storage(), src, secret)
        created = True
    chosen = [src.resolve_snapshot(ref) for ref in snapshots] if snapshots else None
    report = sync_snapshots(src, dst, chosen)
    return {
        "created_target": created,
        "target_store_id": dst.config.store_id,
        "same_keys": report.same_keys,
        "copied": [list(pair) for pair in report.copied],
        "skipped": list(report.skipped),
        "blobs_added": report.blobs_added,
        "bytes_added": report.bytes_added,
        "packs_written": report.packs_written,
        "duration": round(report.duration, 3),
    }
