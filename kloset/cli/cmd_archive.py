"""`kloset at STORE archive SNAP[:/path] -o OUT`: a snapshot (or a folder or file in it) as one
portable `.tar`, `.tar.zst` or `.zip`, without restoring it to disk first.

The archive is the same stream the web viewer sends for downloads (`kloset.archive`): written
while the snapshot is read, a few MiB in memory whatever its size. A file OUT is written under
a temporary name and renamed when complete, so an interrupted export never leaves a truncated
archive that looks finished.
"""

from __future__ import annotations

import os
import sys
import time

import typer

from kloset.cli import output as o
from kloset.cli.app import at_app, store_ctx
from kloset.cli.progress import ProgressReporter
from kloset.errors import KlosetError

FORMATS = {".tar.zst": "tar.zst", ".tzst": "tar.zst", ".tar": "tar", ".zip": "zip"}


def archive_format(out: str, given: str | None) -> str:
    """The format from --format, else from OUT's extension (`-` means tar)."""
    if given is not None:
        if given not in FORMATS.values():
            raise KlosetError(f"unknown archive format '{given}' (use tar, tar.zst or zip)")
        return given
    if out == "-":
        return "tar"
    for ext, fmt in FORMATS.items():
        if out.lower().endswith(ext):
            return fmt
    raise KlosetError(
        f"cannot tell the archive format of '{out}': name it .tar, .tar.zst or .zip, "
        "or pass --format"
    )


@at_app.command("archive")
def archive_cmd(
    ctx: typer.Context,
    target: str = typer.Argument(..., metavar="SNAP[:/path]"),
    out: str = typer.Option(..., "-o", "--output", help="OUT.tar, OUT.tar.zst, OUT.zip, or -."),
    fmt: str | None = typer.Option(
        None, "--format", help="tar, tar.zst or zip (default: from OUT's name; tar for -)."
    ),
) -> None:
    """Export a snapshot, or a folder or file in it, as a .tar, .tar.zst or .zip stream."""
    from kloset import archive
    from kloset.cli.cmd_store import split_ref
    from kloset.vfs import SnapshotView

    if out != "-" and os.path.isdir(out):
        raise KlosetError(f"{out} is a directory: name the archive file to write")
    kind = archive_format(out, fmt)
    if out == "-" and sys.stdout.isatty():
        raise KlosetError("refusing to write an archive to a terminal (redirect it or use -o FILE)")
    repo = store_ctx(ctx).open()
    ref, path = split_ref(target)
    view = SnapshotView(repo, repo.resolve_snapshot(ref))
    view.stat(path or "/")  # a missing path fails before anything is written
    stats = archive.ArchiveStats()
    started = time.perf_counter()
    tmp = None
    if out == "-":
        sink = sys.stdout.buffer
    else:
        tmp = f"{out}.tmp-{os.getpid()}"
        sink = open(tmp, "wb")  # noqa: SIM115 - closed below, renamed only when complete
    try:
        with ProgressReporter("archive") as bar:
            for piece in archive.iter_archive(view, path or "/", kind, stats=stats):
                sink.write(piece)
                bar("read", {"bytes": len(piece)})
        sink.flush()
        if tmp is not None:
            os.fsync(sink.fileno())
            sink.close()
            os.replace(tmp, out)
            tmp = None
    finally:
        if tmp is not None:
            sink.close()
            os.unlink(tmp)
    n = o.plural
    where = "stdout" if out == "-" else out
    print(
        f"archived {n(stats.files, 'file')} ({o.human_size(stats.bytes)}), "
        f"{n(stats.dirs, 'dir')}, {n(stats.symlinks, 'symlink')} of {view.header.hex[:12]}:"
        f"{o.display_name(path or '/')} to {where} ({kind}) "
        f"in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
