"""Koofr FileInfo as fsspec info: the entry shape every listing, ``info`` and tree gives.

Entries carry fsspec's ``name``/``size``/``type`` plus Koofr's extras: ``mtime`` (seconds, for
fsspec tools), ``modified`` (Koofr's exact milliseconds), ``md5`` (files) and ``content_type``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from koofrfs.mounts import Mount
from koofrfs.paths import join


def to_entry(parent: str, item: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The fsspec entry of FileInfo ``item`` listed in folder ``parent`` (or named ``name``)."""
    is_dir = item.get("type") == "dir"
    modified = int(item.get("modified") or 0)
    if name is None:
        name = join(parent, item["name"]) if item.get("name") else parent
    entry: dict[str, Any] = {
        "name": name,
        "size": 0 if is_dir else int(item.get("size") or 0),
        "type": "directory" if is_dir else "file",
        "mtime": modified / 1000.0,
        "modified": modified,
        "content_type": item.get("contentType") or "",
    }
    if not is_dir:
        entry["md5"] = item.get("hash") or None
    if item.get("tags"):
        entry["tags"] = item["tags"]
    return entry


def mount_entry(folder: str, mount: Mount) -> dict[str, Any]:
    """A mount shown as a folder of the whole-account view (``mount="*"``)."""
    return {
        "name": folder,
        "size": 0,
        "type": "directory",
        "mtime": 0.0,
        "modified": 0,
        "content_type": "",
        "mount": {"id": mount.id, "name": mount.name, "type": mount.type, "origin": mount.origin},
    }


def tree_listings(base: str, doc: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(folder, entries)`` for every folder of a ``files/tree`` answer rooted at ``base``."""
    stack = [(base, doc)]
    while stack:
        folder, node = stack.pop()
        if node.get("type") != "dir":
            continue
        children = node.get("children") or []
        yield folder, [to_entry(folder, child) for child in children]
        stack.extend((join(folder, c["name"]), c) for c in children if c.get("type") == "dir")
