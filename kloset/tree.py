"""Directory trees: content-addressed blobs listing a directory's entries.

A tree blob is msgpack ``{"v": 1, "e": [entry...]}`` with entries sorted by name, or, for very
large directories, ``{"v": 1, "pages": [[first_name, count, tree_id], ...]}`` whose pages are
ordinary trees, so a million-entry folder can be listed a page at a time. Because trees are
addressed by the hash of their content, an unchanged subtree has the same id in every snapshot.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

import msgpack

from kloset.errors import CorruptObject

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
_TYPE_CODE = {FILE: 0, DIR: 1, SYMLINK: 2}
_CODE_TYPE = {v: k for k, v in _TYPE_CODE.items()}

PAGE_SIZE = 4096


@dataclass
class Entry:
    """One name in a directory, as recorded in a snapshot."""

    name: str
    type: str
    mode: int = 0
    mtime_ns: int = 0
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)
    subtree: bytes | None = None
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        return self.type == DIR

    @property
    def is_file(self) -> bool:
        return self.type == FILE

    @property
    def is_symlink(self) -> bool:
        return self.type == SYMLINK

    def permissions(self) -> int:
        return stat.S_IMODE(self.mode)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "n": _name_out(self.name),
            "t": _TYPE_CODE[self.type],
            "m": self.mode,
            "mt": self.mtime_ns,
        }
        if self.type == FILE:
            obj["s"] = self.size
            obj["c"] = self.chunks
        elif self.type == DIR:
            obj["sub"] = self.subtree
        else:
            obj["l"] = _name_out(self.target or "")
        if self.extra:
            obj["x"] = self.extra
        return obj

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Entry:
        etype = _CODE_TYPE[obj["t"]]
        target = obj.get("l")
        return cls(
            name=_name_in(obj["n"]),
            type=etype,
            mode=int(obj.get("m", 0)),
            mtime_ns=int(obj.get("mt", 0)),
            size=int(obj.get("s", 0)),
            chunks=list(obj.get("c") or []),
            subtree=obj.get("sub"),
            target=_name_in(target) if target is not None else None,
            extra=dict(obj.get("x") or {}),
        )


def _name_out(name: str) -> str | bytes:
    """Names that are not valid UTF-8 on disk (surrogate-escaped) are kept as raw bytes."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name)


def _name_in(raw: str | bytes) -> str:
    return os.fsdecode(raw) if isinstance(raw, bytes) else raw


@dataclass
class TreeNode:
    """A decoded tree blob: either entries, or pages of a large directory."""

    entries: list[Entry] | None = None
    pages: list[tuple[str, int, bytes]] | None = None

    @property
    def count(self) -> int:
        if self.entries is not None:
            return len(self.entries)
        return sum(p[1] for p in self.pages or [])


def encode_entries(entries: list[Entry]) -> bytes:
    return msgpack.packb({"v": 1, "e": [e.to_obj() for e in entries]})


def encode_pages(pages: list[tuple[str, int, bytes]]) -> bytes:
    return msgpack.packb({"v": 1, "pages": [[_name_out(n), c, t] for n, c, t in pages]})


def _valid_id(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == 32


def _check_entry(e: Entry) -> Entry:
    """Refuse well-formed msgpack with wrong contents: in an unencrypted store anyone can
    write a tree with a valid id, and readers must fail with a clear error, not a TypeError."""
    ints = (e.mode, e.mtime_ns, e.size)
    if not isinstance(e.name, str) or not all(type(i) is int for i in ints) or e.size < 0:
        raise ValueError("bad entry fields")
    # map() keeps this check off the per-call Python path: trees are decoded on every backup.
    chunks = e.chunks
    if chunks and (not all(map(bytes.__instancecheck__, chunks)) or set(map(len, chunks)) != {32}):
        raise ValueError("bad chunk id")
    is_dir = e.type == DIR
    if is_dir != (e.subtree is not None) or (is_dir and not _valid_id(e.subtree)):
        raise ValueError("bad subtree id")
    if e.type == SYMLINK and not isinstance(e.target, str):
        raise ValueError("bad symlink target")
    if not all(isinstance(k, str) for k in e.extra):
        raise ValueError("bad extra fields")
    return e


def decode_tree(raw: bytes, what: str) -> TreeNode:
    try:
        doc = msgpack.unpackb(raw)
        if "pages" in doc:
            pages = [(_name_in(n), c, t) for n, c, t in doc["pages"]]
            if not all(isinstance(n, str) and type(c) is int and _valid_id(t) for n, c, t in pages):
                raise ValueError("bad page")
            return TreeNode(pages=pages)
        return TreeNode(entries=[_check_entry(Entry.from_obj(o)) for o in doc["e"]])
    except Exception as exc:  # noqa: BLE001
        raise CorruptObject(f"{what}: tree is damaged ({exc})") from exc


def sort_key(entry: Entry) -> str:
    return entry.name
