"""Path spelling: fsspec style (``"Photos/a.jpg"``, root ``""``) vs Koofr's (``"/Photos/a.jpg"``).

Names are checked before they reach the wire because Koofr's answer to a bad name is a bare 400
that says nothing about which component was wrong, and because a backslash or ``..`` that slipped
through could address a different file than the user meant.
"""

from __future__ import annotations

import re

from koofrfs.errors import InvalidName

PROTOCOL = "koofr"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SLASHES = re.compile(r"/{2,}")


def validate_name(name: str) -> None:
    """Raise :class:`InvalidName` unless ``name`` is one acceptable Koofr path component.

    Koofr rejects empty names, ``.`` and ``..``, backslashes, DEL and every control character;
    everything else (spaces, ``%``, ``#``, ``?``, ``+``, quotes, emoji, any Unicode form) is fine.
    """
    if name in ("", ".", ".."):
        raise InvalidName(f"invalid Koofr name {name!r}: empty, '.' and '..' are not allowed")
    if "/" in name:
        raise InvalidName(f"invalid Koofr name {name!r}: a name cannot contain '/'")
    if "\\" in name:
        raise InvalidName(f"invalid Koofr name {name!r}: a name cannot contain a backslash")
    bad = _CONTROL.search(name)
    if bad:
        raise InvalidName(
            f"invalid Koofr name {name!r}: control character U+{ord(bad.group()):04X} not allowed"
        )


def strip_protocol(path: str) -> str:
    """Return the fsspec spelling: no protocol, no leading or trailing ``/``; root is ``""``."""
    text = str(path)
    for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}::"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return _SLASHES.sub("/", text).strip("/")


def to_koofr(path: str) -> str:
    """Return the absolute Koofr path (``"/"`` for the root) after validating every component."""
    stripped = strip_protocol(path)
    if not stripped:
        return "/"
    for part in stripped.split("/"):
        validate_name(part)
    return "/" + stripped


def split(path: str) -> tuple[str, str]:
    """Split an fsspec path into (parent, name); the parent of a top-level entry is ``""``."""
    stripped = strip_protocol(path)
    if "/" not in stripped:
        return "", stripped
    parent, name = stripped.rsplit("/", 1)
    return parent, name


def join(parent: str, name: str) -> str:
    """Join an fsspec parent path and a child name."""
    return f"{parent}/{name}" if parent else name


def is_within(path: str, ancestor: str) -> bool:
    """Whether fsspec path ``path`` is ``ancestor`` or lies below it (case-sensitive compare)."""
    if not ancestor:
        return True
    return path == ancestor or path.startswith(ancestor + "/")
