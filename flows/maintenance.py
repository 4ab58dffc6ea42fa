"""`verify_flow` (check a store, reading a subset of its data) and `prune_flow` (retention).

Run them on a schedule (prefect.yaml: weekly verify, monthly prune): a store nobody checks is
a store nobody can trust, and one nobody prunes only grows.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger

from blocks import KlosetRepository
from flows import events, reporting
from kloset.prune import PruneOptions
from kloset_tasks import check, prune
from kloset_tasks.spec import forget_run, koofr_tags, store_session, store_spec


@flow(
    name="kloset-verify",
    description="Check a Kloset store's structure and read back a subset of its data.",
    validate_parameters=True,
)
def verify_flow(
    store: KlosetRepository | str,
    read_data_subset: str | None = "10%",
    snapshots: list[str] | None = None,
) -> dict[str, Any]:
    """Check `store` and read back ``read_data_subset`` of its packs.

    Args:
        store: A Kloset Repository block, or a store location.
        read_data_subset: ``N%`` (a random sample of the packs), ``n/m`` (the n-th of m
            groups: rotate n weekly to read everything every m weeks), ``all``, or empty for
            structure only.
        snapshots: Only check these snapshots (ids or ``latest``); default all.

    Returns:
        The check report.
    """
    spec = store_spec(store)
    started = time.monotonic()
    subset = (read_data_subset or "").strip() or None
    read_all = subset is not None and subset.lower() == "all"
    try:
        with store_session(spec, "check", required=False):
            report = check.with_options(tags=koofr_tags(spec))(
                spec, read_all, None if read_all else subset, snapshots
            )
    except BaseException as exc:
        reporting.publish(
            "verify",
            f"Kloset check of {spec.location_label()}",
            [("Status", "FAILED"), ("Store", spec.location_label())],
            [("(check)", f"{type(exc).__name__}: {exc}")],
        )
        events.check_failed(spec, None, exc)
        raise reporting.with_fix(exc)  # noqa: B904 - chained in with_fix
    failures = [
        (path, f"damaged data (snapshot {snap[:12]})")
        for snap, paths in report["affected"].items()
        for path in paths
    ]
    failures += [("(store)", err) for err in report["errors"]]
    rows = [
        ("Status", "Completed" if report["ok"] else "FAILED"),
        ("Store", spec.location_label()),
        ("Snapshots", report["snapshots"]),
        ("Trees", report["trees"]),
        ("Data blobs referenced", report["blobs"]),
        (
            "Packs",
            f"{report['packs']} indexed, {report['packs_read']} read back "
            f"({reporting.human_bytes(report['bytes_read'])})",
        ),
        ("Damaged packs", len(report["damaged_packs"])),
        ("Unreferenced packs", len(report["unreferenced_packs"])),
        ("Duration", f"{time.monotonic() - started:.1f} s"),
        ("Errors", len(report["errors"])),
    ]
    notes = [f"- warning: {w}" for w in report["warnings"][:50]]
    reporting.publish("verify", f"Kloset check of {spec.location_label()}", rows, failures, notes)
    if not report["ok"]:
        events.check_failed(spec, report, None)
        raise reporting.KlosetFlowError(
            reporting.failure_message(f"store {spec.location_label()} is damaged", failures)
        )
    return report


@flow(
    name="kloset-prune",
    description="Forget Kloset snapshots by retention policy and reclaim their space.",
    validate_parameters=True,
)
def prune_flow(
    store: KlosetRepository | str,
    keep_last: int = 0,
    keep_hourly: int = 0,
    keep_daily: int = 0,
    keep_weekly: int = 0,
    keep_monthly: int = 0,
    keep_yearly: int = 0,
    keep_tag: list[str] | None = None,
    keep_within: str | None = None,
    dry_run: bool = False,
    repack_threshold: float = 0.2,
    grace_minutes: float = 60.0,
    repack_small: bool = True,
) -> dict[str, Any]:
    """Apply a retention policy to `store` (restic's ``forget --prune`` semantics).

    Args:
        store: A Kloset Repository block, or a store location.
        keep_last: Keep the newest N snapshots of each source (-1: all).
        keep_hourly: Keep the newest snapshot of each of the last N hours.
        keep_daily: Keep the newest snapshot of each of the last N days.
        keep_weekly: Keep the newest snapshot of each of the last N ISO weeks.
        keep_monthly: Keep the newest snapshot of each of the last N months.
        keep_yearly: Keep the newest snapshot of each of the last N years.
        keep_tag: Keep snapshots with these tags (``a,b`` means both).
        keep_within: Keep snapshots within this span of the newest, e.g. ``2y5m7d3h``.
        dry_run: Only report what would be removed and reclaimed.
        repack_threshold: Repack packs with more than this fraction of unused data.
        grace_minutes: Leave packs younger than this alone (a backup may be writing them).
        repack_small: Merge small packs (the tail of each backup run) into full ones.

    Returns:
        The prune report (kept and removed snapshots with reasons, bytes reclaimed).
    """
    # Every parameter but the store is a prune option, under the name PruneOptions takes.
    options = PruneOptions.from_params({k: v for k, v in locals().items() if k != "store"})
    logger = get_run_logger()
    spec = store_spec(store)
    started = time.monotonic()
    try:
        # prune takes the exclusive lock itself; holding a shared one here would block it.
        report = prune.with_options(tags=koofr_tags(spec))(spec, options)
    except BaseException as exc:
        reporting.publish(
            "prune",
            f"Kloset prune of {spec.location_label()}",
            [("Status", "FAILED"), ("Store", spec.location_label())],
            [("(prune)", f"{type(exc).__name__}: {exc}")],
        )
        raise reporting.with_fix(exc)  # noqa: B904 - chained in with_fix
    finally:
        forget_run()
    verb = "would be" if dry_run else "were"
    logger.info(
        "%d snapshots %s removed, %s reclaimed",
        len(report["removed"]),
        verb,
        reporting.human_bytes(report["bytes_reclaimed"]),
    )
    failures = [(u["name"], u["error"]) for u in report["unreadable"]]
    rows = [
        ("Status", "Completed (dry run)" if dry_run else "Completed"),
        ("Store", spec.location_label()),
        ("Policy", report["policy"]),
        ("Snapshots kept", len(report["kept"])),
        ("Snapshots removed", len(report["removed"])),
        ("Packs deleted", report["packs_deleted"]),
        ("Packs repacked", report["packs_repacked"]),
        ("Small packs merged", report["packs_small"]),
        ("Space reclaimed", reporting.human_bytes(report["bytes_reclaimed"])),
        ("Duration", f"{time.monotonic() - started:.1f} s"),
    ]
    notes = (
        ["## Removed", ""]
        + [f"- `{s['id'][:12]}` {s['time']} {s['source']}" for s in report["removed"][:200]]
        if report["removed"]
        else []
    )
    reporting.publish("prune", f"Kloset prune of {spec.location_label()}", rows, failures, notes)
    events.prune_completed(spec, report, dry_run)
    return report
