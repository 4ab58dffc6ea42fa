"""Turns what users type (a path, an fsspec URL, `@NAME[:/sub]`) into a filesystem and a root."""

from __future__ import annotations

import os
from typing import Literal

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from kloset.destination import Destination, FsspecDestination, LocalDestination
from kloset.errors import LocationError
from kloset.source import FsspecSource, LocalSource, Source
from kloset.storage import Storage

Role = Literal["source", "destination", "store"]


def resolve(location: str, role: Role) -> tuple[AbstractFileSystem, str]:
    """(filesystem, root path inside it) for a location string."""
    if not location:
        raise LocationError(f"empty {role} location")
    if location.startswith("@"):
        from kloset import remotes  # local import: remotes pulls in the Koofr client

        ref = remotes.parse_at_location(location)
        if ref is None:
            raise LocationError(
                f"bad remote reference '{location}' (use @NAME, @NAME:/path or @NAME/MOUNT:/path)"
            )
        try:
            fs, base = remotes.remote_filesystem(ref.name, role, ref.mount)
        except ValueError as exc:  # options koofrfs refuses, e.g. a malformed endpoint
            raise LocationError(f"cannot use {role} '{location}': {exc}") from exc
        root = "/".join(p for p in (base.strip("/"), ref.path) if p)
        return fs, root
    if "://" in location or location.startswith("memory:"):
        try:
            fs, root = fsspec.core.url_to_fs(location)
        except (ImportError, ValueError) as exc:
            raise LocationError(f"cannot use {role} '{location}': {exc}") from exc
        if isinstance(fs, LocalFileSystem):
            return fs, os.path.abspath(root)
        return fs, root
    return LocalFileSystem(), os.path.abspath(os.path.expanduser(location))


def open_storage(location: str) -> Storage:
    fs, root = resolve(location, "store")
    return Storage(fs, root)


def open_source(location: str) -> Source:
    fs, root = resolve(location, "source")
    if isinstance(fs, LocalFileSystem):
        if not os.path.exists(root):
            raise LocationError(f"source {location} does not exist")
        if not os.path.isdir(root):
            raise LocationError(f"source {location} is not a directory")
        return LocalSource(root)
    try:
        info = fs.info(root or "/")
    except FileNotFoundError as exc:
        raise LocationError(f"source {location} does not exist") from exc
    except Exception as exc:  # noqa: BLE001 - backend errors are one line for the user
        raise LocationError(f"cannot reach source {location}: {exc}") from exc
    if info.get("type") != "directory":
        raise LocationError(f"source {location} is not a directory")
    return FsspecSource(fs, root, location, info)


def open_destination(location: str, *, create: bool = True) -> Destination:
    """Where a restore writes: a local directory (created as needed, unless `create` is false:
    a dry run) or any fsspec location."""
    fs, root = resolve(location, "destination")
    if isinstance(fs, LocalFileSystem):
        if os.path.exists(root) and not os.path.isdir(root):
            raise LocationError(f"restore target {location} exists and is not a directory")
        return LocalDestination(root, create=create)
    return FsspecDestination(fs, root, location)


def canonical(location: str) -> str:
    """The string recorded in snapshots: absolute for local paths, verbatim otherwise."""
    if location.startswith("@") or "://" in location or location.startswith("memory:"):
        return location
    return os.path.abspath(os.path.expanduser(location))
