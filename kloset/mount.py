"""`kloset mount`: the store tree (`kloset.storetree`) as a read-only FUSE filesystem.

Built on mfusepy (ctypes over libfuse 3 on Linux, libfuse 2 / macFUSE on macOS; maintained,
pure Python, nothing to compile). libfuse runs the request loop in its own threads and
handles SIGINT, SIGTERM and SIGHUP by leaving the loop and unmounting, so Ctrl-C and
`fusermount3 -u` both end `mount` cleanly. Files are read through `kloset.reader.FileReader`
(ranged fetches with readahead); paths below `/snapshots`, `/ids` and `/tags` never change,
so the kernel is told to keep their pages cached across opens.
"""

from __future__ import annotations

import errno
import itertools
import os
import platform
import stat
import sys
import threading
from collections.abc import Callable
from typing import Any

from kloset.errors import KlosetError, LocationError, PathNotFound
from kloset.reader import FileReader
from kloset.storetree import Node, StoreTree
from kloset.tree import SYMLINK

FUSE_HINT = (
    "install FUSE (Debian/Ubuntu: apt install fuse3; macOS: macFUSE from "
    "https://osxfuse.github.io) and check that /dev/fuse exists"
)


def load_fuse() -> Any:
    """The mfusepy module, or one clear line saying what is missing."""
    try:
        import mfusepy
    except ImportError as exc:
        if getattr(exc, "name", "") == "mfusepy":
            raise KlosetError(
                "mount needs the 'mount' extra: pip install 'prefect-kloset[mount]'"
            ) from exc
        raise KlosetError(f"FUSE is not available ({exc}): {FUSE_HINT}") from exc
    except (OSError, AttributeError) as exc:  # mfusepy raises these when libfuse is missing
        raise KlosetError(f"FUSE is not available ({exc}): {FUSE_HINT}") from exc
    if platform.system() == "Linux" and not os.path.exists("/dev/fuse"):
        raise KlosetError(f"FUSE is not available (no /dev/fuse): {FUSE_HINT}")
    return mfusepy


def check_mountpoint(path: str) -> str:
    """An existing, empty directory (what `mount` needs), as an absolute path."""
    full = os.path.abspath(os.path.expanduser(path))
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise LocationError(f"mountpoint {path} does not exist (create it first)") from None
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise LocationError(
                f"mountpoint {path} is a dead FUSE mount: run 'fusermount3 -u {full}' first"
            ) from None
        raise LocationError(f"mountpoint {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LocationError(f"mountpoint {path} is not a directory")
    if os.path.ismount(full):
        raise LocationError(f"mountpoint {path} is already a mount point")
    try:
        if os.listdir(full):
            raise LocationError(f"mountpoint {path} is not empty")
    except OSError as exc:
        raise LocationError(f"mountpoint {path}: {exc.strerror or exc}") from None
    return full


def _warn(path: str, exc: Exception) -> None:
    """A read that failed (damaged pack, store unreachable): one line, the mount stays up."""
    print(f"kloset: {path}: {exc}", file=sys.stderr, flush=True)


def _attrs(node: Node, uid: int, gid: int) -> dict[str, Any]:
    size = node.size if node.type != SYMLINK else len(os.fsencode(node.target or ""))
    return {
        "st_mode": node.mode,
        "st_nlink": 2 if node.is_dir else 1,
        "st_size": size,
        "st_blocks": (size + 511) // 512,
        "st_blksize": 128 * 1024,
        "st_uid": uid,
        "st_gid": gid,
        "st_mtime": node.mtime_ns,
        "st_ctime": node.mtime_ns,
        "st_atime": node.mtime_ns,
    }


def operations(tree: StoreTree, on_ready: Callable[[], None] | None = None) -> Any:
    """The FUSE callbacks over `tree` (a class built here so mfusepy is imported only now).
    `on_ready` runs once the kernel has connected, i.e. the mount is in place."""
    fuse = load_fuse()

    class KlosetFS(fuse.Operations):  # type: ignore[misc, name-defined]
        use_ns = True  # mtimes to the nanosecond, as stored

        def __init__(self) -> None:
            self.uid, self.gid = os.getuid(), os.getgid()
            self._files: dict[int, FileReader] = {}
            self._ids = itertools.count(1)
            self._lock = threading.Lock()

        def init(self, path: str) -> None:
            if on_ready is not None:
                on_ready()

        def _node(self, path: str) -> Node:
            try:
                return tree.stat(path)
            except PathNotFound:
                raise fuse.FuseOSError(errno.ENOENT) from None
            except KlosetError as exc:  # a damaged tree: one path fails, the mount stays
                _warn(path, exc)
                raise fuse.FuseOSError(errno.EIO) from None

        def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
            return _attrs(self._node(path), self.uid, self.gid)

        def readdir(self, path: str, fh: int) -> list[Any]:
            try:
                children = tree.listdir(path)
            except PathNotFound:
                raise fuse.FuseOSError(errno.ENOENT) from None
            except KlosetError as exc:
                _warn(path, exc)
                raise fuse.FuseOSError(errno.EIO) from None
            return [".", "..", *((name, {"st_mode": n.mode}, 0) for name, n in children)]

        def readlink(self, path: str) -> str:
            node = self._node(path)
            if node.type != SYMLINK:
                raise fuse.FuseOSError(errno.EINVAL)
            return node.target or ""

        def open(self, path: str, fi: Any) -> int:
            if fi.flags & os.O_ACCMODE != os.O_RDONLY:
                raise fuse.FuseOSError(errno.EROFS)
            node = self._node(path)
            if node.is_dir:
                raise fuse.FuseOSError(errno.EISDIR)
            assert node.entry is not None
            try:
                reader = FileReader(tree.repo, node.entry)
            except KlosetError as exc:
                _warn(path, exc)
                raise fuse.FuseOSError(errno.EIO) from None
            with self._lock:
                fh = next(self._ids)
                self._files[fh] = reader
            fi.fh = fh
            fi.keep_cache = 1 if node.immutable else 0
            return 0

        def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
            reader = self._files.get(fi.fh)
            if reader is None:
                raise fuse.FuseOSError(errno.EBADF)
            try:
                return reader.pread(offset, size)
            except KlosetError as exc:
                _warn(path, exc)
                raise fuse.FuseOSError(errno.EIO) from None

        def release(self, path: str, fi: Any) -> int:
            with self._lock:
                reader = self._files.pop(fi.fh, None)
            if reader is not None:
                reader.close()
            return 0

        def statfs(self, path: str) -> dict[str, int]:
            return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    return KlosetFS()


def mount(
    tree: StoreTree,
    mountpoint: str,
    *,
    allow_other: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve `tree` at `mountpoint` until unmounted or interrupted (blocks)."""
    fuse = load_fuse()
    options: dict[str, Any] = {
        "foreground": True,
        "ro": True,
        "fsname": "kloset",
        "default_permissions": True,  # the kernel checks the stored modes
        "nosuid": True,
        "nodev": True,
    }
    if platform.system() == "Linux":
        options["subtype"] = "kloset"
    else:
        options["volname"] = "kloset"
    if allow_other:
        options["allow_other"] = True
    try:
        fuse.FUSE(operations(tree, on_ready), mountpoint, raw_fi=True, **options)
    except RuntimeError as exc:  # libfuse said no: permissions, no /dev/fuse, allow_other
        raise KlosetError(
            f"cannot mount at {mountpoint} (libfuse error {exc}): {FUSE_HINT}"
        ) from exc
