"""The JSON API under `/api/` (documented in docs/UI.md).

Every handler is a thin shell: parse and check parameters, run the engine call in the
threadpool (the engine blocks on storage reads, and a remote store may take seconds), shape
the answer. Paths from the browser always pass through `kloset.vfs.normalize`, which can only
name places inside a snapshot.
"""

from __future__ import annotations

import stat
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kloset.query import diff, find
from kloset.snapshot import SnapshotHeader
from kloset.tree import Entry
from kloset.ui import archive, preview
from kloset.ui.catalog import Catalog, header_doc, iso_time
from kloset.ui.jobs import JobManager
from kloset.ui.stream import iter_file, read_head
from kloset.vfs import SnapshotView, normalize

MAX_LIST = 1000
MAX_RESULTS = 5000
SEARCH_BATCH = 16  # snapshots per find() call: shares its subtree memo, bounds its memory


class BadRequest(Exception):
    """A parameter the API cannot accept; answered with 400 and the message."""


def _int(request: Request, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
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


def _path(request: Request) -> str:
    raw = request.query_params.get("path", "/")
    if "\x00" in raw:
        raise BadRequest("path may not contain NUL")
    return normalize(raw)


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog  # type: ignore[no-any-return]


async def _header(request: Request) -> SnapshotHeader:
    return await run_in_threadpool(_catalog(request).get, request.path_params["snap"])


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
    state = request.app.state
    repo = state.repo
    return JSONResponse(
        {
            "store": repo.storage.location,
            "store_id": repo.config.store_id,
            "encrypted": repo.cipher.encrypted,
            "targets": [t.doc() for t in state.jobs.targets.values()],
            "limits": {"list": MAX_LIST, "text_preview": preview.TEXT_LIMIT, "hex_preview": preview.HEX_LIMIT},
        }
    )


async def snapshots(request: Request) -> Response:
    page = await run_in_threadpool(
        _catalog(request).page,
        sort=request.query_params.get("sort", "time"),
        order=request.query_params.get("order", "desc"),
        offset=_int(request, "offset", 0),
        limit=_int(request, "limit", 50, 1, MAX_LIST),
        query=request.query_params.get("q", ""),
    )
    return JSONResponse(page)


async def snapshot(request: Request) -> Response:
    h = await _header(request)
    doc = header_doc(h)
    doc["stats"] = h.stats
    return JSONResponse(doc)


async def snapshot_errors(request: Request) -> Response:
    h = await _header(request)
    offset, limit = _int(request, "offset", 0), _int(request, "limit", 100, 1, MAX_LIST)
    items = [{"path": p, "error": m} for p, m in h.errors[offset : offset + limit]]
    total = max(h.errors_total, len(h.errors))
    return JSONResponse(
        {"snapshot": h.hex, "total": total, "stored": len(h.errors), "offset": offset, "items": items}
    )


async def tree(request: Request) -> Response:
    h = await _header(request)
    path = _path(request)
    offset, limit = _int(request, "offset", 0), _int(request, "limit", 200, 1, MAX_LIST)
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
    h = await _header(request)
    path = _path(request)
    repo = request.app.state.repo
    view = SnapshotView(repo, h)

    def work() -> dict[str, Any]:
        entry = view.stat(path)
        if not entry.is_file:
            raise BadRequest(f"{path} is not a regular file")
        doc = preview.build_preview(repo, entry)
        doc.update(snapshot=h.hex, path=path, entry=entry_doc(path, entry), **_file_urls(h.hex, path))
        return doc

    return JSONResponse(await run_in_threadpool(work))


def _disposition(kind: str, name: str) -> str:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` range as [start, end); None when absent or multi-range (send it all).
    Raises ValueError for a range that cannot be satisfied."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise ValueError("empty suffix range")
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if start >= size or end <= start:
        raise ValueError("range outside the file")
    return start, min(end, size)


# Raw file responses can be opened as pages of their own: even a safe type gets no script.
_RAW_CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"


async def raw(request: Request) -> Response:
    h = await _header(request)
    path = _path(request)
    repo = request.app.state.repo
    view = SnapshotView(repo, h)
    entry = await run_in_threadpool(view.stat, path)
    if not entry.is_file:
        raise BadRequest(f"{path} is not a regular file")
    download = request.query_params.get("download") in ("1", "true", "yes")
    head = await run_in_threadpool(read_head, repo, entry, preview.SNIFF_BYTES)
    mime = preview.sniff_mime(entry.name, head)
    inline = None if download else preview.inline_content_type(mime)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition("inline" if inline else "attachment", entry.name),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600",  # snapshots never change
    }
    if mime != "application/pdf":  # Chromium's PDF viewer refuses to run in a sandboxed page
        headers["Content-Security-Policy"] = _RAW_CSP
    start, end, status = 0, entry.size, 200
    try:
        rng = parse_range(request.headers.get("range", ""), entry.size)
    except ValueError:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{entry.size}"})
    if rng is not None:
        start, end = rng
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        iter_file(repo, entry, start, end),
        status_code=status,
        media_type=inline or "application/octet-stream",
        headers=headers,
    )


async def download_archive(request: Request) -> Response:
    h = await _header(request)
    path = _path(request)
    fmt = request.query_params.get("format", "tar")
    if fmt not in ("tar", "zip"):
        raise BadRequest("format must be tar or zip")
    view = SnapshotView(request.app.state.repo, h)
    entry = await run_in_threadpool(view.stat, path)
    if not entry.is_dir:
        raise BadRequest(f"{path} is not a directory (download files with /raw)")
    name = archive.archive_root_name(view, path) + "." + fmt
    body = archive.iter_tar(view, path) if fmt == "tar" else archive.iter_zip(view, path)
    return StreamingResponse(
        body,
        media_type="application/x-tar" if fmt == "tar" else "application/zip",
        headers={"Content-Disposition": _disposition("attachment", name), "X-Content-Type-Options": "nosniff"},
    )


async def search(request: Request) -> Response:
    pattern = request.query_params.get("pattern", "").strip()
    if not pattern:
        raise BadRequest("pattern is required")
    which = request.query_params.get("snapshot", "all").strip() or "all"
    path = _path(request)
    icase = request.query_params.get("icase") in ("1", "true", "yes")
    limit = _int(request, "limit", 500, 1, MAX_RESULTS)
    catalog = _catalog(request)
    repo = request.app.state.repo

    def work() -> dict[str, Any]:
        headers = catalog.headers()[::-1] if which == "all" else [catalog.get(which)]
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
    from kloset.errors import PathNotFound

    try:
        view.stat(path)
        return True
    except PathNotFound:
        return False


async def diff_snapshots(request: Request) -> Response:
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    if not a or not b:
        raise BadRequest("a and b (snapshot ids) are required")
    path = _path(request)
    limit = _int(request, "limit", 2000, 1, 50000)
    catalog = _catalog(request)
    repo = request.app.state.repo

    def work() -> dict[str, Any]:
        old, new = catalog.get(a), catalog.get(b)
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
    jobs: JobManager = request.app.state.jobs
    return JSONResponse({"items": [t.doc() for t in jobs.targets.values()]})


async def restore(request: Request) -> Response:
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
    header = await run_in_threadpool(_catalog(request).get, snap)
    view = SnapshotView(request.app.state.repo, header)
    await run_in_threadpool(view.stat, normalize(path))  # 404 now rather than a failed job
    job = await run_in_threadpool(jobs.start, header, path, target, subdir, bool(body.get("overwrite")))
    return JSONResponse(job.doc(), status_code=202)


async def job_list(request: Request) -> Response:
    return JSONResponse({"items": request.app.state.jobs.list()})


async def job(request: Request) -> Response:
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
