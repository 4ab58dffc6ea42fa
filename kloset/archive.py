"""A snapshot folder (or file) as a streamed `.tar`, `.tar.zst` or `.zip`, generated while it is
being sent: the web viewer's downloads and `kloset at STORE archive` are this one writer.

No format is ever built in memory or on disk: the walk, the reads and the encoding proceed
together, one group of entries at a time. Tar is written header by header (PAX for long names,
big files, exact mtimes); `.tar.zst` is that stream through zstd; zip uses the standard
library's writer on an unseekable sink, so every member carries a data descriptor and zip64
records where sizes need them, and a member whose start does not deflate is stored as it is.
A zip's central directory (one small record per member) is the only thing that grows with the
folder, as the format requires; tar has no such cost.
"""

from __future__ import annotations

import itertools
import posixpath
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

from kloset.stream import iter_file, prefetch_small
from kloset.tree import Entry
from kloset.vfs import SnapshotView, normalize

# Small files are fetched together: up to this many entries or bytes per group.
GROUP_ENTRIES = 256
GROUP_BYTES = 8 * 1024 * 1024
SMALL_FILE = 1024 * 1024
ZIP_LEVEL = 1  # deflate at its fastest: archives are for moving data, not for squeezing it
BLOCK = 512
# Output is sent in pieces of at least this size: each piece costs a threadpool round trip, and
# a folder of small files would otherwise go out as thousands of 512-byte writes.
SEND_BYTES = 256 * 1024
ZSTD_LEVEL = 3
SAMPLE_BYTES = 64 * 1024  # how much of a file decides whether a zip member is deflated
FORMATS = ("tar", "tar.zst", "zip")


@dataclass
class ArchiveStats:
    """What went into an archive, counted as it is written."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0

    def count(self, entry: Entry) -> None:
        if entry.is_dir:
            self.dirs += 1
        elif entry.is_symlink:
            self.symlinks += 1
        else:
            self.files += 1
            self.bytes += entry.size


def archive_root_name(view: SnapshotView, path: str) -> str:
    """Top folder inside the archive: the folder's own name, or the snapshot for `/`."""
    norm = normalize(path)
    return posixpath.basename(norm) or f"snapshot-{view.header.hex[:8]}"


def _walk_groups(
    view: SnapshotView, path: str, stats: ArchiveStats | None = None
) -> Iterator[tuple[list[tuple[str, Entry]], dict]]:
    """(entries, prefetched small-file blobs) groups, in walk order."""
    group: list[tuple[str, Entry]] = []
    small = 0
    for spath, entry in view.walk(path):
        if stats is not None:
            stats.count(entry)
        group.append((spath, entry))
        if entry.is_file and entry.size <= SMALL_FILE:
            small += entry.size
        if len(group) >= GROUP_ENTRIES or small >= GROUP_BYTES:
            yield group, prefetch_small(view.repo, [e for _p, e in group], SMALL_FILE)
            group, small = [], 0
    if group:
        yield group, prefetch_small(view.repo, [e for _p, e in group], SMALL_FILE)


def _member_name(root: str, base: str, spath: str) -> str:
    rel = spath[len(base) :].lstrip("/") if base != "/" else spath.lstrip("/")
    return f"{root}/{rel}" if rel else root


def coalesce(parts: Iterator[bytes], size: int | None = None) -> Iterator[bytes]:
    """Join small pieces into ones of at least `size` bytes (large ones pass straight through)."""
    size = size or SEND_BYTES
    buf: list[bytes] = []
    held = 0
    for part in parts:
        if not part:
            continue
        buf.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(buf)
            buf, held = [], 0
    if buf:
        yield b"".join(buf)


def iter_archive(
    view: SnapshotView, path: str, fmt: str, *, stats: ArchiveStats | None = None
) -> Iterator[bytes]:
    """`path` and everything below it as `fmt` (one of FORMATS), in pieces of ~SEND_BYTES."""
    if fmt == "tar":
        return coalesce(_tar_parts(view, path, stats))
    if fmt == "tar.zst":
        return _zstd(coalesce(_tar_parts(view, path, stats)))
    if fmt == "zip":
        return coalesce(_zip_parts(view, path, stats))
    raise ValueError(f"unknown archive format {fmt!r}")


def iter_tar(view: SnapshotView, path: str) -> Iterator[bytes]:
    """A POSIX (PAX) tar of `path` and everything below it, in pieces of ~SEND_BYTES."""
    return iter_archive(view, path, "tar")


def iter_zip(view: SnapshotView, path: str) -> Iterator[bytes]:
    """A zip of `path` and everything below it (deflate, data descriptors, zip64 as needed)."""
    return iter_archive(view, path, "zip")


def _zstd(parts: Iterator[bytes]) -> Iterator[bytes]:
    """One zstd frame of `parts`. Single-threaded on purpose: zstd's worker threads hold ~180 MiB
    of buffers, and on two cores the decryption that feeds them is busy anyway."""
    comp = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    obj = comp.compressobj()
    for part in parts:
        out = obj.compress(part)
        if out:
            yield out
    yield obj.flush()


def pax_mtime(mtime_ns: int) -> str:
    """An exact decimal mtime for a PAX header (a float would round away the nanoseconds)."""
    sign = "-" if mtime_ns < 0 else ""
    secs, frac = divmod(abs(mtime_ns), 1_000_000_000)
    return f"{sign}{secs}.{frac:09d}".rstrip("0").rstrip(".")


def _tar_parts(view: SnapshotView, path: str, stats: ArchiveStats | None) -> Iterator[bytes]:
    base = normalize(path)
    root = archive_root_name(view, base)
    for group, cache in _walk_groups(view, base, stats):
        for spath, entry in group:
            info = tarfile.TarInfo(_member_name(root, base, spath))
            info.mtime = entry.mtime_ns // 1_000_000_000
            if entry.mtime_ns % 1_000_000_000 or entry.mtime_ns < 0:
                info.pax_headers = {"mtime": pax_mtime(entry.mtime_ns)}
            info.mode = entry.permissions() or (0o755 if entry.is_dir else 0o644)
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
            elif entry.is_symlink:
                info.type = tarfile.SYMTYPE
                info.linkname = entry.target or ""
            else:
                info.size = entry.size
            yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            if entry.is_file and entry.size:
                sent = 0
                for block in iter_file(view.repo, entry, cache=cache):
                    sent += len(block)
                    yield block
                if sent != entry.size:
                    raise OSError(f"{spath}: read {sent} bytes, expected {entry.size}")
                pad = (-entry.size) % BLOCK
                if pad:
                    yield b"\0" * pad
    yield b"\0" * (BLOCK * 2)


class _Sink:
    """Write-only, unseekable target for zipfile; the generator drains it after each step."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _zip_info(name: str, entry: Entry) -> zipfile.ZipInfo:
    mtime = max(entry.mtime_ns / 1e9, 315532800)  # zip dates start in 1980
    # Names that are not valid UTF-8 on disk cannot be spelled in a zip; show them replaced.
    clean = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    info = zipfile.ZipInfo(clean, date_time=time.localtime(mtime)[:6])
    perms = entry.permissions()
    if entry.is_dir:
        info.external_attr = ((stat.S_IFDIR | (perms or 0o755)) << 16) | 0x10
    elif entry.is_symlink:
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
    else:
        info.external_attr = (stat.S_IFREG | (perms or 0o644)) << 16
    info.create_system = 3  # Unix, so the mode bits above are honoured by unzip
    secs = entry.mtime_ns // 1_000_000_000
    if -(2**31) <= secs < 2**31:  # extended timestamp: the exact second, in UTC
        info.extra = struct.pack("<HHBi", 0x5455, 5, 1, secs)
    return info


def compressible(head: bytes) -> bool:
    """Whether deflate is worth it for a file starting with `head`: photos, videos and archives
    do not shrink, and deflating them is the slowest part of a zip (~15 MB/s a core here)."""
    sample = head[:SAMPLE_BYTES]
    if len(sample) < 4096:
        return True
    return len(zlib.compress(sample, ZIP_LEVEL)) < 0.95 * len(sample)


def _zip_parts(view: SnapshotView, path: str, stats: ArchiveStats | None) -> Iterator[bytes]:
    base = normalize(path)
    root = archive_root_name(view, base)
    sink = _Sink()
    with zipfile.ZipFile(
        sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
    ) as zf:  # type: ignore[arg-type]
        for group, cache in _walk_groups(view, base, stats):
            for spath, entry in group:
                name = _member_name(root, base, spath)
                if entry.is_dir:
                    info = _zip_info(name + "/", entry)
                    info.compress_type = zipfile.ZIP_STORED
                    zf.writestr(info, b"")
                elif entry.is_symlink:
                    zf.writestr(
                        _zip_info(name, entry),
                        (entry.target or "").encode("utf-8", "surrogateescape"),
                    )
                else:
                    info = _zip_info(name, entry)
                    blocks = iter_file(view.repo, entry, cache=cache)
                    first = next(blocks, b"")
                    info.compress_type = zipfile.ZIP_STORED
                    if compressible(first):
                        info.compress_type = zipfile.ZIP_DEFLATED
                        # 3.11 spells it _compresslevel, 3.13 compress_level; else level 6.
                        for attr in ("compress_level", "_compresslevel"):
                            if hasattr(zipfile.ZipInfo, attr):
                                setattr(info, attr, ZIP_LEVEL)
                                break
                    info.file_size = entry.size  # lets zipfile decide on zip64 up front
                    with zf.open(info, "w") as out:
                        for block in itertools.chain([first], blocks):
                            out.write(block)
                            chunk = sink.drain()
                            if chunk:
                                yield chunk
                chunk = sink.drain()
                if chunk:
                    yield chunk
    yield sink.drain()
