"""End to end through a real Prefect server: register blocks, deploy from prefect.yaml, run the
nightly backup deployment on a process worker, read its state and summary back from the API."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.prefect.conftest import PASSPHRASE

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME; yields the CLI env."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        [*PREFECT, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_deploy_and_run_nightly_backup_on_a_process_worker(
    prefect_server: dict[str, str], emulator: Any, credentials: Any, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from blocks import KlosetRepository, KoofrStorage

    env = prefect_server
    # A copy of the project holding the real prefect.yaml: `prefect deploy` runs there, so
    # the work tree is never touched; the flow code is the repository's (a symlink).
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    (project / "flows").symlink_to(REPO / "flows", target_is_directory=True)

    assert "registered 3 blocks" in _cli(["block", "register", "-m", "blocks"], env, project)
    store_path = tmp_path / "vault"
    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
        # The names prefect.yaml refers to: the blocks are all there is to configure.
        KoofrStorage(credentials=credentials, base_folder="Corpus").save("photos")
        vault = KlosetRepository(location=str(store_path), passphrase=SecretStr(PASSPHRASE))
        vault.save("vault")
        vault.create_repository()
        _cli(["work-pool", "create", "kloset", "--type", "process"], env, project)
        _cli(["--no-prompt", "deploy", "--name", "nightly-koofr-backup"], env, project)

        flow_run = run_deployment("kloset-backup/nightly-koofr-backup", timeout=0)
        worker = subprocess.run(
            [*PREFECT, "worker", "start", "--pool", "kloset", "--run-once"],
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr

        async def read() -> tuple[Any, list[Any]]:
            async with get_client() as client:
                run = await client.read_flow_run(flow_run.id)
                found = await client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])
                    )
                )
            return run, found

        run, found = asyncio.run(read())

    assert run.state is not None and run.state.is_completed(), (
        f"{run.state}\n{worker.stdout[-4000:]}\n{worker.stderr[-4000:]}"
    )
    # Blocks travel as references; no secret is stored with the run.
    assert run.parameters["store"] == {"$ref": {"block_document_slug": "kloset-repository/vault"}}
    (snapshot,) = vault.list_snapshots()
    assert snapshot["files"] == 13 and snapshot["tags"] == ["nightly"]
    summary = next(a for a in found if a.type == "markdown")
    assert summary.key == "kloset-backup-nightly-koofr-backup-summary"
    assert snapshot["id"] in summary.data and "| **Status** | Completed |" in summary.data
    assert {a.type for a in found} >= {"markdown", "table", "progress"}


def test_serve_style_deployment_keeps_block_references(prefect_harness: None) -> None:
    """docs/PREFECT.md's `flow.serve` recipe: parameters are block references, not blocks."""
    from prefect.client.orchestration import get_client

    from flows import backup_flow

    def ref(slug: str) -> dict[str, Any]:
        return {"$ref": {"block_document_slug": slug}}

    params = {"source": ref("koofr-storage/photos"), "store": ref("kloset-repository/vault")}
    deployment = backup_flow.to_deployment(
        name="serve-recipe", cron="30 2 * * *", parameters={**params, "tags": ["nightly"]}
    )
    deployment_id = deployment.apply()

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment(deployment_id)

    stored = asyncio.run(read())
    assert stored.parameters == {**params, "tags": ["nightly"]}
    assert stored.schedules and stored.schedules[0].schedule.cron == "30 2 * * *"
