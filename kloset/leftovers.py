"""Leftovers of killed runs and interrupted writes: `*.tmp` objects and spool directories.

A run that dies leaves half-written objects (named with a tmp mark) and its spool directory;
both are harmless to readers and removed once older than a grace period, so a run that is
merely slow is never robbed of its files.
"""

from __future__ import annotations

import os
import shutil

from kloset.repository import Repository, default_spool_dir
from kloset.storescan import TMP_MARK, list_objects


def _newest_mtime(path: str) -> float:
    newest = os.lstat(path).st_mtime
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


def clean_leftovers(
    repo: Repository, grace: float, now: float, *, dry_run: bool
) -> tuple[int, int]:
    """Remove spool leftovers of killed runs and interrupted writes older than the grace period."""
    removed = nbytes = 0
    for directory in ("index", "snapshots", "locks"):
        for obj in list_objects(repo.storage, directory):
            if TMP_MARK in obj.name and obj.older_than(grace, now):
                removed += 1
                nbytes += obj.size
                if not dry_run:
                    repo.storage.delete(obj.name)
    spool = repo.storage.path("tmp") if repo.storage.local else default_spool_dir(repo.storage)
    if not os.path.isdir(spool):
        return removed, nbytes
    for entry in os.scandir(spool):
        try:
            if now - _newest_mtime(entry.path) < grace:
                continue
            size = (
                sum(
                    os.lstat(os.path.join(d, f)).st_size
                    for d, _s, fs in os.walk(entry.path)
                    for f in fs
                )
                if entry.is_dir(follow_symlinks=False)
                else entry.stat(follow_symlinks=False).st_size
            )
        except FileNotFoundError:
            continue
        removed += 1
        nbytes += size
        if dry_run:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
    return removed, nbytes
