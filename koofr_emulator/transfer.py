"""``files/get`` (ranged, streamed downloads) and ``files/put`` (streamed, atomic uploads)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from . import behaviour
from .bodies import MultipartReader
from .errors import ApiError, bad_request
from .http_types import Request, Response, json_response
from .store import Entry, PutOptions, Store

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def _unsatisfiable(size: int, message: str) -> ApiError:
    return ApiError(
        behaviour.BAD_RANGE_STATUS, "Other", message, {"Content-Range": f"bytes */{size}"}
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive ``(start, end)`` of a single-range header; None without a header.

    Multi-range and malformed/unsatisfiable ranges are 416 with ``bytes */SIZE`` (fake) [C].
    """
    if header is None:
        return None
    if "," in header:
        raise _unsatisfiable(size, "Cannot serve multipart range requests")
    m = _RANGE_RE.match(header)
    if m is None or (not m.group(1) and not m.group(2)):
        raise _unsatisfiable(size, "Invalid range")
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size, "Invalid range")
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise _unsatisfiable(size, "Invalid range")
    return start, min(end, size - 1)


def file_info_header(entry: Entry, has_md5: bool = True) -> str:
    """``X-File-Info`` value: FileInfo JSON, non-ASCII escaped to stay a valid header."""
    doc = entry.to_json()
    if not has_md5:
        doc.pop("hash", None)
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


def files_get(store: Store, req: Request, path: str, has_md5: bool = True) -> Response:
    """A file of ``store`` (``path`` is the device path), whole or one range."""
    entry, fh = store.open_file(path)
    try:
        span = parse_range(req.headers.get("Range"), entry.size)
    except ApiError:
        fh.close()
        raise
    headers = [
        ("Content-Type", entry.content_type),
        ("Accept-Ranges", "bytes"),
    ]
    if behaviour.SEND_X_FILE_INFO:
        headers.append(("X-File-Info", file_info_header(entry, has_md5)))
    if span is None:
        return Response(200, headers, stream=fh, offset=0, length=entry.size)
    start, end = span
    headers.append(("Content-Range", f"bytes {start}-{end}/{entry.size}"))
    return Response(206, headers, stream=fh, offset=start, length=end - start + 1)


def put_options(req: Request, keeps_mtime: bool = True) -> PutOptions:
    """Conflict flags exactly as the fake's ``CreateFileConflictResolution::parse`` [C]."""
    q = req.query
    # Only the empty value counts, as sent by Go/Java ("overwriteIgnoreNonexisting=").
    ignore = q.get("overwriteIgnoreNonexisting") == "" or q.get("overwriteIgnoreNonexistent") == ""
    if_modified = req.int_param("overwriteIfModified")
    if_size = req.int_param("overwriteIfSize")
    if_hash = q.get("overwriteIfHash")
    overwrite = (
        q.get("overwrite", "").lower() in behaviour.TRUE_VALUES
        or if_modified is not None
        or if_size is not None
        or if_hash is not None
        or ignore
    )
    autorename = q.get("autorename") != "false" and not overwrite
    return PutOptions(
        autorename=autorename,
        overwrite=overwrite,
        if_modified=if_modified,
        if_size=if_size,
        if_hash=if_hash,
        ignore_nonexisting=ignore,
        # A device that keeps no mtime of its own (a connected cloud) stores the upload time.
        modified=req.int_param("modified") if keeps_mtime else None,
    )


def _spool(read: Callable[[], bytes], staged: Path) -> str:
    """Copy a body stream to the staging file, returning its MD5."""
    digest = hashlib.md5()
    with open(staged, "wb") as out:
        while chunk := read():
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _boundary(content_type: str) -> str | None:
    msg = Message()
    msg["Content-Type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        return None
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise bad_request("Missing multipart boundary")
    return boundary


def files_put(
    store: Store, req: Request, parent: str, keeps_mtime: bool = True, has_md5: bool = True
) -> Response:
    """An upload into folder ``parent`` (a device path) of ``store``."""
    filename = req.query.get("filename")
    opts = put_options(req, keeps_mtime)
    want_info = req.query.get("info", "").lower() in behaviour.TRUE_VALUES
    if filename is not None:
        store.check_put(parent, filename, opts)  # fail before reading a large body
    staged = store.new_temp()
    try:
        boundary = _boundary(req.headers.get("Content-Type", ""))
        if boundary is None:  # raw body upload (Vault client style) [C]
            md5 = _spool(req.body.read, staged)
        else:
            reader = MultipartReader(req.body, boundary)
            while (part := reader.next_part()) is not None:
                if part.name == behaviour.UPLOAD_FIELD_NAME or part.filename is not None:
                    break
            if part is None:
                raise bad_request("Missing file")
            md5 = _spool(reader.read_chunk, staged)
            reader.finish()
            if filename is None:
                filename = part.filename
        if filename is None:
            raise bad_request("Missing filename")
        entry = store.commit_put(parent, filename, opts, staged, md5)
    finally:
        staged.unlink(missing_ok=True)
    if want_info or not behaviour.UPLOAD_WITHOUT_INFO_RETURNS_NAME_LIST:
        doc = entry.to_json()
        if not has_md5:
            doc.pop("hash", None)
        return json_response(doc)
    return json_response([{"name": entry.name}])
