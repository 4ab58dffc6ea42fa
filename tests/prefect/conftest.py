"""Fixtures for the Prefect tests: one test harness and one Koofr emulator per session.

Starting Prefect's test server costs ~14 s, so the whole directory shares one, started before
the first test needs it. Prefect reads PREFECT_HOME and analytics settings at import time, so
they are set here, before anything below imports it (the suite's root conftest sets the same).
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="kloset-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402
from pydantic import SecretStr  # noqa: E402

PASSPHRASE = "prefect tests passphrase"
# Small per-request retries: a permanent fault must fail a task in milliseconds, not minutes.
FAST_CLIENT = {"retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 10.0}


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test server, shared by every test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Koofr emulator with the sample tree and a ``Corpus`` folder big enough for batches."""
    from koofr_emulator import KoofrEmulator, seed_sample_data

    emu = KoofrEmulator(tmp_path_factory.mktemp("koofr"), host="127.0.0.1", port=0).start()
    seed_sample_data(emu)
    fs = _filesystem(emu)
    rng = random.Random(7)
    fs.makedirs("Corpus/sub", exist_ok=True)
    for i in range(12):
        data = rng.randbytes(300_000 + i * 1000)
        fs.pipe_file(
            f"Corpus/{'sub/' if i % 3 else ''}file-{i:02d}.bin",
            data,
            modified=1_700_000_000_000 + i,
        )
    fs.pipe_file("Corpus/copy-of-file-00.bin", fs.cat_file("Corpus/file-00.bin"))
    try:
        yield emu
    finally:
        emu.clear_faults()
        emu.stop()


def _filesystem(emu: Any) -> Any:
    from koofrfs.filesystem import KoofrFileSystem

    return KoofrFileSystem(
        user=emu.user,
        password=emu.password,
        endpoint=emu.url,
        provider="other",
        skip_instance_cache=True,
        **FAST_CLIENT,
    )


@pytest.fixture(scope="session")
def koofr_fs(emulator: Any) -> Any:
    """A `KoofrFileSystem` on the emulator, for checking what flows wrote."""
    return _filesystem(emulator)


@pytest.fixture(scope="session")
def credentials(emulator: Any) -> Any:
    """`KoofrCredentials` for the emulator's account."""
    from blocks import KoofrCredentials

    return KoofrCredentials(
        email=emulator.user,
        app_password=SecretStr(emulator.password),
        provider="other",
        endpoint=emulator.url,
        client_options=dict(FAST_CLIENT),
    )


@pytest.fixture
def koofr_folder(credentials: Any, request: pytest.FixtureRequest) -> Any:
    """Factory: a `KoofrStorage` block on a folder of the emulator (unique per test)."""
    from blocks import KoofrStorage

    def make(sub: str, *, fresh: bool = True) -> Any:
        base = f"{sub}-{request.node.name}" if fresh else sub
        return KoofrStorage(credentials=credentials, base_folder=base)

    return make


@pytest.fixture
def local_source(tmp_path: Path) -> Path:
    """A small local tree: text, binary, an empty file, nested folders, a symlink."""
    rng = random.Random(11)
    root = tmp_path / "source"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello kloset\n" * 100)
    (root / "docs" / "deep" / "b.bin").write_bytes(rng.randbytes(700_000))
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("docs/a.txt")
    return root


@pytest.fixture
def store_block(tmp_path: Path) -> Any:
    """A `KlosetRepository` on a fresh local path (created by the first backup)."""
    from blocks import KlosetRepository

    return KlosetRepository(location=str(tmp_path / "store"), passphrase=SecretStr(PASSPHRASE))


def tree_files(root: Path) -> dict[str, bytes]:
    """{relative path: bytes} of the regular files below `root`."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def koofr_files(fs: Any, base: str) -> dict[str, bytes]:
    """{path relative to `base`: bytes} of every file below `base` on Koofr."""
    out = {}
    for name, info in fs.find(base, detail=True).items():
        if info.get("type") != "directory":
            out[str(name).strip("/")[len(base) :].lstrip("/")] = bytes(fs.cat_file(name))
    return out
