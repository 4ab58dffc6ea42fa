"""``KoofrFileSystem``: fsspec over Koofr's REST API, with fsspec's semantics exactly.

:class:`~koofrfs.base.KoofrBase` lists and routes paths; this class adds what changes the tree
(folders, deletes, server-side copy and move) and what moves bytes (reads, downloads, uploads,
file objects), with the errors fsspec's reference filesystems raise: ``FileNotFoundError``,
``FileExistsError``, ``IsADirectoryError``, ``NotADirectoryError``, ``PermissionError``. The
wire calls are :class:`koofrfs.api.MountApi`, the bytes :mod:`koofrfs.transfer`, the file
objects :mod:`koofrfs.files`. Every write invalidates the cached listings it touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable
from typing import IO, Any

from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.utils import isfilelike

from koofrfs.base import KoofrBase
from koofrfs.errors import KoofrHTTPError
from koofrfs.files import KoofrReadFile, KoofrWriteFile
from koofrfs.listing import to_entry
from koofrfs.paths import is_within, join, split
from koofrfs.transfer import Source, bytes_source, seekable_source


class KoofrFileSystem(KoofrBase):
    """An fsspec filesystem over one Koofr mount, or a whole account (``mount="*"``); the
    arguments are :class:`~koofrfs.base.KoofrBase`'s.

    Example:
        >>> fs = fsspec.filesystem("koofr", user="me@example.com", password="app-password")
        >>> fs.pipe_file("Backups/hello.txt", b"hi", modified=1614834367123)
    """

    # -- folders and deletes ----------------------------------------------------------------------

    def _create_folder(self, parent: str, name: str) -> bool:
        path = join(parent, name)
        api, kp = self._resolve(path)
        try:
            return api.create_folder(kp.rsplit("/", 1)[0] or "/", name)
        finally:
            self.invalidate_cache(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a folder and its missing parents: one ``files/folder`` per level.

        ``FileExistsError`` if ``path`` exists (unless ``exist_ok``) or is a file;
        ``NotADirectoryError`` if one of its parents is a file.
        """
        p = self._strip_protocol(path)
        if not exist_ok and self.exists(p):
            raise FileExistsError(errno.EEXIST, f"Koofr path /{p} already exists")
        if self._is_mount_root(p):
            if not self.exists(p):
                raise PermissionError(errno.EPERM, f"/{p} would be a new mount: create it in Koofr")
            return
        self._resolve(p)  # validates every name before anything is created
        parts = p.split("/")
        first = 1 if self.whole_account else 0
        for i in range(len(parts), first, -1):
            if "/".join(parts[:i]) in self._known_dirs:
                first = i
                break
        existed = False
        for i in range(first, len(parts)):
            try:
                existed |= not self._create_folder("/".join(parts[:i]), parts[i])
            except NotADirectoryError:
                raise NotADirectoryError(
                    errno.ENOTDIR, f"Koofr path /{'/'.join(parts[:i])} is a file, not a folder"
                ) from None
        if existed:  # a 400 means "exists" to rclone, but make sure it is a folder
            self._check_folder(p)
        self._known_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))

    def _check_folder(self, p: str) -> None:
        try:
            kind = self.info(p, refresh=True)["type"]
        except FileNotFoundError as exc:  # the 400 was not "exists": a parent is a file
            parent = self._file_parent(p)
            if parent is not None:
                raise NotADirectoryError(
                    errno.ENOTDIR, f"Koofr path /{parent} is a file, not a folder"
                ) from exc
            raise KoofrHTTPError(
                f"Koofr POST /{p} failed: 400 Bad Request (folder not created)",
                status=400,
                method="POST",
                path="/" + p,
            ) from exc
        if kind != "directory":
            raise FileExistsError(errno.EEXIST, f"Koofr path /{p} exists and is a file")

    def _file_parent(self, p: str) -> str | None:
        parent = split(p)[0]
        while parent and not self._is_mount_root(parent):
            try:
                if self.info(parent)["type"] == "file":
                    return parent
            except FileNotFoundError:
                pass
            parent = split(parent)[0]
        return None

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create one folder; ``FileExistsError`` if the path exists."""
        p = self._strip_protocol(path)
        if self.exists(p):
            raise FileExistsError(errno.EEXIST, f"Koofr path /{p} already exists")
        if create_parents:
            self.makedirs(p, exist_ok=True)
        else:
            self._create_folder(*split(p))
            self._known_dirs.add(p)

    def _delete(self, path: str) -> None:
        if self._is_mount_root(path):
            raise PermissionError(
                errno.EPERM, f"refusing to delete the root of a Koofr mount /{path}"
            )
        api, kp = self._resolve(path)
        try:
            api.remove(kp)
        finally:
            self.invalidate_cache(path)
            self._forget_dirs(path)

    def rm_file(self, path: str) -> None:
        """Delete one file (refuses folders, which Koofr would delete recursively)."""
        info = self.info(path)
        if info["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, f"Koofr path /{info['name']} is a folder")
        self._delete(info["name"])

    _rm = rm_file

    def rmdir(self, path: str) -> None:
        """Delete an empty folder."""
        info = self.info(path)
        if info["type"] != "directory":
            raise NotADirectoryError(errno.ENOTDIR, f"Koofr path /{info['name']} is not a folder")
        if self.ls(info["name"], refresh=True):
            raise OSError(errno.ENOTEMPTY, f"Koofr folder /{info['name']} is not empty")
        self._delete(info["name"])

    def rm(
        self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None
    ) -> None:
        """fsspec ``rm``: globs expand, folders need ``recursive`` unless empty.

        A folder deleted recursively (and without ``maxdepth``) goes in one server-side call.
        """
        if recursive and maxdepth is None:
            matched = self.expand_path(path)
            for p in matched:
                if not any(is_within(p, q) and p != q for q in matched):
                    self._delete(p)
            return
        for p in reversed(self.expand_path(path, recursive=recursive, maxdepth=maxdepth)):
            if self.isdir(p):
                self.rmdir(p)
            else:
                self.rm_file(p)

    # -- server-side copy and move ----------------------------------------------------------------

    def _target(self, src: dict[str, Any], dst: str, into: bool) -> str:
        """Resolve a copy/move destination and clear the way (like ``mv``/``cp`` on POSIX).

        An existing folder at ``dst`` receives the source inside it when ``into``; an existing
        file is replaced (Koofr's copy/move refuse to overwrite, so it is deleted first).
        """
        if src["name"].casefold() == dst.casefold():
            return dst  # case-only rename: the "existing" target is the source itself
        try:
            existing = self.info(dst, refresh=True)
        except FileNotFoundError:
            self._ensure_dir(split(dst)[0])
            return dst
        if existing["type"] == "directory" and into:
            return self._target(src, join(dst, split(src["name"])[1]), into=False)
        if existing["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, f"Koofr path /{dst} is a folder")
        if src["type"] == "directory":
            raise FileExistsError(errno.EEXIST, f"Koofr path /{dst} already exists")
        self._delete(dst)
        return dst

    def mv(
        self,
        path1: str,
        path2: str,
        recursive: bool = False,
        maxdepth: int | None = None,
        exact: bool = False,
        **kwargs: Any,
    ) -> None:
        """Server-side move of a file or a whole folder (one call, whatever ``recursive`` says),
        into ``path2`` if that is an existing folder (unless ``exact``); replaces a file."""
        src = self.info(path1)
        if self._is_mount_root(src["name"]):
            raise PermissionError(errno.EPERM, f"cannot move the root of a Koofr mount /{path1}")
        dst = self._target(src, self._strip_protocol(path2), into=not exact)
        if dst != src["name"]:
            self._transfer("move", src, dst)
            self._forget_dirs(src["name"])

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Server-side copy of one file keeping its mtime; a folder becomes a new empty folder."""
        src = self.info(path1)
        dst = self._strip_protocol(path2)
        if src["type"] == "directory":
            self.makedirs(dst, exist_ok=True)
            return
        dst = self._target(src, dst, into=False)
        if dst != src["name"]:
            self._transfer("copy", src, dst)

    def _transfer(self, op: str, src: dict[str, Any], dst: str) -> None:
        api, kp = self._resolve(src["name"])
        to, to_kp = self._resolve(dst)
        try:
            modified = src["modified"] if op == "copy" else None
            if not api.transfer(op, kp, to, to_kp, modified) and not self.exists(dst):
                raise FileNotFoundError(errno.ENOENT, f"Koofr {op} of {kp} to /{dst} failed")
        finally:
            self.invalidate_cache(src["name"])
            self.invalidate_cache(dst)

    # -- reading ----------------------------------------------------------------------------------

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """Bytes ``[start, end)`` of a file in one ranged GET (resumed after a drop)."""
        p = self._strip_protocol(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(p)["size"]
            start = max(0, size + start) if start is not None and start < 0 else start
            end = max(0, size + end) if end is not None and end < 0 else end
        start = start or 0
        if end is not None and end <= start:
            return b""
        return bytes(self._read_range(p, start, end))

    def _read_range(self, path: str, start: int, end: int | None) -> bytearray:
        api, kp = self._resolve(path)
        return api.read_range(kp, start, end)

    def get_file(
        self,
        rpath: str,
        lpath: Any,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: IO[bytes] | None = None,
        **kwargs: Any,
    ) -> None:
        """Download a file in one streamed GET, creating the local folders it needs; a folder
        becomes a local folder. The bytes are checked against Koofr's MD5: a torn download is
        fetched once more, then refused (:class:`KoofrChangedError`) and nothing is left."""
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        info = self.info(rpath)
        if info["type"] == "directory":
            if outfile is None:
                os.makedirs(lpath, exist_ok=True)
            return
        callback.set_size(info["size"])
        api, kp = self._resolve(info["name"])
        if outfile is not None:
            api.download_checked(kp, info["size"], info.get("md5"), outfile, callback)
            return
        os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
        try:
            with open(lpath, "wb") as target:
                api.download_checked(kp, info["size"], info.get("md5"), target, callback)
        except BaseException:
            if os.path.isfile(lpath):
                os.remove(lpath)
            raise

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        p = self._strip_protocol(path)
        if mode == "rb":
            info = self.info(p)
            if info["type"] == "directory":
                raise IsADirectoryError(errno.EISDIR, f"Koofr path /{p} is a folder")
            return KoofrReadFile(
                self,
                p,
                lambda start, end: self._read_range(p, start, end),
                block_size or self.readahead,
                cache_options=cache_options,
                size=kwargs.pop("size", None) or info["size"],
            )
        if mode not in ("wb", "xb", "ab"):
            raise ValueError(f"Koofr files cannot be opened in mode {mode!r}")
        self._resolve(p)  # validates the names before anything is written
        existing = None
        if mode != "wb":
            with contextlib.suppress(FileNotFoundError):
                existing = self.info(p, refresh=True)
        if existing is not None and existing["type"] == "directory":
            raise IsADirectoryError(errno.EISDIR, f"Koofr path /{p} is a folder")
        if mode == "xb" and existing is not None:
            raise FileExistsError(errno.EEXIST, f"Koofr file /{p} already exists")
        writer = KoofrWriteFile(
            self,
            p,
            self._upload,
            "wb",
            block_size,
            autocommit,
            modified=kwargs.pop("modified", None),
            spool=kwargs.pop("spool", True),
        )
        if existing is not None and existing["size"]:  # append: Koofr files are immutable, so
            api, kp = self._resolve(p)  # the new file starts with the old one's bytes
            api.download(kp, writer.write)
        return writer

    # -- writing ----------------------------------------------------------------------------------

    def _ensure_dir(self, path: str) -> None:
        if path and path not in self._known_dirs:
            self.makedirs(path, exist_ok=True)

    def _upload(self, path: str, source: Source, modified: int | None) -> dict[str, Any]:
        """Store ``source`` at ``path`` (replacing a file, keeping ``modified`` ms unless the
        mount cannot, when none is sent); its info. If the parent vanished behind the
        known-folders cache (404), the folders are made again and the upload sent once more."""
        p = self._strip_protocol(path)
        if self._is_mount_root(p):
            if p and not self.exists(p):
                raise PermissionError(
                    errno.EPERM, f"/{p}: files of the whole account go in a mount"
                )
            raise IsADirectoryError(errno.EISDIR, f"cannot upload to the root of a mount /{p}")
        parent, name = split(p)
        self._ensure_dir(parent)
        api, kp = self._resolve(p)
        folder = kp.rsplit("/", 1)[0] or "/"
        if self.setmtime is False or (self.setmtime is None and not api.mount.keeps_mtime):
            modified = None  # a connected cloud keeps its own time: claim none
        sends = 0

        def counted(_attempt: int) -> Iterable[bytes]:
            nonlocal sends  # each send, the second request below too, is a new attempt: a
            sends += 1  # streamed source must replay what it already gave
            return source(sends)

        try:
            try:
                item = api.upload(folder, name, counted, modified)
            except FileNotFoundError:
                self._known_dirs.clear()  # any of its parents may have gone too
                self.makedirs(parent, exist_ok=True)
                item = api.upload(folder, name, counted, modified)
        except NotADirectoryError:
            raise NotADirectoryError(
                errno.ENOTDIR, f"Koofr path /{self._file_parent(p) or parent} is not a folder"
            ) from None
        finally:
            self.invalidate_cache(p)
        return to_entry(parent, item)

    def pipe_file(
        self,
        path: str,
        value: bytes,
        mode: str = "overwrite",
        modified: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Store bytes at ``path`` (retryable); ``modified`` is the mtime in ms to keep."""
        if mode == "create" and self.exists(path):
            raise FileExistsError(errno.EEXIST, f"Koofr file /{self._strip_protocol(path)} exists")
        return self._upload(path, bytes_source(value), modified)

    def put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Callback = DEFAULT_CALLBACK,
        mode: str = "overwrite",
        modified: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Upload a local file streamed from disk, keeping its mtime (ms) unless ``modified``."""
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return None
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(errno.EEXIST, f"Koofr file /{self._strip_protocol(rpath)} exists")
        with open(lpath, "rb") as f:
            stat = os.fstat(f.fileno())
            callback.set_size(stat.st_size)
            when = stat.st_mtime_ns // 1_000_000 if modified is None else modified
            return self._upload(rpath, seekable_source(f, callback), when)

    def upload_fileobj(
        self, path: str, fileobj: IO[bytes], modified_ms: int | None = None
    ) -> dict[str, Any]:
        """Upload from a file object: retried by seeking back if it is seekable, else streamed."""
        seekable = False
        with contextlib.suppress(AttributeError, OSError, ValueError):
            seekable = bool(fileobj.seekable()) and fileobj.tell() >= 0
        if seekable:
            return self._upload(path, seekable_source(fileobj), modified_ms)
        with self.open(path, "wb", modified=modified_ms) as out:
            shutil.copyfileobj(fileobj, out, 1 << 20)
        assert out.result is not None
        return out.result  # type: ignore[no-any-return]
