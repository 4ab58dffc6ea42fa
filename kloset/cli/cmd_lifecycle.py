"""`kloset at STORE <verb>` for the store's lifecycle: prune, unlock, repair index, sync,
passphrase change. Each verb is argument parsing and output around one engine function."""

from __future__ import annotations

import getpass
import os
import sys
import time
from typing import Any

import typer

from kloset import passphrase as pp
from kloset.cli import output as o
from kloset.cli.app import at_app, store_ctx
from kloset.errors import CheckFailed, PassphraseRequired, StoreNotFound

repair_app = typer.Typer(help="Rebuild damaged store metadata.", no_args_is_help=True)
passphrase_app = typer.Typer(help="Manage the store's passphrase.", no_args_is_help=True)
at_app.add_typer(repair_app, name="repair")
at_app.add_typer(passphrase_app, name="passphrase")

LOCK_WAIT_HELP = "Wait this many seconds for a conflicting lock to go (default 0)."


def _short(snap: dict[str, Any]) -> str:
    tags = f" [{', '.join(snap['tags'])}]" if snap["tags"] else ""
    return f"{snap['id'][:12]}  {snap['time']}  {snap['source']}{tags}"


@at_app.command()
def prune(
    ctx: typer.Context,
    keep_last: int = typer.Option(
        0, "--keep-last", metavar="N", help="Keep the N newest snapshots."
    ),
    keep_hourly: int = typer.Option(
        0, "--keep-hourly", metavar="N", help="Keep the newest of N hours."
    ),
    keep_daily: int = typer.Option(
        0, "--keep-daily", metavar="N", help="Keep the newest of N days."
    ),
    keep_weekly: int = typer.Option(
        0, "--keep-weekly", metavar="N", help="Keep the newest of N ISO weeks."
    ),
    keep_monthly: int = typer.Option(
        0, "--keep-monthly", metavar="N", help="Keep the newest of N months."
    ),
    keep_yearly: int = typer.Option(
        0, "--keep-yearly", metavar="N", help="Keep the newest of N years."
    ),
    keep_tag: list[str] = typer.Option(
        [],
        "--keep-tag",
        metavar="TAG",
        help="Keep snapshots with this tag (a,b = both; repeatable).",
    ),
    keep_within: str | None = typer.Option(
        None,
        "--keep-within",
        metavar="DURATION",
        help="Keep snapshots within e.g. 30d, 6m, 1y2m of the newest.",
    ),
    repack_threshold: float = typer.Option(
        0.2,
        "--repack-threshold",
        metavar="FRACTION",
        help="Repack packs whose unused fraction exceeds this.",
    ),
    repack_small: bool = typer.Option(
        True,
        "--repack-small/--no-repack-small",
        help="Merge small packs (each backup's tail) into full ones.",
    ),
    grace_minutes: float = typer.Option(
        60.0, "--grace", metavar="MINUTES", help="Never delete packs younger than this."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; change nothing."),
    lock_wait: float = typer.Option(0.0, "--lock-wait", metavar="SECONDS", help=LOCK_WAIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Forget snapshots the --keep-* policy does not keep, then reclaim space (whole unused
    packs, and mostly unused ones by repacking). Without --keep-* only unused data goes."""
    from kloset.prune import PruneOptions
    from kloset.prune import prune as run_prune

    # Every option but --json is a prune option, under the name PruneOptions takes.
    options = PruneOptions.from_params({k: v for k, v in ctx.params.items() if k != "as_json"})
    repo = store_ctx(ctx).open()
    report = run_prune(repo, options)
    if as_json:
        o.print_json(report.to_json())
        return
    o.out(f"policy: {report.policy}")
    for snap in report.kept:
        o.out(f"keep    {_short(snap)}  ({', '.join(snap['reasons'])})")
    for snap in report.removed:
        o.out(f"{'forget' if dry_run else 'removed'}  {_short(snap)}")
    hs = o.human_size
    verb = "would" if dry_run else "did"
    o.out(f"packs: {report.packs_before} ({hs(report.bytes_before)})")
    o.out(f"  delete {report.packs_deleted} unused ({hs(report.bytes_deleted)})")
    o.out(
        f"  repack {report.packs_repacked - report.packs_small} mostly unused and "
        f"{report.packs_small} small ({hs(report.bytes_repacked)}, "
        f"{hs(report.bytes_copied)} still used is copied)"
    )
    if report.packs_young:
        o.out(f"  keep {report.packs_young} younger than {grace_minutes:g} min as they are")
    for name, why in report.unreadable:
        o.err(f"warning: {name}: {why}")
    if report.tmp_removed:
        o.out(f"  leftovers of killed runs: {report.tmp_removed} ({hs(report.tmp_bytes)})")
    o.out(f"{verb} reclaim {hs(max(0, report.bytes_reclaimed))}")
    trash = repo.storage.trash() if not dry_run and report.bytes_deleted else None
    if trash is not None:
        o.err(
            f"note: Koofr keeps deleted files in its trash for {trash['retention_days']} days, "
            f"and they may count against the quota until then: {hs(trash['bytes'])} of this "
            "mount's deleted files are there now (empty the trash in the Koofr web app to "
            "free the space at once)"
        )


@at_app.command()
def unlock(
    ctx: typer.Context,
    remove_all: bool = typer.Option(
        False, "--all", help="Remove every lock, not only stale ones (only if nothing runs!)."
    ),
) -> None:
    """Remove locks left by crashed runs (or all locks with --all)."""
    from kloset.locks import read_locks
    from kloset.locks import unlock as run_unlock

    repo = store_ctx(ctx).open()
    removed = run_unlock(repo, stale_only=not remove_all)
    for info in removed:
        o.out(f"removed lock {info.describe()}")
    left = len(read_locks(repo))
    o.out(f"removed {len(removed)} lock(s), {left} still held")


@repair_app.command("index")
def repair_index(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only; write nothing."),
    lock_wait: float = typer.Option(0.0, "--lock-wait", metavar="SECONDS", help=LOCK_WAIT_HELP),
) -> None:
    """Rebuild the index from the packs' own headers, then list every snapshot file whose
    data is lost."""
    from kloset.locks import store_lock
    from kloset.repair import rebuild_index

    repo = store_ctx(ctx).open()
    with store_lock(repo, not dry_run, "repair index", wait=lock_wait):
        report = rebuild_index(repo, dry_run=dry_run)
    for name, why in report.unreadable_packs:
        o.err(f"unreadable pack {name}: {why}")
    action = "would index" if dry_run else "indexed"
    o.out(f"{action} {report.packs} packs ({report.blobs} blobs)")
    if not dry_run:
        o.out(
            f"wrote {len(report.index_written)} index file(s), removed {len(report.index_removed)}"
        )
    for d in report.damage:
        o.err(f"lost in snapshot {d.snapshot[:12]}: {d.path or '(header)'}: {d.reason}")
    if report.damage:
        snaps = len({d.snapshot for d in report.damage})
        raise CheckFailed(f"{len(report.damage)} paths in {snaps} snapshots reference lost data")


def _destination_passphrase(path: str | None) -> str | None:
    if path:
        return pp.from_file(path)
    env = os.environ.get("KLOSET_TO_PASSPHRASE")
    if env:
        return env
    if sys.stdin.isatty():
        return getpass.getpass("destination passphrase: ") or None
    return None


@at_app.command()
def sync(
    ctx: typer.Context,
    snapshots: list[str] = typer.Argument(None, metavar="[SNAP...]"),
    to: str = typer.Option(..., "--to", metavar="DST", help="Destination store."),
    to_passphrase_file: str | None = typer.Option(
        None, "--to-passphrase-file", help="Destination passphrase (else KLOSET_TO_PASSPHRASE)."
    ),
    create: bool = typer.Option(
        False, "--create", help="Create DST if missing, sharing this store's keys."
    ),
    lock_wait: float = typer.Option(0.0, "--lock-wait", metavar="SECONDS", help=LOCK_WAIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Copy snapshots (default: all) to another store, sending only data it lacks."""
    from kloset.keys_change import create_linked
    from kloset.locations import open_storage
    from kloset.repository import Repository
    from kloset.sync import sync_snapshots

    src = store_ctx(ctx).open()
    storage = open_storage(to)
    secret = _destination_passphrase(to_passphrase_file)
    try:
        dst = Repository.open(storage, secret)
    except StoreNotFound:
        if not create:
            raise StoreNotFound(f"no kloset store at {to} (create it, or pass --create)") from None
        if src.config.encrypted and not secret:
            raise PassphraseRequired("--create needs the destination passphrase") from None
        dst = create_linked(storage, src, secret)
        o.err(f"created store {dst.config.store_id} at {storage.location} (same keys)")
    chosen = [src.resolve_snapshot(ref) for ref in snapshots] if snapshots else None
    report = sync_snapshots(src, dst, chosen, lock_wait=lock_wait)
    if as_json:
        o.print_json(report.__dict__)
        return
    for old, new in report.copied:
        o.out(f"copied snapshot {old[:12]} -> {new}")
    for old in report.skipped:
        o.out(f"already there: {old[:12]}")
    how = "sealed blobs copied as-is" if report.same_keys else "re-encoded for the destination"
    o.out(
        f"{len(report.copied)} copied, {len(report.skipped)} already there; "
        f"added {o.human_size(report.bytes_added)} in {report.packs_written} packs ({how})"
    )


@passphrase_app.command("change")
def passphrase_change(
    ctx: typer.Context,
    new_passphrase_file: str | None = typer.Option(
        None, "--new-passphrase-file", help="Read the new passphrase (else KLOSET_NEW_PASSPHRASE)."
    ),
    lock_wait: float = typer.Option(0.0, "--lock-wait", metavar="SECONDS", help=LOCK_WAIT_HELP),
) -> None:
    """Change the passphrase: the keys are rewrapped, no data is rewritten."""
    from kloset.keys_change import change_passphrase

    repo = store_ctx(ctx).open()
    if new_passphrase_file:
        new = pp.from_file(new_passphrase_file)
    else:
        new = os.environ.get("KLOSET_NEW_PASSPHRASE") or pp.prompt(confirm=True)
    started = time.perf_counter()
    change_passphrase(repo, new, lock_wait=lock_wait)
    o.out(f"passphrase changed ({time.perf_counter() - started:.1f} s); old one no longer works")
