"""`kloset at STORE rewrite --exclude PATTERN [SNAP…] [--dry-run]`: remove paths from existing
snapshots (see `kloset.rewrite`)."""

from __future__ import annotations

import typer

from kloset.cli import output as o
from kloset.cli.app import at_app, store_ctx
from kloset.snapshot import SnapshotHeader


@at_app.command("rewrite")
def rewrite_cmd(
    ctx: typer.Context,
    snapshots: list[str] = typer.Argument(None, metavar="[SNAP...]"),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Gitignore-like glob of paths to remove (repeatable)."
    ),
    exclude_file: str | None = typer.Option(None, "--exclude-file", help="File of globs."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be removed."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Remove paths from snapshots: new ids, old snapshots forgotten, prune reclaims the data."""
    from kloset.cli.cmd_backup import read_list_file
    from kloset.rewrite import RewriteResult, rewrite_snapshots

    patterns = list(exclude)
    if exclude_file:
        patterns += read_list_file(exclude_file, "exclude file")
    repo = store_ctx(ctx).open()
    chosen: dict[bytes, SnapshotHeader] = {}
    if snapshots:
        for ref in snapshots:  # all resolved first: a typo must not leave half of them done
            header = repo.resolve_snapshot(ref)
            chosen.setdefault(header.id, header)
    else:
        chosen = {h.id: h for h in repo.list_snapshots()}

    def show(result: RewriteResult) -> None:
        if as_json:
            return
        old = result.old[:12]
        for path in result.removed:
            o.out(f"{'would remove' if dry_run else 'removed'} {old}:{o.display_name(path)}")
        if not result.removed:
            o.out(f"unchanged {old}")
        elif dry_run:
            o.out(
                f"would rewrite {old}: {o.plural(len(result.removed), 'path')}, "
                f"{o.plural(result.files_removed, 'file')} ({o.human_size(result.bytes_removed)})"
            )
        else:
            o.out(f"rewrote {old} as {result.new}")

    results = rewrite_snapshots(
        repo, list(chosen.values()), patterns, dry_run=dry_run, on_result=show
    )
    changed = [r for r in results if r.removed]
    if as_json:
        o.print_json({"dry_run": dry_run, "snapshots": [r.to_dict() for r in results]})
        return
    verb = "would rewrite" if dry_run else "rewrote"
    o.out(
        f"{verb} {o.plural(len(changed), 'snapshot')} of {len(results)}"
        + ("" if dry_run or not changed else "; run prune to reclaim the space")
    )
