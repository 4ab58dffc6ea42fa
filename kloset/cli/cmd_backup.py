"""`kloset at STORE backup SRC`: restic's backup options turned into `BackupOptions`, the
engine's backup run (`kloset.backup.pipeline.run_backup`), and its summary as text or JSON.

Everything that decides what the scan skips travels in `BackupOptions` as plain values, so the
Prefect flow passes the same options the same way; this module only reads the files named on
the command line and parses sizes.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import typer

from kloset.cli import output as o
from kloset.cli.app import at_app, store_ctx
from kloset.cli.cmd_store import EXIT_PARTIAL, _report_errors
from kloset.cli.jsonstatus import JsonStatus, backup_status
from kloset.cli.progress import ProgressReporter
from kloset.display import dedup_ratio, iso_time, parse_size
from kloset.errors import KlosetError

if TYPE_CHECKING:
    from kloset.backup.pipeline import BackupReport


def read_list_file(path: str, what: str) -> list[str]:
    """The lines of an `--exclude-file` or `--files-from` file (blank lines and `#` comments
    dropped, like restic's)."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            lines = [line.rstrip("\r\n") for line in fh]
    except OSError as exc:
        raise KlosetError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise KlosetError(f"cannot read {what} {path}: not UTF-8 text") from None
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def listed_paths(lines: list[str], root: str | None, path: str) -> list[str] | None:
    """`--files-from` lines as paths relative to the source root (None: the whole root).

    For a local SRC, absolute paths are absolute (they must lie inside SRC, as restic users
    write them) and relative ones are relative to SRC; for a remote SRC every line is relative
    to SRC, a leading `/` allowed. Nothing may climb out of SRC with `..`.
    """
    out: list[str] = []
    for line in lines:
        rel = line.strip()
        if root is not None and rel.startswith("/"):
            full = os.path.normpath(rel)
            if full != root and not full.startswith(root.rstrip("/") + "/"):
                raise KlosetError(f"--files-from {path}: {rel} is not inside {root}")
            rel = full[len(root) :]
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise KlosetError(f"--files-from {path}: {line.strip()} climbs out of the source")
        if not parts:
            return None  # the root itself: everything
        out.append("/".join(parts))
    if not out:
        raise KlosetError(f"--files-from {path} lists no paths")
    return out


def size_option(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise KlosetError(f"{option}: {exc}") from None


@at_app.command()
def backup(
    ctx: typer.Context,
    src: str = typer.Argument(
        ..., metavar="SRC", help="Folder: path, fsspec URL or @NAME[:/path]."
    ),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag the snapshot (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", "-x", help="Gitignore-like glob to skip."),
    exclude_file: list[str] = typer.Option(
        [], "--exclude-file", help="File of exclude globs (repeatable)."
    ),
    exclude_larger_than: str | None = typer.Option(
        None, "--exclude-larger-than", metavar="SIZE", help="Skip files larger than SIZE (100M)."
    ),
    files_from: list[str] = typer.Option(
        [], "--files-from", metavar="FILE", help="Back up only the paths listed in FILE."
    ),
    one_file_system: bool = typer.Option(
        False, "--one-file-system", help="Stay on SRC's file system (local folders)."
    ),
    force_read: bool = typer.Option(False, "--force-read", help="Re-read unchanged files too."),
    skip_if_unchanged: bool = typer.Option(
        False, "--skip-if-unchanged", help="No new snapshot if nothing changed since the parent."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", "-n", help="Read and chunk everything, write nothing to the store."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Parallel chunkers (default: CPUs)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Status lines while it runs, then a summary, as JSON."
    ),
) -> int:
    """Back up a folder; unchanged files (same path, size, mtime) are not read again."""
    from kloset.backup import BackupOptions
    from kloset.backup.pipeline import run_backup
    from kloset.locations import open_source

    excludes = list(exclude)
    for path in exclude_file:
        excludes += read_list_file(path, "exclude file")
    larger_than = size_option(exclude_larger_than, "--exclude-larger-than")
    listed = [(p, read_list_file(p, "--files-from file")) for p in files_from]
    repo = store_ctx(ctx).open()
    source = open_source(src)
    only: list[str] | None = None
    if listed:
        root = source.local_path("")
        per_file = [listed_paths(lines, root, path) for path, lines in listed]
        if all(paths is not None for paths in per_file):
            only = [rel for paths in per_file for rel in paths or []]
    options = BackupOptions(
        tags=list(tag),
        excludes=excludes,
        exclude_larger_than=larger_than,
        files_from=only,
        one_file_system=one_file_system,
        force_read=force_read,
        skip_if_unchanged=skip_if_unchanged,
        dry_run=dry_run,
    )
    bar = JsonStatus("backup", backup_status) if as_json else ProgressReporter("backup")
    with bar:
        report = run_backup(repo, source, options, workers=workers, progress=bar)
    summary = _summary(report, source.location)
    errors = report.commit.errors
    if isinstance(bar, JsonStatus):
        for item, message in errors:
            bar.error(item, message, "backup")
        bar.emit(summary)
        return EXIT_PARTIAL if errors else 0
    _report_errors(errors)
    o.out(o.backup_text(summary))
    if report.dry_run:
        o.out(f"dry run: no snapshot, nothing was written to {repo.storage.location}")
    elif report.commit.skipped:
        o.out(f"nothing changed since snapshot {report.commit.snapshot_id}: no new snapshot")
    else:
        o.out(f"snapshot {report.commit.snapshot_id} created")
    return EXIT_PARTIAL if errors else 0


def _summary(report: BackupReport, source: str) -> dict[str, Any]:
    """The backup's summary: the text table's numbers, and `--json`'s last line, which has
    restic's summary fields (message_type, files_unmodified, data_added, snapshot_id, ...)
    next to kloset's own."""
    st = report.commit.stats
    plan = report.plan
    errors = report.commit.errors
    started = int(time.time_ns() - report.duration * 1e9)
    return {
        "message_type": "summary",
        "dry_run": report.dry_run,
        "skipped": report.commit.skipped,
        "snapshot": report.commit.snapshot_id or None,
        "snapshot_id": report.commit.snapshot_id or None,
        "source": source,
        "parent": plan.parent,
        "files": st.get("files", 0),
        "files_read": st.get("files_read", 0),
        "files_unchanged": plan.files_reused,
        "files_unmodified": plan.files_reused,
        "dirs": st.get("dirs", 0),
        "symlinks": st.get("symlinks", 0),
        "bytes": st.get("bytes", 0),
        "bytes_read": st.get("bytes_read", 0),
        "bytes_added": st.get("bytes_added", 0),
        "data_blobs": st.get("chunks_new", 0),
        "tree_blobs": st.get("trees_new", 0),
        "data_added": st.get("bytes_new", 0),
        "data_added_packed": st.get("bytes_added", 0),
        "total_files_processed": st.get("files", 0),
        "total_bytes_processed": st.get("bytes", 0),
        "dedup_ratio": dedup_ratio(st),
        "errors": [{"path": p, "error": m} for p, m in errors],
        "duration": round(report.duration, 3),
        "total_duration": round(report.duration, 3),
        "backup_start": iso_time(started),
        "backup_end": iso_time(time.time_ns()),
    }
