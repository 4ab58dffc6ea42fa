"""`kloset at STORE <verb>`: create, ls, cat, find, diff, check, info, rm (backup is in
cmd_backup, restore in cmd_restore).

Every verb is a thin layer over one engine function; what it adds is argument parsing and
output. Data goes to stdout (tables, JSON, file bytes), everything else to stderr: progress
bars (terminals only) and one line per problem. Exit codes: 0 ok, 7 finished with per-file
errors (the snapshot or the rest of the restore is still good), others from kloset.errors.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from kloset import passphrase as pp
from kloset.cli import output as o
from kloset.cli.app import at_app, store_ctx
from kloset.cli.progress import ProgressReporter
from kloset.errors import PathNotFound, StoreExists
from kloset.repository import Repository
from kloset.snapshot import SnapshotHeader
from kloset.vfs import SnapshotView, normalize

EXIT_PARTIAL = 7  # done, but some files could not be read or written


def split_ref(arg: str) -> tuple[str, str | None]:
    """`SNAP[:/path]` → (SNAP, path or None); splits at the first ':'."""
    ref, sep, path = arg.partition(":")
    return ref, (normalize(path) if sep else None)


def _resolve(repo: Repository, arg: str) -> tuple[SnapshotHeader, str | None]:
    ref, path = split_ref(arg)
    return repo.resolve_snapshot(ref), path


def _report_errors(errors: list[tuple[str, str]]) -> None:
    for path, message in errors:
        o.err(f"{path}: {message}")


# -- create -------------------------------------------------------------------------------------
@at_app.command()
def create(
    ctx: typer.Context,
    no_encryption: bool = typer.Option(
        False, "--no-encryption", help="Store data unencrypted (for stores encrypted elsewhere)."
    ),
    passphrase_file: str | None = typer.Option(
        None, "--passphrase-file", help="Read the new passphrase from this file."
    ),
    compression_level: int = typer.Option(3, "--compression-level", help="zstd level, 0 = off."),
    kdf_memory_kib: int | None = typer.Option(None, "--kdf-memory-kib", hidden=True),
    kdf_iterations: int | None = typer.Option(None, "--kdf-iterations", hidden=True),
    pack_size: int | None = typer.Option(None, "--pack-size", hidden=True),
) -> None:
    """Create a new store (asks for a passphrase twice unless one is given)."""
    from kloset.crypto import KdfParams

    sc = store_ctx(ctx)
    storage = sc.storage()
    secret: str | None = None
    if not no_encryption:
        secret = pp.resolve(passphrase_file or sc.passphrase_file)
        if secret is None:
            from kloset.config import CONFIG_NAME

            if storage.exists(CONFIG_NAME):  # say so before asking for a passphrase twice
                raise StoreExists(f"a store already exists at {storage.location}")
            secret = pp.prompt(confirm=True)
    kdf = None
    if kdf_memory_kib or kdf_iterations:
        kdf = KdfParams.fresh(memory_kib=kdf_memory_kib or 65536, iterations=kdf_iterations or 3)
    extra: dict[str, Any] = {"pack_size": pack_size} if pack_size else {}
    repo = Repository.create(
        storage,
        secret,
        encrypted=not no_encryption,
        compression_level=compression_level,
        kdf=kdf,
        **extra,
    )
    kind = "encrypted" if repo.config.encrypted else "unencrypted"
    o.out(f"created {kind} store {repo.config.store_id} at {storage.location}")


# -- ls -----------------------------------------------------------------------------------------
def _ls_snapshots(repo: Repository, as_json: bool, long: bool) -> None:
    snaps = repo.list_snapshots(on_error=lambda sid, exc: o.err(f"warning: {exc}"))
    if as_json:
        o.print_json([h.to_doc() for h in snaps])
        return
    if snaps:
        o.out(o.snapshots_table(snaps, long=long))


def _ls_path(
    repo: Repository, header: SnapshotHeader, path: str, as_json: bool, long: bool
) -> None:
    view = SnapshotView(repo, header)
    entry = view.stat(path)
    if entry.is_dir:
        base = path.rstrip("/")
        listing = [(f"{base}/{e.name}", e) for e in view.listdir(path)]
    else:
        listing = [(path, entry)]
    if as_json:
        o.print_json([o.entry_row(p, e) for p, e in listing])
        return
    if listing:
        o.out(o.listing_table([e for _p, e in listing], long=long))


@at_app.command("ls")
def ls(
    ctx: typer.Context,
    target: str | None = typer.Argument(None, metavar="[SNAP[:/path]]"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    long: bool = typer.Option(False, "--long", "-l", help="Full ids and exact sizes/times."),
) -> None:
    """List snapshots, or a directory inside one."""
    repo = store_ctx(ctx).open()
    if target is None:
        _ls_snapshots(repo, as_json, long)
        return
    header, path = _resolve(repo, target)
    _ls_path(repo, header, path or "/", as_json, long)


# -- cat ----------------------------------------------------------------------------------------
@at_app.command()
def cat(ctx: typer.Context, target: str = typer.Argument(..., metavar="SNAP:/path")) -> None:
    """Write a file's bytes to stdout, a few chunks at a time."""
    from kloset.fetch import fetch_blobs
    from kloset.restore.batch import WINDOW_CHUNKS

    repo = store_ctx(ctx).open()
    header, path = _resolve(repo, target)
    if path is None:
        raise PathNotFound("cat needs SNAP:/path (for example latest:/notes.txt)")
    entry = SnapshotView(repo, header).stat(path)
    if not entry.is_file:
        raise PathNotFound(f"{path} is a {entry.type}, not a regular file")
    sink = sys.stdout.buffer
    for start in range(0, len(entry.chunks), WINDOW_CHUNKS):
        window = entry.chunks[start : start + WINDOW_CHUNKS]
        blobs = fetch_blobs(repo, window)
        for cid in window:
            sink.write(blobs[cid])
    sink.flush()


# -- find / diff --------------------------------------------------------------------------------
@at_app.command()
def find(
    ctx: typer.Context,
    args: list[str] = typer.Argument(..., metavar="[SNAP[:/path]] PATTERN"),
    ignore_case: bool = typer.Option(False, "--ignore-case", "-i", help="Case-insensitive."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Find names matching a glob (paths, if the pattern has a '/') in all snapshots or one."""
    from kloset import query

    if len(args) > 2:
        raise typer.BadParameter("give at most SNAP and PATTERN")
    repo = store_ctx(ctx).open()
    pattern = args[-1]
    headers, path = None, "/"
    if len(args) == 2:
        header, sub = _resolve(repo, args[0])
        headers, path = [header], sub or "/"
    matches = query.find(repo, pattern, headers, path=path, ignore_case=ignore_case)
    if as_json:
        o.print_json([m.to_dict() for m in matches])
        return
    for m in matches:
        o.out(f"{m.snapshot[:12]}:{o.display_name(m.path)}{'/' if m.type == 'dir' else ''}")


@at_app.command()
def diff(
    ctx: typer.Context,
    old: str = typer.Argument(..., metavar="SNAP1[:/path]"),
    new: str = typer.Argument(..., metavar="SNAP2[:/path]"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Paths added (+), removed (-) and changed (M) from SNAP1 to SNAP2."""
    from kloset import query

    repo = store_ctx(ctx).open()
    h1, p1 = _resolve(repo, old)
    h2, p2 = _resolve(repo, new)
    result = query.diff(repo, h1, h2, p1 or "/", p2 or "/")
    if as_json:
        o.print_json(result.to_dict())
        return
    mark = {query.ADDED: "+", query.REMOVED: "-", query.CHANGED: "M"}
    for e in result.entries:
        line = f"{mark[e.kind]} {o.display_name(e.path)}{'/' if e.type == 'dir' else ''}"
        o.out(line + (f"  ({', '.join(e.reasons)})" if e.reasons else ""))
    n = (len(result.added), len(result.removed), len(result.changed))
    o.out(f"{n[0]} added, {n[1]} removed, {n[2]} changed")


# -- check / info / rm --------------------------------------------------------------------------
@at_app.command()
def check(
    ctx: typer.Context,
    snapshots: list[str] = typer.Argument(None, metavar="[SNAP...]"),
    read_data: bool = typer.Option(False, "--read-data", help="Read and verify every pack."),
    subset: str | None = typer.Option(
        None, "--read-data-subset", help="Read only n/m of the packs, or N% of them."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check the store's structure and, with --read-data, every byte of its packs."""
    from kloset.check import check_store
    from kloset.errors import CheckFailed

    repo = store_ctx(ctx).open()
    with ProgressReporter("check") as bar:
        rep = check_store(
            repo, read_data=read_data, subset=subset, snapshots=snapshots or None, progress=bar
        )
    for line in rep.warnings:
        o.err(f"warning: {line}")
    for line in rep.errors:
        o.err(line)
    for snap, paths in rep.affected.items():
        for p in paths:
            o.err(f"damaged in snapshot {snap[:12]}: {p}")
        more = rep.affected_counts.get(snap, 0) - len(paths)
        if more > 0:
            o.err(f"damaged in snapshot {snap[:12]}: ... and {more} more paths")
    if as_json:
        o.print_json(rep.to_dict())
    else:
        n = o.plural
        read = f", {n(rep.packs_read, 'pack')} read ({o.human_size(rep.bytes_read)})"
        o.out(
            f"checked {n(rep.snapshots, 'snapshot')}, {n(rep.trees, 'tree')}, "
            f"{n(rep.blobs, 'data blob')}, {n(rep.packs, 'pack')}"
            f"{read if rep.packs_read else ''}: "
            f"{'no errors' if rep.ok else n(len(rep.errors), 'error')}"
        )
    if not rep.ok:
        hit = sum(rep.affected_counts.values())
        raise CheckFailed(
            f"check failed: {o.plural(len(rep.damaged_packs), 'damaged pack')}, "
            f"{o.plural(hit, 'damaged path')} in {o.plural(len(rep.affected), 'snapshot')}"
        )


@at_app.command()
def info(
    ctx: typer.Context,
    target: str | None = typer.Argument(None, metavar="[SNAP]"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Store totals (sizes, dedup and compression ratios), or one snapshot's numbers."""
    from kloset import stats

    repo = store_ctx(ctx).open()
    if target is None:
        from kloset.leftovers import leftovers

        s = stats.store_stats(repo)
        left = leftovers(repo)  # of dead runs: the next backup adopts them, or prune removes
        if as_json:
            o.print_json({**s.to_dict(), "leftovers": left.to_dict()})
            return
        rows = [*o.store_info_rows(s), ("leftovers", left.describe())]
    else:
        header, _path = _resolve(repo, target)
        t = stats.snapshot_stats(repo, header)
        if as_json:
            o.print_json(t.to_dict())
            return
        rows = o.snapshot_info_rows(t)
    o.out(o.table(rows, header=False))


@at_app.command("rm")
def rm(
    ctx: typer.Context,
    targets: list[str] = typer.Argument(..., metavar="SNAP..."),
    as_json: bool = typer.Option(False, "--json", help="Print the removed ids as JSON."),
) -> None:
    """Delete snapshots (headers only: `prune` reclaims the data they alone used)."""
    repo = store_ctx(ctx).open()
    chosen: dict[bytes, SnapshotHeader] = {}
    for ref in targets:  # resolve all first: a typo must not leave half the list deleted
        header = repo.resolve_snapshot(ref)
        chosen.setdefault(header.id, header)
    from kloset.locks import store_lock

    with store_lock(repo, False, "rm"):  # a running prune finishes first
        for header in chosen.values():
            repo.delete_snapshot(header.id)
    if as_json:
        o.print_json({"removed": [h.hex for h in chosen.values()]})
        return
    for header in chosen.values():
        o.out(f"removed snapshot {header.hex}")
