"""The JSON API under `/api/` (documented in docs/UI.md).

Every handler is a thin shell: parse and check parameters, run the engine call in the
threadpool (the engine blocks on storage reads, and a remote store may take seconds), shape
the answer. Downloads live in `kloset.ui.downloads`, parameter checks in `kloset.ui.params`.
"""

from __future__ import annotations

import stat
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kloset.display import iso_time
from kloset.errors import PathNotFound
from kloset.query import diff, find
from kloset.tree import Entry
from kloset.ui import preview
from kloset.ui.catalog import SORT_KEYS
from kloset.ui.downloads import download_archive, raw
from kloset.ui.jobs import JobManager
from kloset.ui.params import (
    BadRequest,
    catalog,
    int_param,
    path_param,
    snapshot_header,
)
from kloset.vfs import SnapshotView, normalize

MAX_LIST = 1000
MAX_RESULTS = 5000
SEARCH_BATCH = 16  # snapshots per find() call: shares its subtree memo, bounds its memory


def entry_doc(path: str, e: Entry) -> dict[str, Any]:
    """The JSON shape of a tree entry."""
    mode = e.mode or (stat.S_IFDIR | 0o755 if e.is_dir else stat.S_IFREG | 0o644)
    return {
        "name": e.name,
        "path": path,
        "type": e.type,
        "size": e.size if e.is_file else None,
        "mtime": iso_time(e.mtime_ns) if e.mtime_ns else None,
        "mtime_ns": e.mtime_ns,
        "mode": stat.filemode(mode),
        "target": e.target,
        "md5": e.extra.get("md5") if e.extra else None,
    }


def _child(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


async def info(request: Request) -> Response:
    """`GET /api/info`: the store, its restore targets and the server's limits."""
    state = request.app.state
    repo = state.repo
    return JSONResponse(
        {
            "store": repo.storage.location,
            "store_id": repo.config.store_id,
            "encrypted": repo.cipher.encrypted,
            "targets": [t.doc() for t in state.jobs.targets.values()],
            "limits": {
                "list": MAX_LIST,
                "text_preview": preview.TEXT_LIMIT,
                "hex_preview": preview.HEX_LIMIT,
            },
        }
    )


async def snapshots(request: Request) -> Response:
    """`GET /api/snapshots`: one sorted, filtered page of the snapshot list."""
    sort = request.query_params.get("sort", "time")
    order = request.query_params.get("order", "desc")
    if sort not in SORT_KEYS:
        raise BadRequest(f"sort must be one of {', '.join(SORT_KEYS)}")
    if order not in ("asc", "desc"):
        raise BadRequest("order must be asc or desc")
    page = await run_in_threadpool(
        catalog(request).page,
        sort=sort,
        order=order,
        offset=int_param(request, "offset", 0),
        limit=int_param(request, "limit", 50, 1, MAX_LIST),
        query=request.query_params.get("q", ""),
    )
    return JSONResponse(page)


async def snapshot(request: Request) -> Response:
    """`GET /api/snapshots/{snap}`: one snapshot's header, with its full stats."""
    h = await snapshot_header(request)
    doc = h.to_doc()
    doc["stats"] = h.stats
    return JSONResponse(doc)


async def snapshot_errors(request: Request) -> Response:
    """`GET /api/snapshots/{snap}/errors`: the read errors the backup recorded, paged."""
    h = await snapshot_header(request)
    offset, limit = int_param(request, "offset", 0), int_param(request, "limit", 100, 1, MAX_LIST)
    items = [{"path": p, "error": m} for p, m in h.errors[offset : offset + limit]]
    total = max(h.errors_total, len(h.errors))
    return JSONResponse(
        {
            "snapshot": h.hex,
            "total": total,
            "stored": len(h.errors),
            "offset": offset,
            "items": items,
        }
    )


async def tree(request: Request) -> Response:
    """`GET /api/snapshots/{snap}/tree`: stat a path and, for a folder, one window of it
    (only the tree pages covering the window are read, so huge folders stay cheap)."""
    h = await snapshot_header(request)
    path = path_param(request)
    offset, limit = int_param(request, "offset", 0), int_param(request, "limit", 200, 1, MAX_LIST)
    view = SnapshotView(request.app.state.repo, h)

    def work() -> dict[str, Any]:
        entry = view.stat(path)
        doc: dict[str, Any] = {"snapshot": h.hex, "path": path, "entry": entry_doc(path, entry)}
        if entry.is_dir:
            doc["total"] = view.count(path)
            doc["offset"] = offset
            doc["entries"] = [
                entry_doc(_child(path, e.name), e) for e in view.listdir(path, offset, limit)
            ]
        return doc

    return JSONResponse(await run_in_threadpool(work))


def _file_urls(snap: str, path: str) -> dict[str, str]:
    base = f"/api/snapshots/{snap}/raw?path={quote(path, safe='')}"
    return {"raw_url": base, "download_url": base + "&download=1"}


async def preview_file(request: Request) -> Response:
    """`GET /api/snapshots/{snap}/preview`: type, capped text or hex of a file's head."""
    h = await snapshot_header(request)
    path = path_param(request)
    repo = request.app.state.repo
    view = SnapshotView(repo, h)

    def work() -> dict[str, Any]:
        entry = view.stat(path)
        if not entry.is_file:
            raise BadRequest(f"{path} is not a regular file")
        doc = preview.build_preview(repo, entry)
        doc.update(
            snapshot=h.hex, path=path, entry=entry_doc(path, entry), **_file_urls(h.hex, path)
        )
        return doc

    return JSONResponse(await run_in_threadpool(work))


async def search(request: Request) -> Response:
    """`GET /api/search`: glob over one or all snapshots, newest first, capped at `limit`."""
    pattern = request.query_params.get("pattern", "").strip()
    if not pattern:
        raise BadRequest("pattern is required")
    which = request.query_params.get("snapshot", "all").strip() or "all"
    path = path_param(request)
    icase = request.query_params.get("icase") in ("1", "true", "yes")
    limit = int_param(request, "limit", 500, 1, MAX_RESULTS)
    cat = catalog(request)
    repo = request.app.state.repo

    def work() -> dict[str, Any]:
        headers = cat.headers()[::-1] if which == "all" else [cat.get(which)]
        if path != "/":
            headers = [h for h in headers if _has_path(SnapshotView(repo, h), path)]
        times = {h.hex: h.time_ns for h in headers}
        results: list[dict[str, Any]] = []
        searched = 0
        for i in range(0, len(headers), SEARCH_BATCH):
            batch = headers[i : i + SEARCH_BATCH]
            for m in find(repo, pattern, batch, path=path, ignore_case=icase):
                doc = m.to_dict()
                doc["mtime"] = iso_time(m.mtime_ns) if m.mtime_ns else None
                doc["snapshot_time"] = iso_time(times[m.snapshot])
                results.append(doc)
            searched += len(batch)
            if len(results) >= limit:
                break
        return {
            "pattern": pattern,
            "path": path,
            "snapshots_searched": searched,
            "snapshots_total": len(headers),
            "truncated": len(results) > limit or searched < len(headers),
            "items": results[:limit],
        }

    return JSONResponse(await run_in_threadpool(work))


def _has_path(view: SnapshotView, path: str) -> bool:
    try:
        view.stat(path)
        return True
    except PathNotFound:
        return False


async def diff_snapshots(request: Request) -> Response:
    """`GET /api/diff`: added, removed and changed paths between two snapshots."""
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    if not a or not b:
        raise BadRequest("a and b (snapshot ids) are required")
    path = path_param(request)
    limit = int_param(request, "limit", 2000, 1, 50000)
    cat = catalog(request)
    repo = request.app.state.repo

    def work() -> dict[str, Any]:
        old, new = cat.get(a), cat.get(b)
        result = diff(repo, old, new, path, path)
        doc = result.to_dict()
        counts = {k: len(doc[k]) for k in ("added", "removed", "changed")}
        for k in counts:
            doc[k] = doc[k][:limit]
        doc.update(
            counts=counts,
            truncated=any(n > limit for n in counts.values()),
            trees_compared=result.trees_compared,
            trees_skipped=result.trees_skipped,
            old_time=iso_time(old.time_ns),
            new_time=iso_time(new.time_ns),
        )
        return doc

    return JSONResponse(await run_in_threadpool(work))


async def targets(request: Request) -> Response:
    """`GET /api/targets`: where restores may write (configured on the command line)."""
    jobs: JobManager = request.app.state.jobs
    return JSONResponse({"items": [t.doc() for t in jobs.targets.values()]})


async def restore(request: Request) -> Response:
    """`POST /api/restore`: check the request, start a restore job, answer 202 with it."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    snap, target = str(body.get("snapshot", "")), str(body.get("target", ""))
    path, subdir = str(body.get("path", "/")), str(body.get("subdir", "") or "")
    if not snap or not target:
        raise BadRequest("snapshot and target are required")
    if "\x00" in path or "\x00" in subdir:
        raise BadRequest("paths may not contain NUL")
    jobs: JobManager = request.app.state.jobs
    header = await run_in_threadpool(catalog(request).get, snap)
    view = SnapshotView(request.app.state.repo, header)
    await run_in_threadpool(view.stat, normalize(path))  # 404 now rather than a failed job
    job = await run_in_threadpool(
        jobs.start, header, path, target, subdir, bool(body.get("overwrite"))
    )
    return JSONResponse(job.doc(), status_code=202)


async def job_list(request: Request) -> Response:
    """`GET /api/jobs`: recent restore jobs, newest first."""
    return JSONResponse({"items": request.app.state.jobs.list()})


async def job(request: Request) -> Response:
    """`GET /api/jobs/{job}`: one job's state and progress (the page polls this)."""
    doc = request.app.state.jobs.get(request.path_params["job"])
    if doc is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse(doc)


routes = [
    Route("/api/info", info),
    Route("/api/snapshots", snapshots),
    Route("/api/snapshots/{snap}", snapshot),
    Route("/api/snapshots/{snap}/errors", snapshot_errors),
    Route("/api/snapshots/{snap}/tree", tree),
    Route("/api/snapshots/{snap}/preview", preview_file),
    Route("/api/snapshots/{snap}/raw", raw),
    Route("/api/snapshots/{snap}/archive", download_archive),
    Route("/api/search", search),
    Route("/api/diff", diff_snapshots),
    Route("/api/targets", targets),
    Route("/api/restore", restore, methods=["POST"]),
    Route("/api/jobs", job_list),
    Route("/api/jobs/{job}", job),
]
