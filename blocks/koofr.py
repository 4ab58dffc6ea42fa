"""`KoofrStorage`: a folder on Koofr as a Prefect filesystem and deployment storage.

It is the Koofr twin of prefect-aws's `S3Bucket`: result storage (`read_path`/`write_path`),
deployment storage (`get_directory`/`put_directory`), and, for Kloset, a backup source, a
restore target or the place a store lives. Everything goes through `koofrfs`, so reads are
ranged, uploads stream and keep mtimes, and the client's retry and concurrency limits apply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import WritableDeploymentStorage, WritableFileSystem
from prefect.utilities.asyncutils import run_sync_in_worker_thread
from prefect.utilities.filesystem import filter_files
from pydantic import Field, PrivateAttr, field_validator

from blocks.credentials import DOCS_URL, LOGO_URL, KoofrCredentials

if TYPE_CHECKING:
    from koofrfs.filesystem import KoofrFileSystem


def _clean_folder(value: str) -> str:
    parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"'..' is not allowed in a Koofr path: {value!r}")
    return "/".join(parts)


class KoofrStorage(WritableFileSystem, WritableDeploymentStorage):
    """A folder on Koofr, usable as result storage, deployment storage and Kloset location.

    Paths given to the methods are relative to ``base_folder`` and cannot leave it. Kloset
    flows accept this block as a backup ``source``, a restore ``target``, or (inside a
    ``KlosetRepository`` block) as the place the store lives.

    Example:
        Load a stored Koofr folder and write, then read, a file in it:
        ```python
        from blocks import KoofrStorage

        koofr_storage_block = KoofrStorage.load("BLOCK_NAME")
        koofr_storage_block.write_path("notes/hello.txt", b"hello")
        print(koofr_storage_block.read_path("notes/hello.txt"))
        ```
    """

    _block_type_name = "Koofr Storage"
    _block_type_slug = "koofr-storage"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCS_URL  # type: ignore[assignment]

    credentials: KoofrCredentials = Field(
        default=...,
        title="Koofr account",
        description="The Koofr Credentials block of the account to use (e-mail, app password).",
    )
    base_folder: str = Field(
        default="",
        description="Folder inside the mount that all paths are relative to; empty for the root.",
        examples=["Backups/kloset", "Photos"],
    )

    _fs: Any = PrivateAttr(default=None)

    @field_validator("base_folder")
    @classmethod
    def _check_base_folder(cls, value: str) -> str:
        return _clean_folder(value or "")

    # -- plumbing --------------------------------------------------------------------------

    @property
    def filesystem(self) -> KoofrFileSystem:
        """The `KoofrFileSystem` for this block's account, created on first use."""
        if self._fs is None:
            self._fs = self.credentials.get_filesystem()
        return self._fs  # type: ignore[no-any-return]

    def _resolve_path(self, path: str | None) -> str:
        """Mount-relative path of ``path`` (relative to ``base_folder``, never outside it)."""
        rel = _clean_folder(path or "")
        return "/".join(p for p in (self.base_folder, rel) if p)

    def location_label(self) -> str:
        """A stable, secret-free name for this folder, recorded as a snapshot's source."""
        return f"koofr://{self.credentials.account_label()}/{self.base_folder}"

    # -- result storage --------------------------------------------------------------------

    async def aread_path(self, path: str) -> bytes:
        """Read a whole file (async form of :meth:`read_path`)."""
        return await run_sync_in_worker_thread(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        """Read a whole file below ``base_folder``."""
        return self._read(path)

    def _read(self, path: str) -> bytes:
        return bytes(self.filesystem.cat_file(self._resolve_path(path)))

    async def awrite_path(self, path: str, content: bytes) -> str:
        """Write a whole file (async form of :meth:`write_path`)."""
        return await run_sync_in_worker_thread(self._write, path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        """Write ``content`` to ``path`` below ``base_folder`` and return the full path."""
        return self._write(path, content)

    def _write(self, path: str, content: bytes) -> str:
        full = self._resolve_path(path)
        if not full:
            raise ValueError("write_path needs a file name, not the base folder")
        parent = full.rpartition("/")[0]
        if parent:
            self.filesystem.makedirs(parent, exist_ok=True)
        self.filesystem.pipe_file(full, bytes(content))
        return full

    # -- deployment storage ----------------------------------------------------------------

    async def aget_directory(
        self, from_path: str | None = None, local_path: str | None = None
    ) -> None:
        """Download a folder (async form of :meth:`get_directory`)."""
        await run_sync_in_worker_thread(self._get_directory, from_path, local_path)

    @async_dispatch(aget_directory)
    def get_directory(self, from_path: str | None = None, local_path: str | None = None) -> None:
        """Download ``from_path`` (default: the whole base folder) into ``local_path`` (cwd)."""
        self._get_directory(from_path, local_path)

    def _get_directory(self, from_path: str | None, local_path: str | None) -> None:
        remote = self._resolve_path(from_path)
        local = Path(local_path or ".").absolute()
        fs = self.filesystem
        prefix = remote.rstrip("/")
        for name, info in fs.find(remote, detail=True).items():
            if info.get("type") == "directory":
                continue
            rel = str(name).strip("/")[len(prefix) :].lstrip("/") if prefix else str(name)
            target = local.joinpath(*[p for p in rel.split("/") if p])
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(str(name), str(target))

    async def aput_directory(
        self,
        local_path: str | None = None,
        to_path: str | None = None,
        ignore_file: str | None = None,
    ) -> int:
        """Upload a folder (async form of :meth:`put_directory`)."""
        return await run_sync_in_worker_thread(
            self._put_directory, local_path, to_path, ignore_file
        )

    @async_dispatch(aput_directory)
    def put_directory(
        self,
        local_path: str | None = None,
        to_path: str | None = None,
        ignore_file: str | None = None,
    ) -> int:
        """Upload ``local_path`` (default cwd) to ``to_path``; returns the number of files.

        ``ignore_file`` holds .gitignore-style patterns of files to leave out, like Prefect's
        own filesystem blocks.
        """
        return self._put_directory(local_path, to_path, ignore_file)

    def _put_directory(
        self, local_path: str | None, to_path: str | None, ignore_file: str | None
    ) -> int:
        local = local_path or "."
        included: set[str] | None = None
        if ignore_file:
            with open(ignore_file, encoding="utf-8") as fh:
                patterns = fh.readlines()
            included = set(filter_files(local, patterns, include_dirs=True, as_posix=True))
        remote = self._resolve_path(to_path)
        fs = self.filesystem
        count = 0
        for dirpath, _dirs, files in os.walk(local):
            for fname in sorted(files):
                full = os.path.join(dirpath, fname)
                rel = Path(os.path.relpath(full, local)).as_posix()
                if included is not None and rel not in included:
                    continue
                target = "/".join(p for p in (remote, rel) if p)
                parent = target.rpartition("/")[0]
                if parent:
                    fs.makedirs(parent, exist_ok=True)
                fs.put_file(full, target)
                count += 1
        return count

    # -- kloset -----------------------------------------------------------------------------

    def fs_and_root(self) -> tuple[KoofrFileSystem, str]:
        """(filesystem, mount-relative root) as Kloset's storage, source and destination use."""
        return self.filesystem, self.base_folder
