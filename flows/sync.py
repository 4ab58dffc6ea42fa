"""`sync_flow`: keep an off-site copy of a store (local store → a store on Koofr).

prefect.yaml's `offsite-sync` deployment runs it on every `kloset.snapshot.created` of the
nightly backup, with that snapshot's id, so the off-site copy lags the backup by one run at
most. Only what the target lacks is sent; the first run creates the target store with the
source's keys, so snapshots keep their ids off-site and data is copied still sealed.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger

from blocks import KlosetRepository
from flows import reporting
from kloset_tasks.spec import forget_run, koofr_tags, store_spec
from kloset_tasks.sync import sync


@flow(
    name="kloset-sync",
    description="Copy snapshots of a Kloset store to another store (an off-site copy).",
    validate_parameters=True,
)
def sync_flow(
    store: KlosetRepository | str,
    target: KlosetRepository | str,
    snapshots: list[str] | None = None,
    create_target: bool = True,
) -> dict[str, Any]:
    """Copy `snapshots` (default: all) from `store` to `target`, sending only what it lacks.

    Args:
        store: The Kloset Repository block (or location) to copy from.
        target: The Kloset Repository block (or location) to copy to, e.g. on Koofr.
        snapshots: Snapshot ids, prefixes or ``latest``; empty copies every snapshot.
        create_target: Create the target store (sharing the source's keys) if there is none.

    Returns:
        What was copied and how many bytes the target grew by.
    """
    src, dst = store_spec(store), store_spec(target)
    started = time.monotonic()
    title = f"Kloset sync to {dst.location_label()}"
    try:
        report = sync.with_options(tags=koofr_tags(src, dst))(src, dst, snapshots, create_target)
    except BaseException as exc:
        reporting.publish(
            "sync",
            title,
            [("Status", "FAILED"), ("From", src.location_label()), ("To", dst.location_label())],
            [("(sync)", f"{type(exc).__name__}: {exc}")],
        )
        raise reporting.with_fix(exc)  # noqa: B904 - chained in with_fix
    finally:
        forget_run()
    get_run_logger().info(
        "%d snapshot(s) copied, %d already there, %s added",
        len(report["copied"]),
        len(report["skipped"]),
        reporting.human_bytes(report["bytes_added"]),
    )
    rows = [
        ("Status", "Completed"),
        ("From", src.location_label()),
        ("To", dst.location_label() + (" (created)" if report["created_target"] else "")),
        ("Snapshots copied", ", ".join(new[:12] for _old, new in report["copied"]) or "none"),
        ("Already there", len(report["skipped"])),
        ("Bytes added", reporting.human_bytes(report["bytes_added"])),
        ("Packs written", report["packs_written"]),
        ("Duration", f"{time.monotonic() - started:.1f} s"),
    ]
    reporting.publish("sync", title, rows, [])
    return report
