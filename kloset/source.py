"""Sources: what a backup reads. Local disk gets a fast scandir path; anything else is fsspec.

A source yields `ScanItem`s in a stable order (each directory, then its sorted children,
depth first) and opens files for streaming reads. Koofr listings carry MD5 and ms mtimes,
which the backup keeps so an unchanged remote file is never downloaded again.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from kloset.errors import SourceChanged
from kloset.excludes import Excluder
from kloset.throttle import ThrottledReader
from kloset.tree import DIR, FILE, SYMLINK
from koofrfs.errors import KoofrChangedError

# Folder listings of a remote source in flight at once (the client bounds its own requests too).
LIST_AHEAD = 8


@dataclass
class ScanItem:
    """One path found in the source. `relpath` is '' for the root, else 'a/b' (no leading /)."""

    relpath: str
    type: str
    mode: int
    mtime_ns: int
    size: int = 0
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Source:
    """Interface every source implements."""

    location: str

    def scan(self, excluder: Excluder, on_error: Any = None) -> Iterator[ScanItem]:
        raise NotImplementedError

    def open(self, relpath: str, size: int | None = None, md5: str | None = None) -> BinaryIO:
        """Open a file for reading; ``size`` and ``md5`` are what the scan listed for it, and a
        remote source raises :class:`SourceChanged` when the bytes read disagree."""
        raise NotImplementedError

    def local_path(self, relpath: str) -> str | None:
        """A real path on this machine, when reads can use mmap/sendfile fast paths."""
        return None


class LocalSource(Source):
    """A directory on local disk: lstat semantics, symlinks recorded, never followed."""

    def __init__(self, root: str, *, one_file_system: bool = False) -> None:
        self.root = os.path.abspath(root)
        self.location = self.root
        # --one-file-system: folders on another device (mount points) are kept, empty.
        self.one_file_system = one_file_system
        self._device: int | None = None

    def local_path(self, relpath: str) -> str:
        return os.path.join(self.root, relpath) if relpath else self.root

    def open(self, relpath: str, size: int | None = None, md5: str | None = None) -> BinaryIO:
        return open(self.local_path(relpath), "rb")  # noqa: SIM115 - caller closes

    def scan(self, excluder: Excluder, on_error: Any = None) -> Iterator[ScanItem]:
        st = os.lstat(self.root)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{self.root} is not a directory")
        one_fs = self.one_file_system or getattr(excluder, "one_file_system", False)
        self._device = st.st_dev if one_fs else None
        yield ScanItem("", DIR, st.st_mode, st.st_mtime_ns)
        yield from self._scan_dir("", excluder)

    def _scan_dir(self, rel: str, excluder: Excluder) -> Iterator[ScanItem]:
        path = self.local_path(rel)
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield ScanItem(rel, DIR, 0, 0, error=f"cannot list directory: {exc.strerror or exc}")
            return
        for de in entries:
            child = f"{rel}/{de.name}" if rel else de.name
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as exc:
                yield ScanItem(child, FILE, 0, 0, error=f"cannot stat: {exc.strerror or exc}")
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                if excluder and excluder.excluded(child, True):
                    continue
                yield ScanItem(child, DIR, mode, st.st_mtime_ns)
                if self._device is None or st.st_dev == self._device:
                    yield from self._scan_dir(child, excluder)
            elif excluder and excluder.excluded(child, False, st.st_size):
                continue
            elif stat.S_ISREG(mode):
                yield ScanItem(child, FILE, mode, st.st_mtime_ns, size=st.st_size)
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(de.path)
                except OSError as exc:
                    yield ScanItem(child, SYMLINK, mode, st.st_mtime_ns, error=str(exc))
                    continue
                yield ScanItem(child, SYMLINK, mode, st.st_mtime_ns, target=target)
            # sockets, fifos and devices are not backed up (like most file-level tools)


class FsspecSource(Source):
    """Any fsspec filesystem (Koofr, memory, S3...): listings via ls(detail=True)."""

    def __init__(
        self, fs: AbstractFileSystem, root: str, location: str, info: dict[str, Any] | None = None
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.location = location
        self._root_info = info  # the root's `info()` if the caller has it: one request less

    def _full(self, relpath: str) -> str:
        if not relpath:
            return self.root or "/"
        return f"{self.root}/{relpath}" if self.root else relpath

    def open(self, relpath: str, size: int | None = None, md5: str | None = None) -> BinaryIO:
        fh = ThrottledReader(self.fs.open(self._full(relpath), "rb"))  # --limit-download
        if size is None and md5 is None:
            return fh  # type: ignore[no-any-return]
        label = f"{self.location.rstrip('/')}/{relpath}"
        return VerifiedReader(fh, label, size, md5)  # type: ignore[return-value]

    def scan(self, excluder: Excluder, on_error: Any = None) -> Iterator[ScanItem]:
        info, self._root_info = self._root_info or self.fs.info(self.root or "/"), None
        if info.get("type") != "directory":
            raise NotADirectoryError(f"{self.location} is not a directory")
        yield ScanItem("", DIR, stat.S_IFDIR | 0o755, _mtime_ns(info))
        if getattr(self.fs, "use_tree", False) and self.fs.dircache.use_listings_cache:
            # A filesystem that lists a whole subtree in one request (koofrfs's `use_tree`)
            # fills its listing cache once; the walk below then reads from it.
            for _ in self.fs.walk(self.root or "/"):
                pass
        # Each listing is a request: list the folders ahead of the depth-first walk, several
        # at a time, so a tree of many folders costs round trips in parallel, not in series.
        pool = ThreadPoolExecutor(LIST_AHEAD, thread_name_prefix="kloset-list")
        try:
            yield from self._scan_dir("", excluder, pool, pool.submit(self._list, ""))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _list(self, rel: str) -> list[tuple[str, dict[str, Any]]]:
        items = []
        for info in self.fs.ls(self._full(rel), detail=True):
            name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name and name not in (".", ".."):
                items.append((name, info))
        items.sort(key=lambda t: t[0])
        return items

    def _scan_dir(
        self,
        rel: str,
        excluder: Excluder,
        pool: ThreadPoolExecutor,
        listing: Future[list[tuple[str, dict[str, Any]]]],
    ) -> Iterator[ScanItem]:
        try:
            items = listing.result()
        except Exception as exc:  # noqa: BLE001 - one unlistable folder must not stop the backup
            yield ScanItem(rel, DIR, stat.S_IFDIR | 0o755, 0, error=f"cannot list directory: {exc}")
            return
        subdirs: dict[str, Future[list[tuple[str, dict[str, Any]]]]] = {}
        for name, info in items:
            child = f"{rel}/{name}" if rel else name
            if info.get("type") == "directory" and not (
                excluder and excluder.excluded(child, True)
            ):
                subdirs[child] = pool.submit(self._list, child)
        for name, info in items:
            child = f"{rel}/{name}" if rel else name
            if info.get("type") == "directory":
                if child not in subdirs:
                    continue  # excluded
                yield ScanItem(child, DIR, stat.S_IFDIR | 0o755, _mtime_ns(info))
                yield from self._scan_dir(child, excluder, pool, subdirs.pop(child))
                continue
            if excluder and excluder.excluded(child, False, int(info.get("size") or 0)):
                continue
            extra: dict[str, Any] = {}
            md5 = info.get("md5") or info.get("hash")
            if isinstance(md5, str) and len(md5) == 32:
                extra["md5"] = md5
            yield ScanItem(
                child,
                FILE,
                stat.S_IFREG | 0o644,
                _mtime_ns(info),
                size=int(info.get("size") or 0),
                extra=extra,
            )


class VerifiedReader:
    """A remote file being read, checked against the size and MD5 its listing gave.

    Koofr lists an MD5 for every file, so a download that came back short but well-framed (a
    proxy cutting it), or a file rewritten between the listing and the read, is caught when
    the reader reaches the end, as :class:`SourceChanged`, instead of reaching the backup as a
    torn file. Supports what the chunker and the prefetcher use: ``readinto`` and ``read``.
    """

    def __init__(self, fh: Any, label: str, size: int | None, md5: str | None) -> None:
        self._fh = fh
        self._label = label
        self._size = size
        self._md5 = md5.lower() if md5 else None
        self._hash = hashlib.md5(usedforsecurity=False) if md5 else None
        self._count = 0
        self._checked = False

    def _seen(self, data: bytes | memoryview, asked: int) -> None:
        if self._hash is not None:
            self._hash.update(data)
        self._count += len(data)
        if not data and asked:
            self._check()

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        got_md5 = self._hash.hexdigest() if self._hash is not None else None
        if (self._size is None or self._size == self._count) and got_md5 == self._md5:
            return
        want = f"{self._size} bytes" + (f" with MD5 {self._md5}" if self._md5 else "")
        got = f"{self._count} bytes" + (f" with MD5 {got_md5}" if got_md5 else "")
        raise SourceChanged(
            f"{self._label}: read {got}, but the listing says {want} (the file changed while "
            "it was read, or the download was cut short)"
        )

    def readinto(self, buf: Any) -> int:
        try:
            n = int(self._fh.readinto(buf))
        except KoofrChangedError as exc:
            raise SourceChanged(f"{self._label}: {exc}") from exc
        with memoryview(buf) as view:
            self._seen(view[:n], len(view))
        return n

    def read(self, n: int = -1) -> bytes:
        try:
            data = bytes(self._fh.read(n))
        except KoofrChangedError as exc:
            raise SourceChanged(f"{self._label}: {exc}") from exc
        self._seen(data, n)
        if n is None or n < 0:
            self._check()
        return data

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mtime_ns(info: dict[str, Any]) -> int:
    """Best mtime a backend offers: Koofr's exact ms, else fsspec's float/datetime fields."""
    if isinstance(info.get("modified"), int):
        return int(info["modified"]) * 1_000_000
    for key in ("mtime", "LastModified", "last_modified", "created"):
        val = info.get(key)
        if val is None:
            continue
        if isinstance(val, int | float):
            return int(float(val) * 1e9)
        ts = getattr(val, "timestamp", None)
        if ts is not None:
            return int(ts() * 1e9)
    return 0


def is_local_fs(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)
