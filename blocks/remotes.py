"""`kloset ... import --prefect-block NAME`: an imported rclone remote, saved as Prefect blocks.

Registered with the CLI through the ``kloset.remote_import`` entry point (see
`kloset.cli.hooks`), so the CLI's ``@NAME`` and the flows' blocks describe one account while
the engine never imports Prefect.
"""

from __future__ import annotations

from blocks.credentials import KoofrCredentials
from blocks.koofr import KoofrStorage
from koofrfs.rclone import KoofrRemote


def save_remote_blocks(remote: KoofrRemote, name: str, *, overwrite: bool = True) -> list[str]:
    """Save `remote` as ``koofr-credentials/NAME`` and ``koofr-storage/NAME``.

    The storage block points at the mount root; set its base folder in the UI (or pass a
    sub-folder to the flows).

    Returns:
        The slugs of the saved block documents.
    """
    credentials = KoofrCredentials.from_remote(remote)
    credentials.save(name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    storage = KoofrStorage(credentials=credentials, base_folder="")
    storage.save(name, overwrite=overwrite, _sync=True)  # type: ignore[call-arg]
    return [f"koofr-credentials/{name}", f"koofr-storage/{name}"]


def prefect_block_hook(remote: KoofrRemote, name: str) -> str:
    """The ``--prefect-block NAME`` option of the CLI's import commands."""
    return "saved Prefect blocks " + ", ".join(save_remote_blocks(remote, name))
