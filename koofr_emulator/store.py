"""The on-disk namespace of one Koofr device: case-insensitive, case-preserving, no duplicates.

Files live under ``files_dir`` with their display names (so the tree is inspectable), the
Koofr ``modified`` is the on-disk mtime (ms precision) and MD5s live in a sidecar
(``hashcache``). Every namespace mutation happens under one lock; uploads stage their data in
``state_dir/tmp`` (same filesystem) and appear with one rename; deletions move into
``state_dir/trash``, Koofr's trash, where they stay ``TRASH_RETENTION_DAYS``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from . import behaviour, diskops
from .entries import Entry, PutOptions, check_conditions
from .errors import ApiError, already_exists, conflict, not_dir, not_file, not_found
from .hashcache import HashCache
from .paths import is_same_or_within, parts, split_parent_name, unused_name, validate_name

_fold = behaviour.fold_name
_DIR_CACHE_SIZE = 4096
MIB = 1024 * 1024


class Store:
    """Namespace operations with Koofr semantics; raises ``ApiError`` for API outcomes."""

    def __init__(self, files_dir: Path, state_dir: Path, space_total_mib: int) -> None:
        self.files_dir = files_dir
        self.tmp_dir = state_dir / "tmp"
        self.trash_dir = state_dir / "trash"
        for d in (self.files_dir, self.tmp_dir, self.trash_dir):
            d.mkdir(parents=True, exist_ok=True)
        diskops.clear_dir(self.tmp_dir)
        self.space_total_mib = space_total_mib
        self.lock = threading.RLock()
        self.hashes = HashCache(state_dir / "meta.sqlite3")
        self._dirs: OrderedDict[str, tuple[int, dict[str, str]]] = OrderedDict()
        self._used = diskops.measure(self.files_dir)[0]
        if behaviour.TRASH_COUNTS_AGAINST_QUOTA:
            self._used += diskops.measure(self.trash_dir)[0]
        self._trash_oldest = min((r["deleted"] for r in self._trash_records()), default=None)

    # -- lookup -------------------------------------------------------------------------------

    def _children(self, d: Path) -> dict[str, str] | None:
        """Folded name -> stored name for directory ``d`` (None if ``d`` is not a dir)."""
        key = str(d)
        try:
            st = os.stat(d)
        except (FileNotFoundError, NotADirectoryError):
            return None
        cached = self._dirs.get(key)
        if cached is not None and cached[0] == st.st_mtime_ns:
            self._dirs.move_to_end(key)
            return cached[1]
        try:
            names = os.listdir(d)
        except (NotADirectoryError, FileNotFoundError):
            return None
        mapping = {_fold(n): n for n in sorted(names)}
        self._dirs[key] = (st.st_mtime_ns, mapping)
        if len(self._dirs) > _DIR_CACHE_SIZE:
            self._dirs.popitem(last=False)
        return mapping

    def _locate(self, path: str) -> Path | None:
        cur = self.files_dir
        for part in parts(path):
            children = self._children(cur)
            actual = children.get(_fold(part)) if children is not None else None
            if actual is None:
                return None
            cur = cur / actual
        return cur

    def _dir(self, path: str) -> Path:
        """Existing directory for ``path`` or 404/400 NotDir."""
        disk = self._locate(path)
        if disk is None:
            raise not_found()
        if not disk.is_dir():
            raise not_dir()
        return disk

    def _entry(self, disk: Path, st: os.stat_result | None = None) -> Entry:
        st = st or os.stat(disk)
        name = "" if disk == self.files_dir else disk.name
        if os.path.isdir(disk):
            return Entry(name, True, 0, diskops.mtime_ms(st), None, "")
        md5 = self.hashes.get(disk, st)
        return Entry(
            name, False, st.st_size, diskops.mtime_ms(st), md5, behaviour.content_type_for(name)
        )

    @contextmanager
    def _mutating(self, *dirs: Path) -> Iterator[None]:
        """Keep directory mtimes stable (Koofr dir ``modified`` = creation time) and the
        listing cache coherent while entries of ``dirs`` change."""
        saved = [(d, os.stat(d)) for d in dict.fromkeys(dirs)]
        try:
            yield
        finally:
            for d, st in saved:
                if not d.exists():
                    continue
                if behaviour.DIR_MODIFIED_IS_CREATION_TIME:
                    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
                cached = self._dirs.get(str(d))
                if cached is not None:
                    self._dirs[str(d)] = (os.stat(d).st_mtime_ns, cached[1])

    def _forget_dirs(self, prefix: Path) -> None:
        p = str(prefix)
        for key in [k for k in self._dirs if k == p or k.startswith(p + os.sep)]:
            del self._dirs[key]

    # -- reads --------------------------------------------------------------------------------

    def info(self, path: str) -> Entry:
        with self.lock:
            disk = self._locate(path)
            if disk is None:
                raise not_found()
            return self._entry(disk)

    def list(self, path: str) -> list[Entry]:
        with self.lock:
            disk = self._locate(path)
            if disk is None:
                raise not_found()
            children = self._children(disk)
            if children is None:
                raise ApiError(behaviour.LIST_ON_FILE_STATUS, "NotDir", "Directory expected")
            entries = []
            for name in children.values():
                try:
                    entries.append(self._entry(disk / name))
                except FileNotFoundError:
                    continue
        if behaviour.SORT_LISTINGS:
            entries.sort(key=lambda e: (_fold(e.name), e.name))
        return entries

    def tree(self, path: str) -> dict[str, Any]:
        with self.lock:
            disk = self._locate(path)
            if disk is None:
                raise not_found()
            return self._tree(disk)

    def _tree(self, disk: Path) -> dict[str, Any]:
        doc = self._entry(disk).to_json()
        children = self._children(disk) if disk.is_dir() else None
        names = sorted(children.values(), key=lambda n: (_fold(n), n)) if children else []
        doc["children"] = [self._tree(disk / n) for n in names]
        return doc

    def open_file(self, path: str) -> tuple[Entry, BinaryIO]:
        """Entry plus an open handle; the handle stays valid if the file is replaced later."""
        with self.lock:
            disk = self._locate(path)
            if disk is None:
                raise not_found()
            if disk.is_dir():
                raise not_file()
            fh = open(disk, "rb")  # noqa: SIM115 - handed to the caller, closed after streaming
            try:
                return self._entry(disk, os.fstat(fh.fileno())), fh
            except BaseException:
                fh.close()
                raise

    @property
    def used_bytes(self) -> int:
        return self._used

    def _check_quota(self, new_used: int) -> None:
        if behaviour.ENFORCE_QUOTA and new_used > self.space_total_mib * MIB:
            raise ApiError(
                behaviour.QUOTA_EXCEEDED_STATUS, behaviour.QUOTA_EXCEEDED_CODE, "Quota exceeded"
            )

    # -- namespace mutations ------------------------------------------------------------------

    def mkdir(self, parent: str, name: str) -> Entry:
        validate_name(name)
        with self.lock:
            pdisk = self._locate(parent)
            children = self._children(pdisk) if pdisk is not None else None
            if children is not None and _fold(name) in children:
                raise already_exists(behaviour.FOLDER_EXISTS_STATUS)
            pdisk = self._dir(parent)
            assert children is not None
            with self._mutating(pdisk):
                os.mkdir(pdisk / name)
                children[_fold(name)] = name
            return self._entry(pdisk / name)

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its missing parents (for seeding data and shared folders)."""
        cur = "/"
        for part in parts(path):
            try:
                self.mkdir(cur, part)
            except ApiError as err:
                if err.code != "AlreadyExists":
                    raise
            cur = cur.rstrip("/") + "/" + part

    def remove(
        self,
        path: str,
        *,
        if_size: int | None = None,
        if_modified: int | None = None,
        if_hash: str | None = None,
        if_empty: bool = False,
    ) -> None:
        if path == "/":
            raise not_dir()
        with self.lock:
            disk = self._locate(path)
            if disk is None:
                raise not_found()
            entry = self._entry(disk)
            check_conditions(entry, if_size, if_modified, if_hash, "Remove")
            if if_empty and entry.is_dir and os.listdir(disk):
                raise conflict()
            size, inodes = diskops.measure(disk)
            item = f"{uuid.uuid4().hex}"
            with self._mutating(disk.parent):
                os.rename(disk, self.trash_dir / item)
                children = self._children_cached(disk.parent)
                if children is not None:
                    children.pop(_fold(disk.name), None)
            record = {
                "path": path,
                "name": entry.name,
                "deleted": diskops.now_ms(),
                "size": size,
                "contentType": entry.content_type,
            }
            (self.trash_dir / f"{item}.json").write_text(json.dumps(record), "utf-8")
            if self._trash_oldest is None:
                self._trash_oldest = record["deleted"]
            self._forget_dirs(disk)
            if not behaviour.TRASH_COUNTS_AGAINST_QUOTA:
                self._used -= size
            self.hashes.forget(inodes)
        self.expire_trash()

    def trash_items(self) -> list[dict[str, Any]]:
        """What the trash holds (Koofr's ``TrashFile`` fields), oldest first."""
        self.expire_trash()
        with self.lock:
            return sorted(self._trash_records(), key=lambda i: i["deleted"])

    def _trash_records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text("utf-8")) for p in self.trash_dir.glob("*.json")]

    def empty_trash(self, older_than_ms: int | None = None) -> int:
        """Delete trashed items for good (all, or deleted before ``older_than_ms``); the bytes
        freed. The real service does this after ``retentionDays`` or from its web app."""
        freed = 0
        with self.lock:
            for meta in list(self.trash_dir.glob("*.json")):
                record = json.loads(meta.read_text("utf-8"))
                if older_than_ms is not None and record["deleted"] >= older_than_ms:
                    continue
                data = self.trash_dir / meta.stem
                size = diskops.measure(data)[0] if data.exists() else 0
                diskops.remove_tree(data)
                meta.unlink()
                freed += size
                if behaviour.TRASH_COUNTS_AGAINST_QUOTA:
                    self._used -= size
            left = [r["deleted"] for r in self._trash_records()]
            self._trash_oldest = min(left, default=None)
        return freed

    def expire_trash(self) -> None:
        """Forget trashed items older than the retention period."""
        cutoff = diskops.now_ms() - behaviour.TRASH_RETENTION_DAYS * 86_400_000
        if self._trash_oldest is not None and self._trash_oldest < cutoff:
            self.empty_trash(cutoff)

    def _children_cached(self, d: Path) -> dict[str, str] | None:
        cached = self._dirs.get(str(d))
        return cached[1] if cached is not None else None

    def _target(self, dst: str) -> tuple[Path, str]:
        """Parent dir and validated name of a copy/move destination."""
        dst_parent, dst_name = split_parent_name(dst)
        validate_name(dst_name)
        return self._dir(dst_parent), dst_name

    def copy(
        self, src: str, dst: str, modified: int | None = None, source: Store | None = None
    ) -> str:
        """Copy ``src`` (of ``source``, another device, or of this one) to ``dst`` here."""
        origin = source or self
        if origin is self and (src == "/" or is_same_or_within(dst, src)):
            raise ApiError(400, "CopyIntoSelf", "Cannot copy into itself")
        with origin.lock, self.lock:
            if self._locate(dst) is not None:
                raise already_exists()
            sdisk = origin._locate(src)
            if sdisk is None:
                raise not_found()
            pdisk, name = self._target(dst)
            size, _ = diskops.measure(sdisk)
            self._check_quota(self._used + size)
            staging = self.tmp_dir / f"copy-{uuid.uuid4().hex}"
            try:
                copied = diskops.copy_tree(sdisk, staging, lambda p: origin.hashes.get(p))
                if modified is not None:
                    diskops.set_mtime_ms(staging, modified)
                elif not behaviour.COPY_KEEPS_SOURCE_MODIFIED:
                    diskops.set_mtime_ms(staging, diskops.now_ms())
            except BaseException:
                diskops.remove_tree(staging)
                raise
            final = pdisk / name
            children = self._children(pdisk)
            with self._mutating(pdisk):
                os.rename(staging, final)
                if children is not None:
                    children[_fold(name)] = name
            for rel, md5 in copied:
                self.hashes.put(final / rel, md5)
            self._used += size
            return name

    def check(
        self,
        path: str,
        if_size: int | None = None,
        if_modified: int | None = None,
        if_hash: str | None = None,
    ) -> None:
        """404 if ``path`` is missing, 409 if it fails the ``if*`` conditions of a move."""
        with self.lock:
            disk = self._locate(path)
            if disk is None:
                raise not_found()
            check_conditions(self._entry(disk), if_size, if_modified, if_hash, "Move")

    def move(
        self,
        src: str,
        dst: str,
        *,
        if_size: int | None = None,
        if_modified: int | None = None,
        if_hash: str | None = None,
    ) -> str:
        case_only = _fold(src) == _fold(dst)
        if src == "/" or (is_same_or_within(dst, src) and not case_only):
            raise ApiError(400, "MoveIntoSelf", "Cannot move into itself")
        if case_only and (src == dst or not behaviour.CASE_ONLY_RENAME_ALLOWED):
            if src == dst:
                raise ApiError(400, "MoveIntoSelf", "Cannot move into itself")
            raise already_exists()
        with self.lock:
            if not case_only and self._locate(dst) is not None:
                raise already_exists()
            sdisk = self._locate(src)
            if sdisk is None:
                raise not_found()
            entry = self._entry(sdisk)
            check_conditions(entry, if_size, if_modified, if_hash, "Move")
            pdisk, name = self._target(dst)
            if case_only:
                pdisk = sdisk.parent
            final = pdisk / name
            st = os.stat(sdisk)
            with self._mutating(sdisk.parent, pdisk):
                self._children(sdisk.parent)
                self._children(pdisk)
                os.rename(sdisk, final)
                os.utime(final, ns=(st.st_atime_ns, st.st_mtime_ns))
                old_children = self._children_cached(sdisk.parent)
                if old_children is not None:
                    old_children.pop(_fold(sdisk.name), None)
                new_children = self._children_cached(pdisk)
                if new_children is not None:
                    new_children[_fold(name)] = name
            self._forget_dirs(sdisk)
            if not entry.is_dir:
                self.hashes.refresh(final, entry.md5)
            return name

    # -- uploads ------------------------------------------------------------------------------

    def new_temp(self) -> Path:
        """A fresh staging path outside the namespace for an incoming upload."""
        return self.tmp_dir / f"upload-{uuid.uuid4().hex}"

    def _resolve_put(self, pdisk: Path, name: str, opts: PutOptions) -> tuple[str, Path | None]:
        """Final name and the existing file to replace (fake ``create_file_check``)."""
        children = self._children(pdisk)
        if children is None:
            raise not_dir()
        existing_name = children.get(_fold(name))
        existing = pdisk / existing_name if existing_name is not None else None
        if opts.autorename:
            return unused_name(name, lambda n: _fold(n) in children), None
        if opts.overwrite:
            if existing is None:
                if opts.has_conditions and not opts.ignore_nonexisting:
                    raise conflict("Overwrite file not found")
                return name, None
            entry = self._entry(existing)
            check_conditions(entry, opts.if_size, opts.if_modified, opts.if_hash, "Overwrite")
            if entry.is_dir:
                raise not_file()
            return name, existing
        if existing is not None:
            raise already_exists(behaviour.UPLOAD_EXISTS_STATUS)
        return name, None

    def check_put(self, parent: str, name: str, opts: PutOptions) -> None:
        """Fail fast (before the body is read) on a missing parent or a certain conflict."""
        validate_name(name)
        with self.lock:
            self._resolve_put(self._dir(parent), name, opts)

    def commit_put(self, parent: str, name: str, opts: PutOptions, staged: Path, md5: str) -> Entry:
        """Atomically move a fully received upload into the namespace."""
        validate_name(name)
        with self.lock:
            pdisk = self._dir(parent)
            final_name, existing = self._resolve_put(pdisk, name, opts)
            size = os.stat(staged).st_size
            old_size, old_inodes = diskops.measure(existing) if existing else (0, [])
            self._check_quota(self._used - old_size + size)
            modified = opts.modified if opts.modified is not None else diskops.now_ms()
            diskops.set_mtime_ms(staged, modified)
            if existing is not None and not behaviour.OVERWRITE_TAKES_NEW_CASE:
                final_name = existing.name
            final = pdisk / final_name
            with self._mutating(pdisk):
                if existing is not None and existing.name != final_name:
                    os.unlink(existing)
                os.replace(staged, final)
                children = self._children_cached(pdisk)
                if children is not None:
                    children[_fold(final_name)] = final_name
            self.hashes.forget(old_inodes)
            self.hashes.put(final, md5)
            self._used += size - old_size
            return self._entry(final)

    def close(self) -> None:
        self.hashes.close()
