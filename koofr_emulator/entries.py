"""Value objects of the namespace: FileInfo (``Entry``) and upload conflict options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import conflict


@dataclass(frozen=True)
class Entry:
    """What Koofr calls FileInfo."""

    name: str
    is_dir: bool
    size: int
    modified: int
    md5: str | None
    content_type: str

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": "dir" if self.is_dir else "file",
            "modified": self.modified,
            "size": self.size,
            "contentType": self.content_type,
        }
        if not self.is_dir:  # the fake sends no hash for directories [C]
            doc["hash"] = self.md5
        doc["tags"] = {}
        return doc


@dataclass(frozen=True)
class PutOptions:
    """Conflict handling of ``files/put`` (fake's ``CreateFileConflictResolution``)."""

    autorename: bool = True
    overwrite: bool = False
    if_modified: int | None = None
    if_size: int | None = None
    if_hash: str | None = None
    ignore_nonexisting: bool = False
    modified: int | None = None

    @property
    def has_conditions(self) -> bool:
        return any(v is not None for v in (self.if_modified, self.if_size, self.if_hash))


def check_conditions(
    entry: Entry, size: int | None, modified: int | None, md5: str | None, verb: str
) -> None:
    """The ``*IfSize``/``*IfModified``/``*IfHash`` preconditions: 409 Conflict on mismatch."""
    if modified is not None and modified != entry.modified:
        raise conflict(f"{verb} if modified does not match")
    if size is not None and size != entry.size:
        raise conflict(f"{verb} if size does not match")
    if md5 is not None and md5 != entry.md5:
        raise conflict(f"{verb} if hash does not match")
