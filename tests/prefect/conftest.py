"""Fixtures for the Prefect tests: one real `prefect server`, one process worker and one Koofr
emulator per session.

Starting a Prefect server costs ~15 s, so the whole directory shares one, started when the
first test needs it: flows called in this process report to it (`prefect_harness`), and the
CLI, deployments and workers talk to it through `prefect_server.env`. PREFECT_HOME and the
analytics switch are set by the suite's root conftest, before anything imports Prefect.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.prefect.processes import (
    PREFECT,
    Process,
    free_port,
    prefect_cli,
    wait_healthy,
)

PASSPHRASE = "prefect tests passphrase"
# Small per-request retries: a permanent fault must fail a task in milliseconds, not minutes.
FAST_CLIENT = {"retries": 2, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 10.0}
REPO = Path(__file__).resolve().parents[2]
WORK_POOL = "kloset"  # the pool prefect.yaml deploys to


@dataclass
class PrefectServer:
    """A running `prefect server start`: its UI, its API and the env its clients need."""

    url: str
    api_url: str
    env: dict[str, str]
    root: Path

    def cli(self, *args: str, cwd: Path | None = None, timeout: float = 180) -> str:
        """Run ``prefect ARGS`` against this server; fails the test on a non-zero exit."""
        done = prefect_cli(list(args), self.env, cwd or self.root, timeout)
        assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One `prefect server start` on 127.0.0.1 for the session (SQLite, UI on, services on).

    Proactive automations are evaluated every 2 s instead of 5 s, so a shortened "nothing
    happened within N s" window is noticed quickly.
    """
    root = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(root / "home"),
        PREFECT_API_URL=api_url,
        PREFECT_UI_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY="PT2S",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    server = Process(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        root / "server.log",
    ).start()
    try:
        wait_healthy(f"{api_url}/health", server)
        yield PrefectServer(url=f"http://127.0.0.1:{port}", api_url=api_url, env=env, root=root)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_harness(prefect_server: PrefectServer) -> Iterator[None]:
    """Flows called in this process run against the session's server (like Prefect's own
    `prefect_test_harness`, without a second server)."""
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings({PREFECT_API_URL: prefect_server.api_url}),
        # Also for contexts copied before this fixture ran (Prefect's harness does the same).
        prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
    ):
        try:
            yield
        finally:
            # Deliver what is still queued while the server is up.
            APILogWorker.drain_all()
            EventsWorker.drain_all()


@pytest.fixture(scope="session")
def process_worker(prefect_server: PrefectServer) -> Iterator[Process]:
    """A `prefect worker start` on the process pool `kloset`, polling every second.

    Flow runs of deployments on that pool run as subprocesses of this worker (its process
    group), so stopping it at the end of the session stops them too.
    """
    prefect_server.cli("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
    env = {**prefect_server.env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    worker = Process(
        [*PREFECT, "worker", "start", "--pool", WORK_POOL, "--name", "tests", "--limit", "4"],
        env,
        prefect_server.root / "worker.log",
        cwd=prefect_server.root,
    ).start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def prefect_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project holding the real prefect.yaml: `prefect deploy` runs there, so
    the work tree is never touched; the flow code is the repository's (a symlink)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    (project / "flows").symlink_to(REPO / "flows", target_is_directory=True)
    return project


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


def damage_a_pack(store: Any) -> None:
    """Flip one byte in the middle of the biggest pack of a local store (a disk's bit rot)."""
    pack = max(
        (p for p in (Path(str(store.location)) / "packs").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))


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


@dataclass
class Deployed:
    """prefect.yaml deployed to the session server, with the blocks it names."""

    vault: Any
    offsite: Any
    store_path: Path


@pytest.fixture(scope="session")
def deployed(
    prefect_server: PrefectServer,
    prefect_harness: None,
    process_worker: Process,  # it creates the work pool the deployments name
    prefect_project: Path,
    credentials: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Deployed:
    """The nightly backup with its verify and off-site triggers, deployed as docs/PREFECT.md
    says: register the blocks, save the ones prefect.yaml names, `prefect deploy`, then
    `python -m blocks.deployments link` (blocks by id, for the UI's run form)."""
    from blocks import KlosetRepository, KoofrStorage

    out = prefect_server.cli("block", "register", "-m", "blocks", cwd=prefect_project)
    assert "registered 3 blocks" in out
    store_path = tmp_path_factory.mktemp("deployed") / "vault"
    KoofrStorage(credentials=credentials, base_folder="Corpus").save("photos", overwrite=True)
    vault = KlosetRepository(location=str(store_path), passphrase=SecretStr(PASSPHRASE))
    vault.save("vault", overwrite=True)
    vault.create_repository()
    offsite = KlosetRepository(
        location=KoofrStorage(credentials=credentials, base_folder="offsite-deployed"),
        passphrase=SecretStr("off-site passphrase"),
    )
    offsite.save("offsite", overwrite=True)
    names = ("nightly-koofr-backup", "verify-new-snapshot", "offsite-sync")
    prefect_server.cli(
        "--no-prompt", "deploy", *[a for n in names for a in ("--name", n)], cwd=prefect_project
    )
    linked = subprocess.run(
        [sys.executable, "-m", "blocks.deployments", "link"],
        env=prefect_server.env, cwd=prefect_project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert linked.returncode == 0, linked.stderr
    assert "linked kloset-backup/nightly-koofr-backup" in linked.stdout
    return Deployed(vault=vault, offsite=offsite, store_path=store_path)
