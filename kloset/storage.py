"""The store's view of its backend: named objects on any fsspec filesystem.

Everything above this module speaks in store-relative names (``packs/ab/abcd...``); this module
turns them into filesystem calls, makes writes atomic where the backend allows it, and reads
byte ranges so a blob never costs a whole pack download.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from kloset import throttle
from kloset.errors import CorruptObject, KlosetError


def _info_mtime(info: dict[str, Any]) -> float | None:
    """Seconds since the epoch from whatever an fsspec backend reports, None if nothing."""
    for key in ("mtime", "modified", "created", "LastModified", "last_modified"):
        val = info.get(key)
        if isinstance(val, datetime):
            return val.timestamp()
        if isinstance(val, int | float) and val > 0:
            # Koofr's `modified` is in milliseconds; anything after year 2400 in seconds is.
            return float(val) / 1000.0 if val > 1e11 else float(val)
    return None


def _is_local(fs: AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _raise_unless_missing(exc: BaseException) -> None:
    """``walk`` error hook: a folder that vanished is empty; any other failure must surface.

    fsspec's default silently omits folders it cannot list. For a store that turns a flaky
    network (Koofr answering 503) into "there are no index files" or "there are no packs",
    which backup, check and prune would then act on.
    """
    if not isinstance(exc, FileNotFoundError):
        raise exc


def _generic_find(fs: AbstractFileSystem) -> bool:
    return getattr(type(fs), "find", None) is AbstractFileSystem.find


class Storage:
    """Named-object access to a store root on an fsspec filesystem."""

    def __init__(self, fs: AbstractFileSystem, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/") if root not in ("/", "") else root
        self.local = _is_local(fs)
        self._fds: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._fd_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Storage({type(self.fs).__name__}, {self.root!r})"

    @property
    def location(self) -> str:
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return self.root if self.local else f"{proto}://{self.root}"

    def free_space(self) -> int | None:
        """Bytes the backend says are free for this store (Koofr: the mount's quota), or None
        when it says nothing (local disk and most fsspec backends)."""
        quota = getattr(self.fs, "quota", None)
        return int(quota(self.root)["free"]) if callable(quota) else None

    def trash(self) -> dict[str, int] | None:
        """What the backend keeps of deleted objects (Koofr's trash: ``files``, ``bytes``,
        ``retention_days``), or None when deletions are final."""
        trash = getattr(self.fs, "trash", None)
        if not callable(trash):
            return None
        try:
            return trash(self.root)  # type: ignore[no-any-return]
        except OSError:  # a hint for messages: a trash that cannot be read says nothing
            return None

    def path(self, name: str) -> str:
        if not self.root:
            return name
        return f"{self.root}/{name}" if not self.root.endswith("/") else self.root + name

    # -- reads ---------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self.path(name)))

    def read(self, name: str) -> bytes:
        try:
            if self.local:
                with open(self.path(name), "rb") as fh:
                    return fh.read()
            data = bytes(self.fs.cat_file(self.path(name)))
            throttle.DOWNLOAD.take(len(data))
            return data
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KlosetError(f"cannot read {name}: {exc}") from exc

    def read_range(self, name: str, offset: int, length: int) -> bytes:
        """Read exactly `length` bytes at `offset`; short reads mean a damaged object."""
        if length == 0:
            return b""
        if offset < 0 or length < 0:
            raise CorruptObject(f"{name}: bad range ({length} bytes at {offset})")
        if self.local:
            fd, size = self._open_pack(name)
            # A lying index must not make us allocate a huge buffer for a short file.
            if offset + length > size:
                raise CorruptObject(f"{name}: truncated (wanted {length} bytes at {offset})")
            data = os.pread(fd, length, offset)
        else:
            data = bytes(self.fs.cat_file(self.path(name), start=offset, end=offset + length))
            throttle.DOWNLOAD.take(len(data))
        if len(data) != length:
            raise CorruptObject(f"{name}: truncated (wanted {length} bytes at {offset})")
        return data

    def _open_pack(self, name: str) -> tuple[int, int]:
        """(fd, size) of a local object, kept open: packs are immutable once named, and a
        restore or an incremental backup reads thousands of blobs from a few packs."""
        with self._fd_lock:
            hit = self._fds.get(name)
            if hit is not None:
                self._fds.move_to_end(name)
                return hit
            fd = os.open(self.path(name), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            entry = (fd, os.fstat(fd).st_size)
            self._fds[name] = entry
            while len(self._fds) > 64:
                _old, (old_fd, _size) = self._fds.popitem(last=False)
                os.close(old_fd)
            return entry

    def close(self) -> None:
        with self._fd_lock:
            for fd, _size in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to other processes (Prefect, Dask): open descriptors and locks stay here.
        state = self.__dict__.copy()
        state["_fds"] = OrderedDict()
        del state["_fd_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fd_lock = threading.Lock()

    def size(self, name: str) -> int:
        if self.local:
            return os.stat(self.path(name)).st_size
        return int(self.fs.info(self.path(name))["size"])

    def list(self, directory: str) -> list[tuple[str, int]]:
        """(name relative to root, size) of files under `directory`, recursively."""
        return [(name, size) for name, size, _mtime in self.list_detailed(directory)]

    def list_detailed(self, directory: str) -> list[tuple[str, int, float | None]]:
        """(name, size, mtime or None) of files under `directory`: a fresh listing, no cache.

        A folder that cannot be listed raises instead of looking empty: prune and repair
        decide what to delete from this.
        """
        base = self.path(directory)
        out: list[tuple[str, int, float | None]] = []
        if self.local:
            if not os.path.isdir(base):
                return out
            for dirpath, _dirs, files in os.walk(base):
                for fname in files:
                    full = os.path.join(dirpath, fname)
                    try:
                        st = os.stat(full)
                    except FileNotFoundError:
                        continue  # another writer's temporary file, renamed while we listed
                    rel = os.path.relpath(full, self.root if self.root else ".")
                    out.append((rel.replace(os.sep, "/"), st.st_size, st.st_mtime))
            return sorted(out)
        self.fs.invalidate_cache(base)
        # fsspec's generic find walks folder by folder and drops the ones it cannot list;
        # backends with their own find (s3fs: one flat listing) raise and take no on_error.
        strict = {"on_error": _raise_unless_missing} if _generic_find(self.fs) else {}
        try:
            found: dict[str, Any] = self.fs.find(base, detail=True, **strict)
        except FileNotFoundError:
            return out
        prefix = self.fs._strip_protocol(self.root).rstrip("/")
        for full, info in found.items():
            if info.get("type") == "directory":
                continue
            stripped = self.fs._strip_protocol(full)
            rel = stripped[len(prefix) :].lstrip("/") if prefix else stripped.lstrip("/")
            out.append((rel, int(info.get("size") or 0), _info_mtime(info)))
        return sorted(out, key=lambda t: t[0])

    def iter_names(self, directory: str) -> Iterator[str]:
        for name, _size in self.list(directory):
            yield name

    # -- writes --------------------------------------------------------------------------
    def makedirs(self, name: str) -> None:
        self.fs.makedirs(self.path(name), exist_ok=True)

    def write(self, name: str, data: bytes) -> None:
        """Write an object so readers never see half of it."""
        target = self.path(name)
        if self.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            return
        parent = target.rsplit("/", 1)[0] if "/" in target else ""
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        # Remote backends (Koofr) write an upload atomically on the server side.
        throttle.UPLOAD.take(len(data))
        self.fs.pipe_file(target, data)

    def write_new(self, name: str, data: bytes) -> None:
        """Write an object that must not exist yet (used for CONFIG)."""
        if self.exists(name):
            raise FileExistsError(name)
        self.write(name, data)

    def put_local_file(self, local_path: str, name: str, *, move: bool = False) -> None:
        """Copy (or move, when on the same local disk) a sealed spool file into the store."""
        target = self.path(name)
        if self.local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if move:
                try:
                    os.replace(local_path, target)
                    return
                except OSError:
                    pass  # different device: fall back to copy
            tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
            shutil.copyfile(local_path, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            if move:
                os.unlink(local_path)
            return
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        throttle.UPLOAD.take(os.path.getsize(local_path))
        self.fs.put_file(local_path, target)
        if move:
            os.unlink(local_path)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(name))
