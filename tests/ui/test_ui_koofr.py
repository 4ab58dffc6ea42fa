"""Browsing a store kept on Koofr (the emulator): every pack read is a small byte range."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pytest

from kloset.backup import BackupOptions
from kloset.backup.pipeline import run_backup
from kloset.config import ChunkerParams
from kloset.crypto import KdfParams
from kloset.repository import Repository
from kloset.source import LocalSource
from kloset.storage import Storage
from kloset.ui import create_app

emulator = pytest.importorskip("koofr_emulator")
from koofrfs.filesystem import KoofrFileSystem  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette nags about httpx2 at import time
    from starlette.testclient import TestClient

MAX_CHUNK = 128 * 1024


def test_browsing_a_koofr_store_reads_ranges_only(
    koofr_emulator: Any, tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    blob = random.Random(3).randbytes(900 * 1024)
    (src / "docs" / "big.bin").write_bytes(blob)
    (src / "docs" / "notes.txt").write_text("notes kept on Koofr\n")
    fs = KoofrFileSystem(
        user=koofr_emulator.user,
        password=koofr_emulator.password,
        endpoint=koofr_emulator.url,
        provider="other",
        skip_instance_cache=True,
    )
    repo = Repository.create(
        Storage(fs, "stores/ui"),
        "koofr passphrase",
        kdf=KdfParams.fresh(memory_kib=1024, iterations=1),
        chunker=ChunkerParams(min_size=16 * 1024, avg_size=32 * 1024, max_size=MAX_CHUNK),
    )
    run_backup(repo, LocalSource(str(src)), BackupOptions(), workers=1)
    pack_sizes = list(repo.index.pack_sizes.values())

    reads: list[tuple[str, int | None, int | None]] = []
    real = fs.cat_file

    def spy(path: str, start: int | None = None, end: int | None = None, **kw: Any) -> bytes:
        reads.append((path, start, end))
        return real(path, start=start, end=end, **kw)

    monkeypatch.setattr(fs, "cat_file", spy)
    app = create_app(repo, token=token)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        tree = c.get("/api/snapshots/latest/tree?path=/docs").json()
        assert [e["name"] for e in tree["entries"]] == ["big.bin", "notes.txt"]
        assert c.get("/api/snapshots/latest/preview?path=/docs/big.bin").json()["kind"] == "binary"
        part = c.get(
            "/api/snapshots/latest/raw?path=/docs/big.bin", headers={"Range": "bytes=500000-500099"}
        )
        assert part.status_code == 206 and part.content == blob[500000:500100]
        browsing = [r for r in reads if "/packs/" in r[0]]
        assert browsing, "nothing was read from packs"
        # Ranged reads only, each at most a chunk or two: never a whole pack.
        assert all(s is not None and e is not None for _p, s, e in browsing)
        assert max(e - s for _p, s, e in browsing) <= 2 * MAX_CHUNK < max(pack_sizes)  # type: ignore[operator]
        whole = c.get("/api/snapshots/latest/raw?path=/docs/big.bin&download=1")
        assert whole.content == blob
    assert all(s is not None for p, s, _e in reads if "/packs/" in p)
