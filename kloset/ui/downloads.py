"""File and folder downloads: ranged, streamed file bodies and streamed `.tar`/`.zip` folders.

Bodies are generators run in the threadpool a piece at a time, so a download of any size holds
a few chunks in memory. Files are sent inline only when their type cannot run script in this
origin (see `kloset.ui.preview.inline_content_type`), and even then under a sandboxing CSP.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from kloset import archive
from kloset.stream import iter_file, read_head
from kloset.ui import preview
from kloset.ui.params import BadRequest, path_param, snapshot_header
from kloset.vfs import SnapshotView


def _disposition(kind: str, name: str) -> str:
    """Content-Disposition with an ASCII fallback name and the exact UTF-8 one (RFC 6266)."""
    ascii_name = (
        "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    )
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
_RAW_CSP = (
    "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


async def raw(request: Request) -> Response:
    """`GET /api/snapshots/{snap}/raw?path=&download=`: one file, with Range support."""
    h = await snapshot_header(request)
    path = path_param(request)
    repo = request.app.state.repo
    view = SnapshotView(repo, h)
    entry = await run_in_threadpool(view.stat, path)
    if not entry.is_file:
        raise BadRequest(f"{path} is not a regular file")
    download = request.query_params.get("download") in ("1", "true", "yes")
    mime, inline = "application/octet-stream", None
    if not download:  # only an inline answer needs the type, and so the file's first bytes
        head = await run_in_threadpool(read_head, repo, entry, preview.SNIFF_BYTES)
        mime = preview.sniff_mime(entry.name, head)
        inline = preview.inline_content_type(mime)
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
    media_type = inline or "application/octet-stream"
    if request.method == "HEAD":  # the headers only: no reason to read the file
        return Response(status_code=status, media_type=media_type, headers=headers)
    return StreamingResponse(
        iter_file(repo, entry, start, end),
        status_code=status,
        media_type=media_type,
        headers=headers,
    )


async def download_archive(request: Request) -> Response:
    """`GET /api/snapshots/{snap}/archive?path=&format=tar|zip`: a folder, streamed."""
    h = await snapshot_header(request)
    path = path_param(request)
    fmt = request.query_params.get("format", "tar")
    if fmt not in ("tar", "zip"):
        raise BadRequest("format must be tar or zip")
    view = SnapshotView(request.app.state.repo, h)
    entry = await run_in_threadpool(view.stat, path)
    if not entry.is_dir:
        raise BadRequest(f"{path} is not a directory (download files with /raw)")
    name = archive.archive_root_name(view, path) + "." + fmt
    media_type = "application/x-tar" if fmt == "tar" else "application/zip"
    headers = {
        "Content-Disposition": _disposition("attachment", name),
        "X-Content-Type-Options": "nosniff",
    }
    if request.method == "HEAD":
        return Response(media_type=media_type, headers=headers)
    body = archive.iter_tar(view, path) if fmt == "tar" else archive.iter_zip(view, path)
    return StreamingResponse(body, media_type=media_type, headers=headers)
