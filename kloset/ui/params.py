"""Request parameters shared by the API handlers: checked integers, normalised paths, the
snapshot named in the URL. Every path from the browser goes through `kloset.vfs.normalize`,
which can only name places inside a snapshot (a `..` never climbs above its root).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kloset.snapshot import SnapshotHeader
from kloset.ui.catalog import Catalog
from kloset.vfs import normalize


class BadRequest(Exception):
    """A parameter the API cannot accept; answered with 400 and the message."""


def int_param(request: Request, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
    """Query parameter `name` as an integer within [lo, hi], or `default` when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise BadRequest(f"{name} must be between {lo} and {hi if hi is not None else 'any'}")
    return value


def path_param(request: Request) -> str:
    """The `path` query parameter as a normalised snapshot path (`/` when absent)."""
    raw = request.query_params.get("path", "/")
    if "\x00" in raw:
        raise BadRequest("path may not contain NUL")
    return normalize(raw)


def catalog(request: Request) -> Catalog:
    """The app's snapshot catalogue."""
    return request.app.state.catalog  # type: ignore[no-any-return]


async def snapshot_header(request: Request) -> SnapshotHeader:
    """The snapshot named by the URL's `{snap}` (full id, 4+ hex prefix or `latest`)."""
    return await run_in_threadpool(catalog(request).get, request.path_params["snap"])
