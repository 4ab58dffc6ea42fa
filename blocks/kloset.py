"""`KlosetRepository`: where a Kloset store lives and how to unlock it, saved once in Prefect.

Flows receive this block (or a plain location string) as ``store``; tasks reopen the store
from it on whatever worker they run, so the block is the small serialisable "store spec" that
travels through a run instead of an opened repository.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.blocks.core import Block
from prefect.utilities.asyncutils import run_sync_in_worker_thread
from pydantic import Field, SecretStr

from blocks import locations
from blocks.credentials import LOGO_URL
from blocks.koofr import KoofrStorage

if TYPE_CHECKING:
    from kloset.repository import Repository
    from kloset.storage import Storage

# The project's own page (its README links the manual, docs/PREFECT.md), not Prefect's generic one.
DOCS_URL = "https://pypi.org/project/prefect-kloset/"


class KlosetRepository(Block):
    """An encrypted, deduplicated Kloset store: its location and its passphrase.

    The location is a local path, an fsspec URL, ``@NAME`` of a Koofr remote saved with
    ``kloset store import``, or a `KoofrStorage` block. With no passphrase saved, the worker's
    ``KLOSET_PASSPHRASE`` (or ``KLOSET_PASSPHRASE_FILE``) is used, so the secret can stay out of
    Prefect entirely.

    Example:
        Load a stored repository, list its snapshots and read a file from the latest one:
        ```python
        from blocks import KlosetRepository

        kloset_repository_block = KlosetRepository.load("BLOCK_NAME")
        for snap in kloset_repository_block.list_snapshots():
            print(snap["short_id"], snap["time"], snap["source"])
        data = kloset_repository_block.read_file("latest", "/Documents/notes.txt")
        ```
    """

    _block_type_name = "Kloset Repository"
    _block_type_slug = "kloset-repository"
    _logo_url = LOGO_URL  # type: ignore[assignment]
    _documentation_url = DOCS_URL  # type: ignore[assignment]

    location: KoofrStorage | str = Field(
        default=...,
        title="Store location",
        description=(
            "Where the store lives: a local path, an fsspec URL, @NAME of a saved Koofr "
            "remote, or a Koofr Storage block."
        ),
        examples=["/srv/backups/kloset", "@vault:/Backups/kloset"],
    )
    passphrase: SecretStr | None = Field(
        default=None,
        title="Passphrase",
        description=(
            "Passphrase of the store; leave empty for an unencrypted store or to use "
            "KLOSET_PASSPHRASE on the worker."
        ),
    )

    # -- opening ---------------------------------------------------------------------------

    def location_label(self) -> str:
        """The store location as people read it (no secrets)."""
        return locations.label(self.location)

    def touches_koofr(self) -> bool:
        """Whether the store is on Koofr (tasks using it get the ``koofr`` tag)."""
        return locations.touches_koofr(self.location)

    def cache_key(self) -> str:
        """Identifies location + passphrase, so an opened store can be reused per process."""
        doc = self.model_dump_json(context={"include_secrets": True})
        return hashlib.sha256(doc.encode("utf-8")).hexdigest()

    def get_passphrase(self) -> str | None:
        """The saved passphrase, else the worker's KLOSET_PASSPHRASE(_FILE), else None."""
        if self.passphrase is not None and self.passphrase.get_secret_value():
            return self.passphrase.get_secret_value()
        from kloset import passphrase

        return passphrase.resolve()

    def get_storage(self) -> Storage:
        """The store's backend (no CONFIG is read yet)."""
        return locations.open_storage(self.location)

    def open_repository(self) -> Repository:
        """Open the store; raises `kloset.errors.StoreNotFound` or `WrongPassphrase`."""
        from kloset.repository import Repository

        return Repository.open(self.get_storage(), self.get_passphrase())

    def create_repository(self, *, encrypted: bool = True) -> Repository:
        """Create a new, empty store at the location (fails if one exists)."""
        from kloset.errors import PassphraseRequired
        from kloset.repository import Repository

        secret = self.get_passphrase()
        if encrypted and not secret:
            raise PassphraseRequired(
                "creating an encrypted store needs a passphrase: set it on the block or "
                "KLOSET_PASSPHRASE on the worker"
            )
        return Repository.create(self.get_storage(), secret, encrypted=encrypted)

    # -- snapshots -------------------------------------------------------------------------

    async def alist_snapshots(self) -> list[dict[str, Any]]:
        """Async form of :meth:`list_snapshots`."""
        return await run_sync_in_worker_thread(self._list_snapshots)

    @async_dispatch(alist_snapshots)
    def list_snapshots(self) -> list[dict[str, Any]]:
        """Every snapshot, oldest first, in the shape of ``kloset ls --json`` plus ``stats``."""
        return self._list_snapshots()

    def _list_snapshots(self) -> list[dict[str, Any]]:
        return [
            {**h.to_doc(), "stats": dict(h.stats)} for h in self.open_repository().list_snapshots()
        ]

    async def aread_file(self, snapshot: str, path: str) -> bytes:
        """Async form of :meth:`read_file`."""
        return await run_sync_in_worker_thread(self._read_file, snapshot, path)

    @async_dispatch(aread_file)
    def read_file(self, snapshot: str, path: str) -> bytes:
        """Contents of ``path`` in ``snapshot`` (``latest`` or an id prefix), read by range."""
        return self._read_file(snapshot, path)

    def _read_file(self, snapshot: str, path: str) -> bytes:
        from kloset.vfs import SnapshotView

        repo = self.open_repository()
        view = SnapshotView(repo, repo.resolve_snapshot(snapshot))
        with view.open(path) as fh:
            return bytes(fh.read())

    async def arestore(
        self, snapshot: str, path: str, target: KoofrStorage | str, overwrite: bool = False
    ) -> dict[str, Any]:
        """Async form of :meth:`restore`."""
        return await run_sync_in_worker_thread(self._restore, snapshot, path, target, overwrite)

    @async_dispatch(arestore)
    def restore(
        self, snapshot: str, path: str, target: KoofrStorage | str, overwrite: bool = False
    ) -> dict[str, Any]:
        """Restore ``path`` of ``snapshot`` into ``target`` (a path, URL, @NAME or block).

        For large restores with progress, retries and a report, run ``restore_flow`` instead;
        this is the one-call version for scripts. Returns counts and the errors.
        """
        return self._restore(snapshot, path, target, overwrite)

    def _restore(
        self, snapshot: str, path: str, target: KoofrStorage | str, overwrite: bool
    ) -> dict[str, Any]:
        from kloset.restore import run_restore

        repo = self.open_repository()
        header = repo.resolve_snapshot(snapshot)
        report = run_restore(
            repo, header, path, locations.open_destination(target), overwrite=overwrite
        )
        return {
            "snapshot": header.hex,
            "files_written": report.files_written,
            "files_skipped": report.files_skipped,
            "bytes_written": report.bytes_written,
            "symlinks": report.symlinks,
            "errors": [list(e) for e in report.errors],
            "duration": round(report.duration, 3),
        }
