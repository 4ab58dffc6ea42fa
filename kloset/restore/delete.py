"""`restore --delete`: remove what the target holds and the snapshot does not, so that after the
restore the target equals the snapshot.

Only a local target, and only below it: the walk opens every folder relative to its parent's
descriptor with O_NOFOLLOW, so a symlink in the target (or one swapped in while we walk) is
removed as a link, never followed out. Paths the restore's `--include`/`--exclude` leave out are
left alone, and so is a folder that still holds them. An entry of the wrong type (a file where
the snapshot has a folder) is removed so the restore can put the right one there.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from kloset.tree import DIR, FILE, SYMLINK

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass
class DeleteResult:
    deleted: list[str] = field(default_factory=list)  # target-relative, folders end in /
    errors: list[tuple[str, str]] = field(default_factory=list)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    return FILE  # regular files, and anything else (fifos, sockets) that does not belong


def remove_extras(
    root: str,
    keep: dict[str, str],
    covers: Callable[[str, bool], bool],
    *,
    dry_run: bool = False,
) -> DeleteResult:
    """Delete every entry below `root` whose target-relative path is not in `keep` (path →
    type the restore puts there) and that `covers(path, is_dir)` says the restore owns."""
    result = DeleteResult()
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return result  # a new target: nothing to delete
    try:
        _clean(fd, "", keep, covers, dry_run, result)
    finally:
        os.close(fd)
    return result


def _clean(
    fd: int,
    rel: str,
    keep: dict[str, str],
    covers: Callable[[str, bool], bool],
    dry_run: bool,
    result: DeleteResult,
) -> bool:
    """Clean the folder open as `fd`; True when everything in it is (or would be) gone."""
    emptied = True
    with os.scandir(fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for de in entries:
        path = f"{rel}/{de.name}" if rel else de.name
        try:
            kind = _kind(de.stat(follow_symlinks=False).st_mode)
        except FileNotFoundError:
            continue
        wanted = keep.get(path)
        if kind == DIR:
            try:
                sub = os.open(de.name, _OPEN_DIR, dir_fd=fd)
            except OSError as exc:  # replaced by a link meanwhile, or unreadable
                result.errors.append(("/" + path, f"cannot clean folder: {exc.strerror}"))
                emptied = False
                continue
            try:
                inner_empty = _clean(sub, path, keep, covers, dry_run, result)
            finally:
                os.close(sub)
            if wanted == DIR or not covers(path, True):
                emptied = False
                continue
            if not inner_empty:
                emptied = False
                if wanted is not None:
                    why = "it holds paths this restore leaves alone"
                    result.errors.append(("/" + path, f"cannot replace folder: {why}"))
                continue
            result.deleted.append(path + "/")
            if not dry_run:
                try:
                    os.rmdir(de.name, dir_fd=fd)
                except OSError as exc:
                    result.errors.append(("/" + path, f"cannot delete: {exc.strerror}"))
                    emptied = False
            continue
        if wanted == kind or not covers(path, False):
            emptied = False
            continue
        result.deleted.append(path)
        if not dry_run:
            try:
                os.unlink(de.name, dir_fd=fd)
            except OSError as exc:
                result.errors.append(("/" + path, f"cannot delete: {exc.strerror}"))
                emptied = False
    return emptied
