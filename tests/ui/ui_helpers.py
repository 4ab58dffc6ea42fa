"""Helpers shared by the viewer tests: reading a folder back, waiting for a restore job."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def folder_contents(root: Path) -> dict[str, bytes | str]:
    """relative path → file bytes, or "-> target" for a symlink, or "<dir>"; lstat semantics."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "-> " + os.readlink(full)
            elif full.is_dir():
                out[rel] = "<dir>"
            else:
                out[rel] = full.read_bytes()
    return out


def wait_for_job(get: Callable[[], dict[str, Any]], timeout: float = 30.0) -> dict[str, Any]:
    """Poll a job document until it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        doc = get()
        if doc["state"] in ("done", "failed"):
            return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"restore job still {doc['state']} after {timeout}s: {doc}")
        time.sleep(0.05)
