"""Key management: change a store's passphrase, or start a new store that shares its keys.

The master keys never change, only their wrapping in CONFIG, so a passphrase change rewrites
one small file and no data. CONFIG is the one object whose loss makes a store unreadable, and
some backends (Koofr) cannot rename atomically, so the new CONFIG is first written beside the
old one as `CONFIG.new` and read back; only then is CONFIG replaced and checked. If the run
dies while CONFIG itself is being written, `CONFIG.new` (new passphrase) is still there to
open the store with (`Repository.open` falls back to it), and the next change replaces both.
"""

from __future__ import annotations

from kloset.config import (
    CONFIG_NAME,
    STAGED_CONFIG_NAME,
    StoreConfig,
    new_config,
    rewrap,
    unlock,
)
from kloset.crypto import KdfParams
from kloset.errors import CorruptObject, KlosetError, StoreExists
from kloset.locks import store_lock
from kloset.repository import STORE_DIRS, Repository
from kloset.storage import Storage


def _verify(storage: Storage, name: str, passphrase: str, repo: Repository) -> None:
    """Read `name` back and prove it unwraps to the very same keys."""
    cfg = StoreConfig.from_bytes(storage.read(name))
    if cfg.store_id != repo.config.store_id or unlock(cfg, passphrase) != repo.keys:
        raise CorruptObject(f"{name}: written copy does not unlock to this store's keys")


def change_passphrase(
    repo: Repository, new_passphrase: str, *, lock_wait: float | None = None
) -> None:
    """Rewrap the master keys under `new_passphrase` (fresh salt, same KDF cost)."""
    if not repo.config.encrypted:
        raise KlosetError("this store is not encrypted: it has no passphrase to change")
    if not new_passphrase:
        raise KlosetError("the new passphrase is empty")
    # Exclusive: two changes racing would leave CONFIG wrapped under whichever landed last.
    with store_lock(repo, True, "passphrase change", wait=lock_wait):
        # From the config the store was opened with: CONFIG itself may be the half-written one.
        cfg = rewrap(StoreConfig.from_bytes(repo.config.to_bytes()), repo.keys, new_passphrase)
        data = cfg.to_bytes()
        repo.storage.write(STAGED_CONFIG_NAME, data)
        _verify(repo.storage, STAGED_CONFIG_NAME, new_passphrase, repo)
        repo.storage.write(CONFIG_NAME, data)
        _verify(repo.storage, CONFIG_NAME, new_passphrase, repo)
        repo.storage.delete(STAGED_CONFIG_NAME)
        repo.config = cfg


def create_linked(
    storage: Storage, src: Repository, passphrase: str | None, kdf: KdfParams | None = None
) -> Repository:
    """A new, empty store sharing `src`'s master keys and chunker, so `sync` can copy sealed
    blobs and snapshot headers unchanged. Its CONFIG wraps the keys under its own passphrase,
    but anyone who can unlock either store can read both: share keys only between stores that
    have the same owner (e.g. a local store and its off-site copy)."""
    if storage.exists(CONFIG_NAME):
        raise StoreExists(f"a store already exists at {storage.location}")
    if kdf is None and src.config.kdf is not None:
        kdf = KdfParams.fresh(src.config.kdf.memory_kib, src.config.kdf.iterations)
    cfg = new_config(
        src.keys,
        passphrase,
        chunker=src.config.chunker,
        compression_level=src.config.compression_level,
        pack_size=src.config.pack_size,
        kdf=kdf,
    )
    for d in STORE_DIRS:
        storage.makedirs(d)
    storage.write_new(CONFIG_NAME, cfg.to_bytes())
    return Repository(storage, cfg, src.keys)
