"""Destinations: where a restore writes. Local disk is written safely and fast; anything else
(Koofr, S3, memory) goes through fsspec with the original mtimes where the backend keeps them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import threading
from collections.abc import Iterable
from typing import Any

from fsspec import AbstractFileSystem

from kloset import throttle
from kloset.errors import LocationError, NoSpace, UnsafePath
from kloset.tree import Entry


def safe_parts(relpath: str) -> list[str]:
    """Split a snapshot-relative path, refusing any component that could escape the target."""
    parts = [p for p in relpath.split("/") if p != ""]
    for p in parts:
        if p in (".", "..") or "\x00" in p or "/" in p:
            raise UnsafePath(f"refusing unsafe name {p!r} in {relpath!r}")
    return parts


class Destination:
    """What a restore target must do."""

    location: str

    def check_room(self, files: list[tuple[str, int]]) -> None:
        """Raise :class:`NoSpace` before anything is written if ``files`` (relative path,
        size) cannot fit; destinations that know no quota accept everything."""
        return None

    def prepare_dir(self, relpath: str) -> None:
        raise NotImplementedError

    def is_current(self, relpath: str, entry: Entry) -> bool | None:
        """True: identical file already there; False: a different one; None: nothing there."""
        raise NotImplementedError

    def write_file(self, relpath: str, entry: Entry, data: Iterable[bytes]) -> str:
        """Write the file, returning the MD5 hex of what was written."""
        raise NotImplementedError

    def symlink(self, relpath: str, entry: Entry) -> bool:
        raise NotImplementedError

    def finish_dir(self, relpath: str, entry: Entry) -> None:
        raise NotImplementedError

    def digest(self, relpath: str) -> tuple[int, str] | None:
        """(size, MD5 hex) of the file now at `relpath`, None if there is none; used to verify
        a restore by reading back what was written, not what was meant to be written."""
        raise NotImplementedError


class LocalDestination(Destination):
    """A directory on this machine. Never follows a symlink while writing."""

    def __init__(self, root: str, *, restore_owner: bool = False, create: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.location = self.root
        if create:  # a dry run looks at the target without making it
            os.makedirs(self.root, exist_ok=True)
        self.restore_owner = restore_owner
        # MD5 of what was written feeds `verify_restore` (Prefect); the CLI turns it off because
        # hashing every restored byte costs more CPU than decrypting it.
        self.hash_written = True
        # Directories this restore created: nothing in them predates it, so their files need
        # no `lstat` to see what is there, and their subfolders no walk up the parents.
        self._created: set[str] = set()

    def _path(self, relpath: str) -> str:
        parts = safe_parts(relpath)
        return os.path.join(self.root, *parts) if parts else self.root

    def _check_parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while len(parent) > len(self.root):
            st = os.lstat(parent)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"{parent} is not a directory (refusing to write through it)")
            parent = os.path.dirname(parent)

    def prepare_dir(self, relpath: str) -> None:
        path = self._path(relpath)
        if os.path.dirname(path) in self._created:
            with contextlib.suppress(FileExistsError):  # else: look at what is there
                os.mkdir(path, 0o700)
                self._created.add(path)
                return
        try:
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                return
            raise UnsafePath(f"{path} exists and is not a directory")
        except FileNotFoundError:
            pass
        self._check_parents(path)
        os.mkdir(path, 0o700)
        self._created.add(path)

    def is_current(self, relpath: str, entry: Entry) -> bool | None:
        path = self._path(relpath)
        if os.path.dirname(path) in self._created:
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return False
        return st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns

    def write_file(self, relpath: str, entry: Entry, data: Iterable[bytes]) -> str:
        path = self._path(relpath)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"{path} is a symlink (refusing to write through it)") from exc
            raise
        md5 = hashlib.md5(usedforsecurity=False) if self.hash_written else None
        try:
            for block in data:
                view = memoryview(block)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if md5 is not None:
                    md5.update(block)
            os.fchmod(fd, entry.permissions() if entry.mode else 0o644)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)
        return md5.hexdigest() if md5 is not None else ""

    def symlink(self, relpath: str, entry: Entry) -> bool:
        path = self._path(relpath)
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                os.unlink(path)
            else:
                return False
        except FileNotFoundError:
            pass
        os.symlink(entry.target or "", path)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        return True

    def finish_dir(self, relpath: str, entry: Entry) -> None:
        path = self._path(relpath)
        if entry.mode:
            os.chmod(path, entry.permissions())
        if entry.mtime_ns:
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)

    def digest(self, relpath: str) -> tuple[int, str] | None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self._path(relpath), flags)
        except FileNotFoundError:
            return None
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        with os.fdopen(fd, "rb") as fh:
            while block := fh.read(1 << 20):
                md5.update(block)
                size += len(block)
        return size, md5.hexdigest()


def _no_folder(info: dict[str, Any] | None) -> bool:
    return info is None or info.get("type") != "directory"


class FsspecDestination(Destination):
    """Any fsspec filesystem; Koofr keeps mtimes to the ms via its `modified` upload parameter."""

    def __init__(self, fs: AbstractFileSystem, root: str, location: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.location = location
        self._listings: dict[str, dict[str, dict[str, Any]]] = {}
        koofr = getattr(fs, "protocol", None) in ("koofr", ("koofr",))
        # Koofr names are case-insensitive (and case-preserving): see _claim.
        self.case_insensitive = koofr
        self._claims: dict[str, str] = {}
        self._claims_lock = threading.Lock()
        self.keeps_mtime = False
        self._probe()

    def _probe(self) -> None:
        """Fail now, with one line, if the destination cannot be reached or written at all.

        Without this a wrong password, a dead service or a read-only share only shows up as a
        per-path error on the restore root, and the restore "finishes" with exit 7 instead of
        failing clearly. A missing root is fine: the restore creates it.
        """
        try:
            info = self.fs.info(self.root or "/")
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise LocationError(f"cannot reach destination {self.location}: {exc}") from exc
        if info is not None and info.get("type") != "directory":
            raise LocationError(f"destination {self.location} exists and is not a folder")
        if info is None:
            self._listings[""] = {}  # nothing there yet: no listing to ask for, below it either
        # koofrfs says when a mount takes no writes (shared read-only, offline) and whether it
        # keeps the modification times given at upload (connected clouds do not).
        read_only = getattr(self.fs, "read_only", None)
        try:
            why = read_only(self.root) if callable(read_only) else None
        except OSError as exc:  # e.g. a mount of that name that does not exist
            raise LocationError(f"cannot reach destination {self.location}: {exc}") from exc
        if why:
            raise LocationError(f"cannot restore to {self.location}: {why}; nothing was written")
        self.keeps_mtime = bool(getattr(self.fs, "keeps_mtime", False))

    def check_room(self, files: list[tuple[str, int]]) -> None:
        """Compare what the restore adds with the free space the backend reports
        (``quota(path)``, which koofrfs offers), per mount for Koofr's whole-account view."""
        quota = getattr(self.fs, "quota", None)
        if not callable(quota):
            return
        per_mount = bool(getattr(self.fs, "whole_account", False)) and not self.root
        needed: dict[str, int] = {}
        for rel, size in files:
            key = rel.split("/", 1)[0] if per_mount else ""
            have = self._existing_size(rel)
            needed[key] = needed.get(key, 0) + max(0, size - have)
        for key, need in needed.items():
            if not need:
                continue
            where = "/".join(p for p in (self.root, key) if p)
            free = int(quota(where)["free"])
            if need > free:
                raise NoSpace(
                    f"not enough space on {self.location}{'/' + key if key else ''}: the restore "
                    f"adds {_size(need)} but Koofr reports {_size(free)} free "
                    f"({_size(need - free)} missing){self._trash_note(where)}; nothing was written"
                )

    def _trash_note(self, where: str) -> str:
        """What Koofr's trash holds there, when it says (it counts against the quota)."""
        trash = getattr(self.fs, "trash", None)
        try:
            held = int(trash(where)["bytes"]) if callable(trash) else 0
        except OSError:  # the trash is a hint; failing to read it must not hide the real error
            held = 0
        if not held:
            return ""
        return (
            f"; another {_size(held)} of deleted files wait in Koofr's trash, counted against "
            "the quota until it is emptied (in the Koofr web app)"
        )

    def _existing_size(self, relpath: str) -> int:
        reldir, _, name = relpath.rpartition("/")
        try:
            info = self._listing(reldir).get(name.lower())
        except (OSError, ValueError):  # a name Koofr refuses fails later, with its own line
            return 0
        return int(info.get("size") or 0) if info and info.get("type") != "directory" else 0

    def _path(self, relpath: str) -> str:
        parts = safe_parts(relpath)
        return "/".join([self.root, *parts]) if self.root else "/".join(parts)

    def prepare_dir(self, relpath: str) -> None:
        try:
            self.fs.makedirs(self._path(relpath) or "/", exist_ok=True)
        except ValueError as exc:
            # A name this backend refuses (Koofr: backslash, control characters) fails that
            # folder only, like any other folder that cannot be created, not the whole restore.
            raise OSError(str(exc)) from exc

    def _listing(self, reldir: str) -> dict[str, dict[str, Any]]:
        if reldir not in self._listings:
            parent, _, name = reldir.rpartition("/")
            if reldir and _no_folder(self._listing(parent).get(name.lower())):
                # Its parent holds no such folder: no request (a restore into a new folder
                # asked Koofr for one listing per folder, one after another, before writing).
                self._listings[reldir] = {}
                return self._listings[reldir]
            try:
                entries = self.fs.ls(self._path(reldir) or "/", detail=True)
            except FileNotFoundError:
                entries = []
            self._listings[reldir] = {
                str(e["name"]).rstrip("/").rsplit("/", 1)[-1].lower(): e for e in entries
            }
        return self._listings[reldir]

    def is_current(self, relpath: str, entry: Entry) -> bool | None:
        self._claim(relpath)
        reldir, _, name = relpath.rpartition("/")
        info = self._listing(reldir).get(name.lower())
        if info is None:
            return None
        if info.get("type") == "directory" or int(info.get("size") or 0) != entry.size:
            return False
        want = entry.extra.get("md5")
        have = info.get("md5") or info.get("hash")
        if want and have:
            return bool(want == have)
        modified = info.get("modified")
        if isinstance(modified, int):
            return modified == entry.mtime_ns // 1_000_000
        return False

    def _claim(self, relpath: str) -> str:
        """The snapshot path that owns ``relpath``'s name here: the first one seen.

        A snapshot of a case-sensitive disk may hold ``README.md`` and ``readme.md``; Koofr
        keeps one file for both, so writing the second would silently replace the first while
        the restore reports both as written. Files skipped as identical claim their name too
        (``is_current``), so a rerun with ``--overwrite`` cannot replace them either.
        """
        if not self.case_insensitive:
            return relpath
        with self._claims_lock:
            return self._claims.setdefault(relpath.lower(), relpath)

    def write_file(self, relpath: str, entry: Entry, data: Iterable[bytes]) -> str:
        owner = self._claim(relpath)
        if owner != relpath:
            raise FileExistsError(
                f"{self.location} has case-insensitive names: /{relpath} would replace /{owner}"
            )
        path = self._path(relpath)
        md5 = hashlib.md5(usedforsecurity=False)
        kwargs: dict[str, Any] = {}
        if self.keeps_mtime:  # a connected cloud would keep its own time: do not pretend
            kwargs["modified"] = entry.mtime_ns // 1_000_000
        with self.fs.open(path, "wb", **kwargs) as fh:
            for block in data:
                throttle.UPLOAD.take(len(block))  # --limit-upload
                fh.write(block)
                md5.update(block)
        return md5.hexdigest()

    def symlink(self, relpath: str, entry: Entry) -> bool:
        return False  # object stores have no symlinks; the restore reports them as skipped

    def finish_dir(self, relpath: str, entry: Entry) -> None:
        return None

    def digest(self, relpath: str) -> tuple[int, str] | None:
        path = self._path(relpath)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        known = info.get("md5") or info.get("hash")
        if isinstance(known, str) and len(known) == 32:
            # Koofr computes the MD5 of what it stored: no download needed.
            return int(info.get("size") or 0), known.lower()
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        with throttle.ThrottledReader(self.fs.open(path, "rb")) as fh:
            while block := fh.read(1 << 20):
                md5.update(block)
                size += len(block)
        return size, md5.hexdigest()


def _size(n: int) -> str:
    """Koofr counts space in MiB, so messages about it do too."""
    return f"{n / 2**20:,.1f} MiB"
