"""Keys, keyed ids and authenticated encryption of every stored object.

One master key set per store: an AES-256-GCM key for confidentiality, a BLAKE3 key so blob ids
(hashes of plaintext) reveal nothing to someone without the key, and a FastCDC seed so chunk
boundaries cannot be used to fingerprint known files. The set is wrapped by a key derived with
Argon2id from the passphrase, so changing the passphrase never rewrites data.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import blake3
import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from kloset.errors import CorruptObject, WrongPassphrase

NONCE_SIZE = 12
TAG_SIZE = 16
ID_SIZE = 32

# OpenSSL's Argon2 draws its lanes from a small shared thread pool and reports an exhausted
# pool as MemoryError, so concurrent derivations in one process (UI, Prefect threads) must queue.
_KDF_LOCK = threading.Lock()


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters, stored in CONFIG so they can be raised later."""

    salt: bytes
    iterations: int = 3
    lanes: int = 4
    memory_kib: int = 65536

    @classmethod
    def fresh(cls, memory_kib: int = 65536, iterations: int = 3) -> KdfParams:
        return cls(salt=os.urandom(16), iterations=iterations, memory_kib=memory_kib)

    def derive(self, passphrase: str) -> bytes:
        secret = passphrase.encode("utf-8")
        for attempt in range(3):
            # A KDF object derives once: each attempt needs its own.
            kdf = Argon2id(
                salt=self.salt,
                length=32,
                iterations=self.iterations,
                lanes=self.lanes,
                memory_cost=self.memory_kib,
            )
            try:
                with _KDF_LOCK:
                    return kdf.derive(secret)
            except MemoryError:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class KeySet:
    """The store's master keys. `enc_key` is None for an unencrypted store."""

    id_key: bytes
    chunker_seed: int
    enc_key: bytes | None

    @classmethod
    def generate(cls, encrypted: bool) -> KeySet:
        return cls(
            id_key=os.urandom(32),
            chunker_seed=int.from_bytes(os.urandom(4), "little"),
            enc_key=os.urandom(32) if encrypted else None,
        )

    def to_bytes(self) -> bytes:
        return msgpack.packb(
            {"v": 1, "id": self.id_key, "seed": self.chunker_seed, "enc": self.enc_key}
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeySet:
        try:
            data = msgpack.unpackb(raw)
            keys = cls(id_key=data["id"], chunker_seed=int(data["seed"]), enc_key=data["enc"])
            enc = keys.enc_key
            enc_ok = enc is None or (isinstance(enc, bytes) and len(enc) == 32)
            if not (isinstance(keys.id_key, bytes) and len(keys.id_key) == 32 and enc_ok):
                raise ValueError("keys of the wrong size")
            return keys
        except Exception as exc:  # noqa: BLE001 - any decoding failure means damage
            raise CorruptObject(f"CONFIG: key material is damaged ({exc})") from exc


def wrap_keys(keys: KeySet, kek: bytes, associated: bytes) -> bytes:
    """Encrypt the key set with the passphrase-derived key."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(kek).encrypt(nonce, keys.to_bytes(), associated)


def unwrap_keys(wrapped: bytes, kek: bytes, associated: bytes) -> KeySet:
    """Decrypt the key set; a failed tag means the passphrase is wrong (or CONFIG was altered)."""
    try:
        raw = AESGCM(kek).decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], associated)
    except InvalidTag as exc:
        raise WrongPassphrase("wrong passphrase for this store") from exc
    return KeySet.from_bytes(raw)


class Cipher:
    """Seals and opens objects; a no-op envelope when the store is unencrypted.

    Associated data binds each ciphertext to what it claims to be (a blob id, or a domain
    such as the snapshot or index namespace) so objects cannot be swapped undetected.
    """

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys
        self._aead = AESGCM(keys.enc_key) if keys.enc_key is not None else None
        self.overhead = NONCE_SIZE + TAG_SIZE if self._aead is not None else 0

    @property
    def encrypted(self) -> bool:
        return self._aead is not None

    def blob_id(self, data: bytes | memoryview) -> bytes:
        """Keyed BLAKE3 of plaintext: stable per store, meaningless without the key."""
        return blake3.blake3(data, key=self.keys.id_key, max_threads=1).digest()

    def seal(self, plaintext: bytes | memoryview, associated: bytes) -> bytes:
        if self._aead is None:
            return bytes(plaintext)
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, bytes(plaintext), associated)

    def open(self, sealed: bytes | memoryview, associated: bytes, what: str) -> bytes:
        if self._aead is None:
            return bytes(sealed)
        if len(sealed) < NONCE_SIZE + TAG_SIZE:
            raise CorruptObject(f"{what}: truncated object")
        try:
            return self._aead.decrypt(
                bytes(sealed[:NONCE_SIZE]), bytes(sealed[NONCE_SIZE:]), associated
            )
        except InvalidTag as exc:
            raise CorruptObject(f"{what}: authentication failed (damaged or tampered)") from exc


def plain_hash(data: bytes | memoryview) -> bytes:
    """Unkeyed BLAKE3, used to name packs: anyone can verify a pack's integrity without keys."""
    return blake3.blake3(data, max_threads=1).digest()
