"""A block *or* a plain string, turned into the engine's source, destination or storage.

Flows take ``source``, ``target`` and ``store`` either as a `KoofrStorage` block or as the same
strings the CLI accepts (a local path, an fsspec URL, ``@NAME[:/sub]``). This module is the one
place that makes the two spellings equivalent, so blocks, tasks and flows agree on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks.koofr import KoofrStorage

if TYPE_CHECKING:
    from kloset.destination import Destination
    from kloset.source import Source
    from kloset.storage import Storage

Location = str | KoofrStorage


def label(value: Location) -> str:
    """The location as recorded in snapshots: stable across runs, never a secret."""
    if isinstance(value, KoofrStorage):
        return value.location_label()
    from kloset.locations import canonical

    return canonical(value)


def touches_koofr(value: Location) -> bool:
    """Whether using this location sends requests to Koofr (for the ``koofr`` task tag)."""
    if isinstance(value, KoofrStorage):
        return True
    return value.startswith(("@", "koofr://", "koofr:"))


def open_source(value: Location) -> Source:
    """What a backup reads from ``value``."""
    if isinstance(value, KoofrStorage):
        from kloset.errors import LocationError
        from kloset.source import FsspecSource

        fs, root = value.fs_and_root()
        try:
            info = fs.info(root or "/")
        except FileNotFoundError as exc:
            raise LocationError(f"source {value.location_label()} does not exist") from exc
        if info.get("type") != "directory":
            raise LocationError(f"source {value.location_label()} is not a directory")
        return FsspecSource(fs, root, value.location_label())
    from kloset.locations import open_source as engine_open_source

    return engine_open_source(value)


def open_destination(value: Location) -> Destination:
    """Where a restore writes for ``value``."""
    if isinstance(value, KoofrStorage):
        from kloset.destination import FsspecDestination

        fs, root = value.fs_and_root()
        if root:
            fs.makedirs(root, exist_ok=True)
        return FsspecDestination(fs, root, value.location_label())
    from kloset.locations import open_destination as engine_open_destination

    return engine_open_destination(value)


def open_storage(value: Location) -> Storage:
    """The store's backend for ``value``."""
    if isinstance(value, KoofrStorage):
        from kloset.storage import Storage

        fs, root = value.fs_and_root()
        return Storage(fs, root)
    from kloset.locations import open_storage as engine_open_storage

    return engine_open_storage(value)
