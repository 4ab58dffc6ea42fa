"""Prefect blocks of prefect-kloset: Koofr credentials, a Koofr folder, and a Kloset store.

Register them with ``prefect block register -m blocks`` (installing the package also declares
them through the ``prefect.collections`` entry point), then create them in the UI, from Python,
or from an rclone remote with ``kloset source import --prefect-block NAME``.
"""

from __future__ import annotations

from blocks.credentials import KoofrCredentials
from blocks.kloset import KlosetRepository
from blocks.koofr import KoofrStorage
from blocks.remotes import save_remote_blocks

__all__ = ["KlosetRepository", "KoofrCredentials", "KoofrStorage", "save_remote_blocks"]
