"""Koofr path and name rules (normalisation, validation, autorename), free of any I/O.

Mirrors ``path_utils::normalize_path`` / ``name_utils`` of Koofr's fake server [C] so clients see
the same acceptance rules as on the real service.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from . import behaviour
from .errors import ApiError, invalid_name, invalid_path

_SLASHES = re.compile(r"/{2,}")
_BAD_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


def normalize_path(raw: str) -> str:
    """Collapse repeated ``/``, reject ``\\`` and ``.``/``..`` segments, strip a trailing ``/``
    and add a missing leading one; ``""`` means the root ``/``."""
    path = _SLASHES.sub("/", raw)
    if "\\" in path:
        raise invalid_path()
    if any(seg in (".", "..") for seg in path.split("/")):
        raise invalid_path()
    if path in ("", "/"):
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    if path.endswith("/"):
        path = path[:-1]
    return path


def validate_name(name: str) -> str:
    """A single file/dir name: non-empty, not ``.``/``..``, no ``/``, ``\\``, DEL or controls."""
    if not name or name in (".", ".."):
        raise invalid_name()
    if _BAD_NAME_CHARS.search(name):
        raise invalid_name()
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be stored
        raise invalid_name() from exc
    if len(encoded) > behaviour.MAX_NAME_BYTES:
        raise ApiError(400, "InvalidName", "Name too long")
    return name


def parts(path: str) -> list[str]:
    """Components of a normalised path (``/`` -> ``[]``)."""
    return [p for p in path.split("/") if p]


def split_parent_name(path: str) -> tuple[str, str]:
    """``/a/b`` -> (``/a``, ``b``); the root has no parent."""
    if path == "/":
        raise ValueError("root has no parent")
    parent, _, name = path.rpartition("/")
    return (parent or "/", name)


def join(parent: str, name: str) -> str:
    return ("/" if parent == "/" else parent + "/") + name


def fold_path(path: str) -> str:
    return "/".join(behaviour.fold_name(p) for p in path.split("/"))


def is_same_or_within(path: str, ancestor: str) -> bool:
    """Case-insensitive: is ``path`` equal to ``ancestor`` or below it?"""
    p, a = fold_path(path), fold_path(ancestor)
    if a == "/":
        return True
    return p == a or p.startswith(a + "/")


def split_ext(name: str) -> tuple[str, str | None]:
    """Base and extension after the *last* dot, as the fake's ``split_name_ext``."""
    idx = name.rfind(".")
    if idx < 0:
        return name, None
    return name[:idx], name[idx + 1 :]


def unused_name(name: str, exists: Callable[[str], bool]) -> str:
    """Autorename: ``name``, else ``base (1).ext``, ``base (2).ext``... (``a.tar (1).gz``)."""
    if not exists(name):
        return name
    base, ext = split_ext(name)
    i = 1
    while True:
        candidate = f"{base} ({i})" + (f".{ext}" if ext is not None else "")
        if not exists(candidate):
            return candidate
        i += 1
