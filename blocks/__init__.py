"""Prefect blocks of prefect-kloset: Koofr credentials, a Koofr folder, and a Kloset store.

Register them with ``prefect block register -m blocks`` (installing the package also declares
them through the ``prefect.collections`` entry point), then create them in the UI, from Python,
or from an rclone remote with ``kloset source import --prefect-block NAME``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blocks.credentials import KoofrCredentials
from blocks.kloset import KlosetRepository
from blocks.koofr import KoofrStorage

if TYPE_CHECKING:
    from koofrfs.rclone import KoofrRemote

__all__ = ["KlosetRepository", "KoofrCredentials", "KoofrStorage", "save_remote_blocks"]


def save_remote_blocks(remote: KoofrRemote, name: str, *, overwrite: bool = True) -> list[str]:
    """Save an imported rclone remote as ``koofr-credentials/NAME`` and ``koofr-storage/NAME``.

    The CLI calls this for ``kloset source|destination|store import --prefect-block NAME``, so
    the CLI's ``@NAME`` and the flows' blocks describe one account. The storage block points at
    the mount root; set its base folder in the UI (or pass a sub-folder to the flows).

    Returns:
        The slugs of the saved block documents.
    """
    credentials = KoofrCredentials.from_remote(remote)
    credentials.save(name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    storage = KoofrStorage(credentials=credentials, base_folder="")
    storage.save(name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    return [f"koofr-credentials/{name}", f"koofr-storage/{name}"]
