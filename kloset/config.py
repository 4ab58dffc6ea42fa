"""CONFIG: the one plaintext object of a store, describing how everything else is encoded."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kloset.crypto import KdfParams, KeySet, unwrap_keys, wrap_keys
from kloset.errors import CorruptObject, KlosetError, PassphraseRequired

FORMAT_VERSION = 1
CONFIG_NAME = "CONFIG"
# Where `passphrase change` stages the rewrapped CONFIG before replacing it (no atomic rename).
STAGED_CONFIG_NAME = "CONFIG.new"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


@dataclass
class ChunkerParams:
    """FastCDC parameters. pyfastcdc's real average is avg_size + min_size (paper §3.4)."""

    min_size: int = 512 * 1024
    avg_size: int = 512 * 1024
    max_size: int = 8 * 1024 * 1024
    normalization: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": "fastcdc2020",
            "min_size": self.min_size,
            "avg_size": self.avg_size,
            "max_size": self.max_size,
            "normalization": self.normalization,
        }


@dataclass
class StoreConfig:
    """Parsed CONFIG: `kdf` + `wrapped_keys` for encrypted stores, else `plain_keys`."""

    store_id: str
    created: int
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    compression_level: int = 3
    pack_size: int = 16 * 1024 * 1024
    kdf: KdfParams | None = None
    wrapped_keys: bytes | None = None
    plain_keys: bytes | None = None
    version: int = FORMAT_VERSION

    @property
    def encrypted(self) -> bool:
        return self.kdf is not None

    def associated(self) -> bytes:
        return b"kloset:keys:" + self.store_id.encode("ascii")

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "kloset": self.version,
            "store_id": self.store_id,
            "created": self.created,
            "chunker": self.chunker.to_json(),
            "compression": {"algorithm": "zstd", "level": self.compression_level},
            "pack_size": self.pack_size,
            "id_hash": "blake3-keyed",
            "encryption": None,
        }
        if self.kdf is not None:
            assert self.wrapped_keys is not None
            doc["encryption"] = {
                "algorithm": "aes-256-gcm",
                "kdf": {
                    "algorithm": "argon2id",
                    "salt": _b64(self.kdf.salt),
                    "iterations": self.kdf.iterations,
                    "lanes": self.kdf.lanes,
                    "memory_kib": self.kdf.memory_kib,
                },
                "wrapped_keys": _b64(self.wrapped_keys),
            }
        else:
            assert self.plain_keys is not None
            doc["keys"] = _b64(self.plain_keys)
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> StoreConfig:
        try:
            doc = json.loads(raw.decode("utf-8"))
            version = int(doc["kloset"])
            if version > FORMAT_VERSION:
                raise KlosetError(
                    f"store format {version} is newer than this kloset understands "
                    f"({FORMAT_VERSION}): upgrade prefect-kloset"
                )
            ch = doc["chunker"]
            cfg = cls(
                store_id=str(doc["store_id"]),
                created=int(doc["created"]),
                chunker=ChunkerParams(
                    min_size=int(ch["min_size"]),
                    avg_size=int(ch["avg_size"]),
                    max_size=int(ch["max_size"]),
                    normalization=int(ch.get("normalization", 1)),
                ),
                compression_level=int(doc["compression"]["level"]),
                pack_size=int(doc["pack_size"]),
                version=version,
            )
            enc = doc.get("encryption")
            if enc:
                k = enc["kdf"]
                cfg.kdf = KdfParams(
                    salt=_unb64(k["salt"]),
                    iterations=int(k["iterations"]),
                    lanes=int(k["lanes"]),
                    memory_kib=int(k["memory_kib"]),
                )
                cfg.wrapped_keys = _unb64(enc["wrapped_keys"])
            else:
                cfg.plain_keys = _unb64(doc["keys"])
            _check_limits(cfg)
            return cfg
        except KlosetError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure is a damaged CONFIG
            raise CorruptObject(f"CONFIG is damaged or not a kloset store ({exc})") from exc


def _check_limits(cfg: StoreConfig) -> None:
    """CONFIG is plaintext and unauthenticated until the keys are unwrapped: refuse values that
    would make opening the store hang or exhaust memory (a tampered Argon2 cost) or crash."""
    ch = cfg.chunker
    if not (64 <= ch.min_size <= ch.max_size <= 1 << 26 and 256 <= ch.avg_size <= 1 << 24):
        raise ValueError("chunker sizes out of range")
    if not (1 << 12 <= cfg.pack_size <= 1 << 32) or not -7 <= cfg.compression_level <= 22:
        raise ValueError("pack size or compression level out of range")
    if cfg.kdf is not None:
        k = cfg.kdf
        if not (1 <= k.lanes <= 64 and 1 <= k.iterations <= 64 and len(k.salt) >= 8):
            raise ValueError("KDF parameters out of range")
        if not 8 * k.lanes <= k.memory_kib <= 4 << 20 or k.memory_kib * k.iterations > 16 << 20:
            raise ValueError("KDF cost out of range")
        if len(cfg.wrapped_keys or b"") < 12 + 16:
            raise ValueError("wrapped keys truncated")


def new_config(
    keys: KeySet,
    passphrase: str | None,
    *,
    chunker: ChunkerParams | None = None,
    compression_level: int = 3,
    pack_size: int = 16 * 1024 * 1024,
    kdf: KdfParams | None = None,
) -> StoreConfig:
    """Build the CONFIG of a new store, wrapping `keys` with the passphrase when encrypted."""
    cfg = StoreConfig(
        store_id=os.urandom(16).hex(),
        created=time.time_ns(),
        chunker=chunker or ChunkerParams(),
        compression_level=compression_level,
        pack_size=pack_size,
    )
    if keys.enc_key is not None:
        if not passphrase:
            raise PassphraseRequired("an encrypted store needs a non-empty passphrase")
        cfg.kdf = kdf or KdfParams.fresh()
        cfg.wrapped_keys = wrap_keys(keys, cfg.kdf.derive(passphrase), cfg.associated())
    else:
        cfg.plain_keys = keys.to_bytes()
    return cfg


def unlock(cfg: StoreConfig, passphrase: str | None) -> KeySet:
    """Recover the master keys from CONFIG."""
    if cfg.kdf is None:
        assert cfg.plain_keys is not None
        return KeySet.from_bytes(cfg.plain_keys)
    if passphrase is None:
        raise PassphraseRequired(
            "this store is encrypted: set KLOSET_PASSPHRASE, pass --passphrase-file,"
            " or run in a terminal"
        )
    assert cfg.wrapped_keys is not None
    try:
        kek = cfg.kdf.derive(passphrase)
    except MemoryError as exc:
        need = cfg.kdf.memory_kib // 1024
        raise KlosetError(f"not enough memory to derive this store's key ({need} MiB)") from exc
    return unwrap_keys(cfg.wrapped_keys, kek, cfg.associated())


def rewrap(cfg: StoreConfig, keys: KeySet, new_passphrase: str) -> StoreConfig:
    """Same keys under a new passphrase: no data is rewritten."""
    if cfg.kdf is None:
        raise KlosetError("this store is not encrypted: it has no passphrase to change")
    cfg.kdf = KdfParams.fresh(memory_kib=cfg.kdf.memory_kib, iterations=cfg.kdf.iterations)
    cfg.wrapped_keys = wrap_keys(keys, cfg.kdf.derive(new_passphrase), cfg.associated())
    return cfg
