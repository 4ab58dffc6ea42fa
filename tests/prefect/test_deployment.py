"""End to end through a real Prefect server: deploy prefect.yaml, run the nightly backup on a
process worker, read its state and summary back, and see its triggers verify and sync it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.prefect.conftest import Deployed
from tests.prefect.feed import wait_for


def _runs_of(deployment: str) -> list[Any]:
    """Flow runs of deployment ``FLOW/NAME``, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[deployment.split("/")[1]])
                ),
                sort=FlowRunSort.START_TIME_DESC,
            )

    return asyncio.run(read())


def triggered_run(deployment: str, snapshot_id: str, timeout: float = 180) -> Any:
    """The finished run of `deployment` that a trigger started for `snapshot_id`."""

    def probe() -> list[Any]:
        return [
            r
            for r in _runs_of(deployment)
            if r.parameters.get("snapshots") == [snapshot_id]
            and r.state is not None
            and r.state.is_final()
        ]

    return wait_for(probe, f"a run of {deployment} for {snapshot_id[:12]}", timeout, 1.0)[0]


@pytest.mark.slow
def test_nightly_backup_on_a_process_worker_triggers_verify_and_offsite_sync(
    deployed: Deployed, process_worker: Any, koofr_fs: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

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
    # Blocks by id (`python -m blocks.deployments link`): references, never their secrets.
    assert set(flow_run.parameters["store"]["$ref"]) == {"block_document_id"}
    snapshot = deployed.vault.list_snapshots()[-1]
    assert snapshot["files"] == 13 and snapshot["tags"] == ["nightly"]
    summary = next(a for a in found if a.type == "markdown")
    assert summary.key == "kloset-backup-nightly-koofr-backup-summary"
    assert snapshot["id"] in summary.data and "| **Status** | Completed |" in summary.data
    assert {a.type for a in found} >= {"markdown", "table", "progress"}

    # kloset.snapshot.created of this run starts both triggered deployments, with its id.
    verified = triggered_run("kloset-verify/verify-new-snapshot", snapshot["id"])
    assert verified.state.is_completed(), f"{verified.state}\n{process_worker.log_tail()}"
    synced = triggered_run("kloset-sync/offsite-sync", snapshot["id"])
    assert synced.state.is_completed(), f"{synced.state}\n{process_worker.log_tail()}"
    # The off-site store was created with the same keys: the snapshot keeps its id there.
    assert snapshot["id"] in [s["id"] for s in deployed.offsite.list_snapshots()]
    assert koofr_fs.exists("offsite-deployed/CONFIG")


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
