"""What a file looks like in the browser: type sniffing, capped text, hex dumps, safe inline types.

A preview reads only the head of a file (ranged, through the engine), so previewing a 10 GiB
file costs one chunk. The browser renders images, PDFs and media itself from the raw endpoint,
but only for types that cannot run script in our origin; everything else is sent as plain text
or as an attachment.
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Any

from kloset.fetch import fetch_blobs
from kloset.repository import Repository
from kloset.stream import read_head
from kloset.tree import Entry

TEXT_LIMIT = 256 * 1024
HEX_LIMIT = 4096
SNIFF_BYTES = 8192
INLINE_MEDIA_LIMIT = 64 * 1024 * 1024

_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"\x00\x00\x01\x00", "image/x-icon"),
    (4, b"ftypavif", "image/avif"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"\x28\xb5\x2f\xfd", "application/zstd"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (4, b"ftyp", "video/mp4"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
]

# Types a browser may render from our origin: none of them can run script there.
SAFE_INLINE = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/x-icon", "image/avif",
    "image/bmp", "image/svg+xml", "application/pdf", "audio/mpeg", "audio/ogg", "audio/flac",
    "audio/wav", "audio/x-wav", "video/mp4", "video/webm", "video/ogg",
}  # fmt: skip

_LANGUAGES = {
    "py": "python", "pyi": "python", "js": "javascript", "mjs": "javascript", "cjs": "javascript",
    "ts": "javascript", "tsx": "javascript", "jsx": "javascript", "json": "json", "c": "c",
    "h": "c", "cc": "c", "cpp": "c", "hpp": "c", "java": "c", "cs": "c", "go": "go", "rs": "rust",
    "kt": "c", "swift": "c", "php": "c", "sh": "shell", "bash": "shell", "zsh": "shell",
    "yml": "yaml", "yaml": "yaml", "toml": "ini", "ini": "ini", "cfg": "ini", "conf": "ini",
    "md": "markdown", "markdown": "markdown", "html": "markup", "htm": "markup", "xml": "markup",
    "svg": "markup", "vue": "markup", "css": "css", "scss": "css", "sql": "sql", "rb": "ruby",
    "lua": "lua", "pl": "shell", "r": "shell", "dockerfile": "shell", "makefile": "shell",
}  # fmt: skip
_NAMED = {"dockerfile": "shell", "makefile": "shell", ".bashrc": "shell", ".profile": "shell"}


def sniff_mime(name: str, head: bytes) -> str:
    """Magic bytes first (names lie), then the extension, then text vs. binary."""
    for offset, magic, mime in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if mime == "video/mp4" and head[8:12] in (b"avif", b"avis"):
                return "image/avif"
            return mime
    guessed, _enc = mimetypes.guess_type(name, strict=False)
    if guessed == "image/svg+xml" or (guessed and guessed.startswith("text/")):
        return guessed
    if looks_like_text(head):
        return guessed if guessed and _is_texty(guessed) else "text/plain"
    return guessed or "application/octet-stream"


def _is_texty(mime: str) -> bool:
    return mime.startswith("text/") or mime in (
        "application/json",
        "application/xml",
        "application/javascript",
    )


def looks_like_text(head: bytes) -> bool:
    """UTF-8 (or UTF-16 with a BOM), or a Latin-1 file with few control bytes."""
    if not head:
        return True
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\0" in head:
        return False
    for cut in range(4):  # the sniffed head may end inside a multi-byte character
        try:
            head[: len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls / len(head) < 0.02


def decode_text(data: bytes) -> str:
    """Best-effort text: BOMs honoured, UTF-8 by default, undecodable bytes replaced."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # cut inside the last character by the size cap
            return data[: exc.start].decode("utf-8", "replace")
        return data.decode("utf-8", "replace")


def hex_dump(data: bytes, base: int = 0) -> list[str]:
    """Classic `hexdump -C` lines: offset, 16 bytes in two groups, printable ASCII."""
    lines = []
    for off in range(0, len(data), 16):
        row = data[off : off + 16]
        left = " ".join(f"{b:02x}" for b in row[:8])
        right = " ".join(f"{b:02x}" for b in row[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{base + off:08x}  {left:<23}  {right:<23}  |{text}|")
    return lines


def language_for(name: str) -> str | None:
    """Highlighter name for a file, from its name; None means plain text."""
    low = name.lower()
    if low in _NAMED:
        return _NAMED[low]
    ext = posixpath.splitext(low)[1].lstrip(".")
    return _LANGUAGES.get(ext)


def kind_of(mime: str, size: int) -> str:
    """How the page shows it: text, image, pdf, audio, video, binary or empty."""
    if size == 0:
        return "empty"
    if mime in SAFE_INLINE and size <= INLINE_MEDIA_LIMIT:
        if mime == "application/pdf":
            return "pdf"
        major = mime.split("/", 1)[0]
        if major in ("image", "audio", "video"):
            return major
    if _is_texty(mime):
        return "text"
    return "binary"


def inline_content_type(mime: str) -> str | None:
    """Content-Type for showing the raw file in the browser, or None: send it as a download."""
    if mime in SAFE_INLINE:
        return mime
    if _is_texty(mime):
        # HTML, JS and friends are shown as source, never rendered in our origin.
        return "text/plain; charset=utf-8"
    return None


def build_preview(
    repo: Repository, entry: Entry, *, text_limit: int = TEXT_LIMIT
) -> dict[str, Any]:
    """The preview document of one file (see docs/UI.md, `GET .../preview`)."""
    # The first chunk is fetched once and kept: it serves the sniffing, the hex dump and the
    # start of the text; a text preview then fetches only the chunks after it.
    first = fetch_blobs(repo, entry.chunks[:1]) if entry.chunks else {}
    head = read_head(repo, entry, SNIFF_BYTES, cache=first)
    mime = sniff_mime(entry.name, head)
    kind = kind_of(mime, entry.size)
    doc: dict[str, Any] = {
        "mime": mime,
        "kind": kind,
        "size": entry.size,
        "truncated": False,
        "text": None,
        "language": None,
        "hex": None,
        "limit": None,
    }
    if kind == "text":
        if entry.size > len(head):
            head = read_head(repo, entry, text_limit, cache=first)
        doc["text"] = decode_text(head[:text_limit])
        doc["language"] = language_for(entry.name)
        doc["truncated"] = entry.size > text_limit
        doc["limit"] = text_limit
    elif kind == "binary":
        doc["hex"] = hex_dump(head[:HEX_LIMIT])
        doc["truncated"] = entry.size > HEX_LIMIT
        doc["limit"] = HEX_LIMIT
    return doc
