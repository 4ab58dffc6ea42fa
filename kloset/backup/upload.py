"""Stage 3, upload: move one batch's sealed packs from the spool into the store, then index them.

Packs go first and the index file second, so whatever is indexed is really there. Packs
already in the store (a retried upload, or a killed run's leftovers) are not sent again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from kloset.backup import spool
from kloset.pack import BlobEntry, SealedPack, pack_name
from kloset.repository import Repository


@dataclass
class UploadResult:
    batch: int
    packs: int
    packs_skipped: int
    bytes_uploaded: int
    index: str | None


def _store_has(repo: Repository, sealed: SealedPack) -> bool:
    try:
        return repo.storage.size(sealed.name) == sealed.size
    except FileNotFoundError:
        return False
    except OSError:
        return False


def upload_packs(
    repo: Repository,
    packs: list[SealedPack],
    *,
    on_pack: Callable[[int], None] | None = None,
) -> tuple[int, int, int, str | None]:
    """Upload sealed packs then write their index. Returns (sent, skipped, bytes, index name)."""
    sent = skipped = nbytes = 0
    for p in packs:
        if p.pack_id in repo.index.pack_sizes or _store_has(repo, p):
            skipped += 1
        elif os.path.exists(p.path):
            repo.storage.put_local_file(p.path, p.name, move=True)
            sent += 1
            nbytes += p.size
        else:
            raise FileNotFoundError(f"sealed pack {p.pack_id.hex()[:16]} vanished from the spool")
        if on_pack is not None:
            on_pack(p.size)
    index_name = repo.write_index(packs) if packs else None
    return sent, skipped, nbytes, index_name


def upload_batch(
    repo: Repository,
    run_dir: str,
    batch_no: int,
    *,
    on_pack: Callable[[int], None] | None = None,
) -> UploadResult:
    """Upload batch `batch_no`; safe to call again after any failure."""
    marker = spool.uploaded_marker(run_dir, batch_no)
    if os.path.exists(marker):
        done = spool.read_msgpack(marker)
        return UploadResult(batch_no, 0, int(done["packs"]), 0, done.get("index"))
    result = spool.read_msgpack(spool.chunks_path(run_dir, batch_no))
    out_dir = os.path.join(run_dir, f"batch-{spool.batch_name(batch_no)}")
    packs = [
        SealedPack(
            pack_id=bytes(pid),
            path=os.path.join(out_dir, bytes(pid).hex()),
            size=int(size),
            blobs=[BlobEntry.from_list(b) for b in blobs],
        )
        for pid, size, blobs in result["packs"]
    ]
    sent, skipped, nbytes, index_name = upload_packs(repo, packs, on_pack=on_pack)
    spool.write_msgpack(marker, {"packs": len(packs), "index": index_name})
    shutil.rmtree(out_dir, ignore_errors=True)
    return UploadResult(batch_no, sent, skipped, nbytes, index_name)


__all__ = ["UploadResult", "pack_name", "upload_batch", "upload_packs"]
