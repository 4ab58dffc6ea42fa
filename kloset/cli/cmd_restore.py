"""`kloset at STORE restore -to DIR SNAP[:/path]`: the engine's restore (`kloset.restore`) with
restic's options: `--include`/`--exclude`, `--dry-run`, `--verify`, `--delete`, `--json`."""

from __future__ import annotations

import typer

from kloset.cli import output as o
from kloset.cli.app import at_app, store_ctx
from kloset.cli.cmd_store import EXIT_PARTIAL, _report_errors, _resolve
from kloset.cli.progress import ProgressReporter


@at_app.command()
def restore(
    ctx: typer.Context,
    target: str = typer.Argument(..., metavar="SNAP[:/path]"),
    to: str = typer.Option(..., "-to", "--to", help="Destination: folder, fsspec URL or @NAME."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files that differ."),
    include: list[str] = typer.Option(
        [], "--include", help="Restore only paths matching this glob (repeatable)."
    ),
    exclude: list[str] = typer.Option(
        [], "--exclude", "-x", help="Do not restore paths matching this glob (repeatable)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", "-n", help="Show what would be written and deleted; change nothing."
    ),
    verify: bool = typer.Option(False, "--verify", help="Read back every file written."),
    delete: bool = typer.Option(
        False, "--delete", help="Delete what the target has and the snapshot does not (local)."
    ),
    threads: int = typer.Option(8, "--threads", help="Files written in parallel."),
    as_json: bool = typer.Option(False, "--json", help="Status and summary as JSON lines."),
) -> int:
    """Restore a snapshot (or a path in it) into a folder; identical files are skipped."""
    from kloset.cli.jsonstatus import JsonStatus, restore_status
    from kloset.locations import open_destination
    from kloset.restore import run_restore
    from kloset.restore.select import Selection

    repo = store_ctx(ctx).open()
    header, path = _resolve(repo, target)
    dest = open_destination(to, create=not dry_run)
    select = Selection(list(include), list(exclude))
    bar = JsonStatus("restore", restore_status) if as_json else ProgressReporter("restore")
    with bar:
        rep = run_restore(
            repo,
            header,
            path or "/",
            dest,
            overwrite=overwrite,
            threads=threads,
            progress=bar,
            select=select or None,
            delete=delete,
            dry_run=dry_run,
            verify=verify,
        )
    if isinstance(bar, JsonStatus):
        for item, message in rep.errors:
            bar.error(item, message, "restore")
        bar.emit(
            {
                "message_type": "summary",
                "dry_run": dry_run,
                "seconds_elapsed": int(rep.duration),
                "total_files": rep.plan.files,
                "files_restored": rep.files_written,
                "files_skipped": rep.files_skipped,
                "files_deleted": len(rep.deleted),
                "total_bytes": rep.plan.bytes,
                "bytes_restored": rep.bytes_written,
                "bytes_skipped": rep.bytes_skipped,
                "dirs": rep.plan.dirs,
                "symlinks": rep.symlinks,
                "errors": len(rep.errors),
                "files_verified": rep.verified.files_checked if rep.verified else None,
                "snapshot": header.hex,
                "target": dest.location,
                "duration": round(rep.duration, 3),
            }
        )
        return EXIT_PARTIAL if rep.errors else 0
    would = "would " if dry_run else ""
    for rel in rep.deleted:
        o.out(f"{would}delete /{o.display_name(rel)}")
    _report_errors(rep.errors)
    n = o.plural
    gone = "to delete" if dry_run else "deleted"
    deleted = f"{n(len(rep.deleted), 'path')} {gone}, " if delete else ""
    o.out(
        f"{'would restore' if dry_run else 'restored'} {n(rep.files_written, 'file')} "
        f"({o.human_size(rep.bytes_written)}), {n(rep.plan.dirs, 'dir')}, "
        f"{n(rep.symlinks, 'symlink')} to {dest.location}; "
        f"{n(rep.files_skipped, 'identical file')} skipped, {deleted}"
        f"{n(len(rep.errors), 'error')} in {rep.duration:.1f} s"
    )
    if rep.verified is not None:
        v = rep.verified
        o.out(
            f"verified {n(v.files_checked, 'file')} ({o.human_size(v.bytes_checked)}): "
            + ("all match what was restored" if not v.errors else n(len(v.errors), "mismatch"))
        )
    return EXIT_PARTIAL if rep.errors else 0
