"""Repository: ties CONFIG, keys, index, packs, trees and snapshots of one store together."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from kloset import codec
from kloset.cache import ObjectCache
from kloset.config import (
    CONFIG_NAME,
    STAGED_CONFIG_NAME,
    ChunkerParams,
    StoreConfig,
    new_config,
    unlock,
)
from kloset.crypto import Cipher, KdfParams, KeySet
from kloset.errors import (
    AmbiguousSnapshot,
    CorruptObject,
    KlosetError,
    SnapshotNotFound,
    StoreExists,
    StoreNotFound,
    WrongPassphrase,
)
from kloset.index import Index, IndexRun, encode_index, open_index_run, seal_index
from kloset.pack import BLOB_TREE, SealedPack, pack_name
from kloset.snapshot import SNAPSHOT_AD, SnapshotHeader
from kloset.storage import Storage
from kloset.tree import TreeNode, decode_tree

Passphrase = str | None | Callable[[], str]
STORE_DIRS = ("packs", "index", "snapshots", "locks")


class Repository:
    """An opened store. Thread-safe for reads; writers serialise through their own packers."""

    def __init__(self, storage: Storage, config: StoreConfig, keys: KeySet) -> None:
        self.storage = storage
        self.config = config
        self.keys = keys
        self.cipher = Cipher(keys)
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        self._tree_cache: OrderedDict[bytes, TreeNode] = OrderedDict()
        self._tree_lock = threading.Lock()
        # Local stores are their own cache; remote ones keep immutable objects on local disk.
        self.cache = ObjectCache(config.store_id, enabled=not storage.local)

    # -- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        storage: Storage,
        passphrase: str | None,
        *,
        encrypted: bool = True,
        chunker: ChunkerParams | None = None,
        compression_level: int = 3,
        pack_size: int = 16 * 1024 * 1024,
        kdf: KdfParams | None = None,
    ) -> Repository:
        if storage.exists(CONFIG_NAME):
            raise StoreExists(f"a store already exists at {storage.location}")
        keys = KeySet.generate(encrypted)
        cfg = new_config(
            keys,
            passphrase,
            chunker=chunker,
            compression_level=compression_level,
            pack_size=pack_size,
            kdf=kdf,
        )
        for d in STORE_DIRS:
            storage.makedirs(d)
        storage.write_new(CONFIG_NAME, cfg.to_bytes())
        return cls(storage, cfg, keys)

    @classmethod
    def open(cls, storage: Storage, passphrase: Passphrase) -> Repository:
        try:
            raw = storage.read(CONFIG_NAME)
        except FileNotFoundError as exc:
            raise StoreNotFound(f"no kloset store at {storage.location}") from exc
        except KlosetError:
            raise
        except Exception as exc:  # noqa: BLE001 - backend errors become one clear line
            raise StoreNotFound(f"cannot open store at {storage.location}: {exc}") from exc
        cfg: StoreConfig | None = None
        try:
            cfg = StoreConfig.from_bytes(raw)
        except CorruptObject as exc:
            unreadable = exc  # a passphrase change may have died writing it: try CONFIG.new
        ask = callable(passphrase) and (cfg is None or cfg.encrypted)
        secret = passphrase() if ask else passphrase
        text = secret if isinstance(secret, str) or secret is None else None
        try:
            if cfg is None:
                raise unreadable
            return cls(storage, cfg, unlock(cfg, text))
        except (CorruptObject, WrongPassphrase) as exc:
            staged = _staged_config(storage, cfg, text)
            if staged is None:
                raise exc from None
            return cls(storage, staged[0], staged[1])

    # -- index ---------------------------------------------------------------------------
    @property
    def index(self) -> Index:
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    self._index = self._load_index()
        return self._index

    def _load_index(self) -> Index:
        idx = Index()
        names = [n for n in self.storage.iter_names("index") if ".tmp-" not in n]

        def load(name: str) -> IndexRun:
            return open_index_run(self.cipher, name, self.read_immutable(name))

        workers = 1 if self.storage.local else 8
        with ThreadPoolExecutor(workers) as pool:
            for name, run in zip(names, pool.map(load, names), strict=True):
                idx.add_run(run)
                idx.files.add(name)
        return idx

    def read_immutable(self, name: str) -> bytes:
        """Read an object that never changes once written, through the local cache."""
        data = self.cache.get(name)
        if data is None:
            data = self.storage.read(name)
            self.cache.put(name, data)
        return data

    def reload_index(self) -> Index:
        self._index = None
        return self.index

    def refresh_index(self) -> int:
        """Merge index files written since the index was loaded (by other processes or
        workers of the same backup); returns how many were new. Only adds: a prune, which
        removes index files, runs under the exclusive lock and never concurrently."""
        idx = self.index
        names = self.storage.iter_names("index")
        new = [n for n in names if ".tmp-" not in n and n not in idx.files]
        for name in new:
            idx.add_run(open_index_run(self.cipher, name, self.read_immutable(name)))
            idx.files.add(name)
        return len(new)

    def write_index(self, packs: Iterable[SealedPack]) -> str:
        """Record uploaded packs in a new index file (after the packs themselves)."""
        packs = list(packs)
        plaintext = encode_index((p.pack_id, p.size, p.blobs) for p in packs)
        name, sealed = seal_index(self.cipher, plaintext, self.config.compression_level)
        self.storage.write(name, sealed)
        self.cache.put(name, sealed)
        idx = self.index
        idx.add_sealed(packs)
        idx.files.add(name)
        return name

    # -- blobs ---------------------------------------------------------------------------
    def blob_id(self, data: bytes | memoryview) -> bytes:
        return self.cipher.blob_id(data)

    def has_blob(self, blob_id: bytes) -> bool:
        return blob_id in self.index

    def read_sealed(self, blob_id: bytes) -> tuple[str, bytes]:
        loc = self.index.get(blob_id)
        if loc is None:
            raise CorruptObject(f"blob {blob_id.hex()[:16]} is not in the index (data lost)")
        name = pack_name(loc.pack_id)
        try:
            return name, self.storage.read_range(name, loc.offset, loc.length)
        except FileNotFoundError as exc:
            raise CorruptObject(f"{name}: pack is missing") from exc

    def read_blob(self, blob_id: bytes, *, verify: bool = True) -> bytes:
        name, sealed = self.read_sealed(blob_id)
        return self.decode_blob(blob_id, sealed, name, verify=verify)

    def decode_blob(
        self, blob_id: bytes, sealed: bytes, where: str, *, verify: bool = True
    ) -> bytes:
        what = f"{where}: blob {blob_id.hex()[:16]}"
        data = codec.decode(self.cipher, sealed, blob_id, what)
        if verify and (not self.cipher.encrypted) and self.blob_id(data) != blob_id:
            # Encrypted blobs are authenticated by AES-GCM with the id as AD; plain ones need this.
            raise CorruptObject(f"{what}: content does not match its id")
        return data

    # -- trees ---------------------------------------------------------------------------
    def load_tree(self, tree_id: bytes) -> TreeNode:
        with self._tree_lock:
            hit = self._tree_cache.get(tree_id)
            if hit is not None:
                self._tree_cache.move_to_end(tree_id)
                return hit
        node = decode_tree(self.read_blob(tree_id), f"tree {tree_id.hex()[:16]}")
        with self._tree_lock:
            self._tree_cache[tree_id] = node
            while len(self._tree_cache) > 4096:
                self._tree_cache.popitem(last=False)
        return node

    # -- snapshots -----------------------------------------------------------------------
    def snapshot_ids(self) -> list[bytes]:
        out = []
        for name in self.storage.iter_names("snapshots"):
            base = name.rsplit("/", 1)[-1]
            if len(base) == 64:
                try:
                    out.append(bytes.fromhex(base))
                except ValueError:
                    continue
        return out

    def load_snapshot(self, snap_id: bytes) -> SnapshotHeader:
        name = f"snapshots/{snap_id.hex()}"
        try:
            sealed = self.read_immutable(name)
        except FileNotFoundError as exc:
            raise SnapshotNotFound(f"snapshot {snap_id.hex()[:12]} not found") from exc
        raw = codec.decode(self.cipher, sealed, SNAPSHOT_AD, name)
        if self.blob_id(raw) != snap_id:
            raise CorruptObject(f"{name}: content does not match its name")
        header = SnapshotHeader.from_bytes(raw, name)
        header.id = snap_id
        return header

    def list_snapshots(
        self, *, on_error: Callable[[bytes, Exception], None] | None = None
    ) -> list[SnapshotHeader]:
        """All readable snapshots, oldest first; damaged ones are reported, not fatal."""
        ids = self.snapshot_ids()
        workers = 1 if self.storage.local else 8

        def load(sid: bytes) -> SnapshotHeader | Exception:
            try:
                return self.load_snapshot(sid)
            except KlosetError as exc:
                return exc

        out: list[SnapshotHeader] = []
        with ThreadPoolExecutor(workers) as pool:
            for sid, res in zip(ids, pool.map(load, ids), strict=True):
                if isinstance(res, Exception):
                    if on_error is not None:
                        on_error(sid, res)
                    continue
                out.append(res)
        out.sort(key=lambda h: (h.time_ns, h.id))
        return out

    def save_snapshot(self, header: SnapshotHeader) -> bytes:
        raw = header.to_bytes()
        snap_id = self.blob_id(raw)
        sealed = codec.encode(self.cipher, raw, SNAPSHOT_AD, self.config.compression_level)
        self.storage.write(f"snapshots/{snap_id.hex()}", sealed)
        header.id = snap_id
        return snap_id

    def delete_snapshot(self, snap_id: bytes) -> None:
        name = f"snapshots/{snap_id.hex()}"
        self.storage.delete(name)
        self.cache.drop(name)

    def resolve_snapshot(self, ref: str) -> SnapshotHeader:
        """`latest`, or a unique hex prefix of at least 4 characters."""
        ref = ref.strip().lower()
        if ref == "latest":
            snaps = self.list_snapshots()
            if not snaps:
                raise SnapshotNotFound("the store has no snapshots")
            return snaps[-1]
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise SnapshotNotFound(f"'{ref}' is not a snapshot id (use 4+ hex digits or 'latest')")
        matches = [s for s in self.snapshot_ids() if s.hex().startswith(ref)]
        if not matches:
            raise SnapshotNotFound(f"no snapshot matches '{ref}'")
        if len(matches) > 1:
            shown = ", ".join(sorted(m.hex()[:12] for m in matches)[:5])
            raise AmbiguousSnapshot(
                f"'{ref}' matches {len(matches)} snapshots ({shown}): use a longer prefix"
            )
        return self.load_snapshot(matches[0])

    def tree_blob_type(self) -> int:
        return BLOB_TREE


def _staged_config(
    storage: Storage, current: StoreConfig | None, passphrase: str | None
) -> tuple[StoreConfig, KeySet] | None:
    """The CONFIG a `passphrase change` staged before dying, if it opens with `passphrase`.

    It was read back and proved to unwrap to the store's keys before CONFIG was touched, so
    when CONFIG is unreadable, or only the new passphrase is known, it is the store's key."""
    try:
        cfg = StoreConfig.from_bytes(storage.read(STAGED_CONFIG_NAME))
        if current is not None and cfg.store_id != current.store_id:
            return None
        return cfg, unlock(cfg, passphrase)
    except (FileNotFoundError, KlosetError):
        return None


def default_spool_dir(storage: Storage) -> str:
    """Where sealed packs wait for upload: inside a local store (so upload is a rename)."""
    if storage.local:
        path = storage.path("tmp")
    else:
        base = os.environ.get("KLOSET_SPOOL") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kloset", "spool"
        )
        path = base
    os.makedirs(path, exist_ok=True)
    return path
