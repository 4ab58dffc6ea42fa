"""End to end through a real Prefect server: register blocks, deploy from prefect.yaml, run the
nightly backup deployment on a process worker, read its state and summary back from the API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.prefect.conftest import PASSPHRASE, PrefectServer


@pytest.mark.slow
def test_deploy_and_run_nightly_backup_on_a_process_worker(
    prefect_server: PrefectServer,
    process_worker: Any,
    prefect_harness: None,
    prefect_project: Path,
    credentials: Any,
    tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    from blocks import KlosetRepository, KoofrStorage

    out = prefect_server.cli("block", "register", "-m", "blocks", cwd=prefect_project)
    assert "registered 3 blocks" in out
    store_path = tmp_path / "vault"
    # The names prefect.yaml refers to: the blocks are all there is to configure.
    KoofrStorage(credentials=credentials, base_folder="Corpus").save("photos", overwrite=True)
    vault = KlosetRepository(location=str(store_path), passphrase=SecretStr(PASSPHRASE))
    vault.save("vault", overwrite=True)
    vault.create_repository()
    prefect_server.cli(
        "--no-prompt", "deploy", "--name", "nightly-koofr-backup", cwd=prefect_project
    )

    # The session's worker picks the run up (it polls every second).
    flow_run = run_deployment("kloset-backup/nightly-koofr-backup", timeout=240)

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])
                )
            )

    found = asyncio.run(read())
    assert flow_run.state is not None and flow_run.state.is_completed(), (
        f"{flow_run.state}\n{process_worker.log_tail()}"
    )
    # Blocks travel as references; no secret is stored with the run.
    assert flow_run.parameters["store"] == {
        "$ref": {"block_document_slug": "kloset-repository/vault"}
    }
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
