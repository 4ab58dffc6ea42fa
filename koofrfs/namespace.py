"""Namespace operations of ``KoofrFileSystem``: folders, deletes, server-side copy and move.

Split from ``filesystem.py`` to keep each module readable; nothing here moves file bytes through
the client. Koofr specifics handled here: ``files/folder`` answers 400 (not 409) when the folder
exists, ``files/remove`` deletes folders recursively (so ``rm_file`` refuses folders), and
``files/copy``/``files/move`` refuse to overwrite (so an existing file is deleted first).
"""

from __future__ import annotations

import errno
from typing import Any

from fsspec.spec import AbstractFileSystem

from koofrfs.errors import KoofrExists, KoofrHTTPError
from koofrfs.paths import join, split, to_koofr


class NamespaceOps(AbstractFileSystem):
    """Mixed into :class:`koofrfs.filesystem.KoofrFileSystem`, which provides the plumbing
    (``client``, ``_api``, ``info``, ``invalidate_cache``, ``_known_dirs``...)."""

    _known_dirs: set[str]

    # -- folders ----------------------------------------------------------------------------------

    def _create_folder(self, parent: str, name: str) -> bool:
        """One ``files/folder`` call; False if it already existed (Koofr answers 400 or 409)."""
        try:
            self.client.request(
                "POST",
                self._api("folder"),
                path=to_koofr(join(parent, name)),
                params=[("path", "/" + parent)],
                json_body={"name": name},
                expected=(200, 201),
            )
        except KoofrExists:
            return False
        except KoofrHTTPError as exc:
            if exc.status != 400:
                raise
            return False
        finally:
            self.invalidate_cache(join(parent, name))
        return True

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a folder and its missing parents: one ``files/folder`` per level."""
        p = self._strip_protocol(path)
        to_koofr(p)
        if not exist_ok and self.exists(p):
            raise FileExistsError(f"Koofr path /{p} already exists")
        if not p:
            return
        parts = p.split("/")
        first = 0
        for i in range(len(parts), 0, -1):
            if "/".join(parts[:i]) in self._known_dirs:
                first = i
                break
        existed = False
        for i in range(first, len(parts)):
            existed |= not self._create_folder("/".join(parts[:i]), parts[i])
        if existed:  # a 400 means "exists" to rclone, but make sure it is a folder
            try:
                kind = self.info(p, refresh=True)["type"]
            except FileNotFoundError as exc:
                raise KoofrHTTPError(
                    f"Koofr POST /{p} failed: 400 Bad Request (folder not created)",
                    status=400,
                    method="POST",
                    path="/" + p,
                ) from exc
            if kind != "directory":
                raise FileExistsError(f"Koofr path /{p} exists and is a file")
        self._known_dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create one folder; ``FileExistsError`` if the path exists."""
        p = self._strip_protocol(path)
        if self.exists(p):
            raise FileExistsError(f"Koofr path /{p} already exists")
        if create_parents:
            self.makedirs(p, exist_ok=True)
        else:
            self._create_folder(*split(p))
            self._known_dirs.add(p)

    # -- deleting ---------------------------------------------------------------------------------

    def _delete(self, path: str) -> None:
        kp = to_koofr(path)
        if kp == "/":
            raise PermissionError("refusing to delete the root of a Koofr mount")
        try:
            self.client.request(
                "DELETE", self._api("remove"), path=kp, params=[("path", kp)], ok_on_retry=(404,)
            )
        finally:
            self.invalidate_cache(path)
            self._forget_dirs(path)

    def rm_file(self, path: str) -> None:
        """Delete one file (refuses folders, which Koofr would delete recursively)."""
        info = self.info(path)
        if info["type"] == "directory":
            raise IsADirectoryError(f"Koofr path /{info['name']} is a folder")
        self._delete(info["name"])

    _rm = rm_file

    def rmdir(self, path: str) -> None:
        """Delete an empty folder."""
        info = self.info(path)
        if info["type"] != "directory":
            raise NotADirectoryError(f"Koofr path /{info['name']} is not a folder")
        if self.ls(info["name"], refresh=True):
            raise OSError(errno.ENOTEMPTY, f"Koofr folder /{info['name']} is not empty")
        self._delete(info["name"])

    def rm(
        self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None
    ) -> None:
        """Delete paths literally (no globbing: ``?`` and ``*`` are valid Koofr names).

        ``recursive=True`` deletes a folder tree with one server-side call.
        """
        if maxdepth is not None:
            super().rm(path, recursive=recursive, maxdepth=maxdepth)
            return
        for p in path if isinstance(path, list) else [path]:
            if recursive:
                self._delete(self._strip_protocol(p))
            elif self.isdir(p):
                self.rmdir(p)
            else:
                self.rm_file(p)

    # -- server-side copy and move ----------------------------------------------------------------

    def _target(self, src: dict[str, Any], dst: str, exact: bool) -> str:
        """Resolve a copy/move destination and clear the way.

        Like ``mv``/``cp`` on POSIX: an existing folder at ``dst`` receives the source inside it
        (unless ``exact``), an existing file is replaced (Koofr's copy/move refuse to overwrite).
        """
        if src["name"].casefold() == dst.casefold():
            return dst  # case-only rename: the "existing" target is the source itself
        try:
            existing = self.info(dst, refresh=True)
        except FileNotFoundError:
            self._ensure_dir(split(dst)[0])
            return dst
        if existing["type"] == "directory" and not exact:
            return self._target(src, join(dst, split(src["name"])[1]), exact=True)
        if existing["type"] == "directory" or src["type"] == "directory":
            raise FileExistsError(f"Koofr path /{dst} already exists")
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
        """Server-side move of a file or a whole folder (one call, whatever ``recursive`` says).

        Moves into ``path2`` if that is an existing folder, unless ``exact``; replaces a file.
        """
        src = self.info(path1)
        dst = self._target(src, self._strip_protocol(path2), exact)
        if dst == src["name"]:
            return
        self._transfer("move", src, dst)
        self._forget_dirs(src["name"])

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Server-side copy of one file keeping its mtime; a folder becomes a new empty folder."""
        src = self.info(path1)
        dst = self._strip_protocol(path2)
        if src["type"] == "directory":
            self.makedirs(dst, exist_ok=True)
            return
        dst = self._target(src, dst, exact=True)
        if dst != src["name"]:
            self._transfer("copy", src, dst)

    def _transfer(self, op: str, src: dict[str, Any], dst: str) -> None:
        body: dict[str, Any] = {"toMountId": self.mount_id, "toPath": to_koofr(dst)}
        if op == "copy":
            body["modified"] = src["modified"]
        kp = to_koofr(src["name"])
        try:
            # A retry after a lost answer may meet its own earlier success: 404/409 then.
            response = self.client.request(
                "PUT",
                self._api(op),
                path=kp,
                params=[("path", kp)],
                json_body=body,
                ok_on_retry=(404, 409),
            )
            if response.status_code != 200 and not self.exists(dst):
                raise FileNotFoundError(f"Koofr {op} of {kp} to /{dst} failed")
        finally:
            self.invalidate_cache(src["name"])
            self.invalidate_cache(dst)
