"""Task retries against the real server: none for what a retry cannot fix, some for outages."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from pydantic import SecretStr

from blocks import KlosetRepository
from flows import backup_flow
from kloset_tasks import check
from koofr_emulator import FaultRule

pytestmark = pytest.mark.usefixtures("prefect_harness")


def task_runs(state: Any) -> dict[str, int]:
    """{task name: attempts} of one flow run."""
    run_id: UUID = state.state_details.flow_run_id

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [run_id]}))

    return {t.name.rsplit("-", 1)[0]: t.run_count for t in asyncio.run(read())}


@flow(name="kloset-test-check-once")
def _check_flow(store: KlosetRepository) -> dict[str, Any]:
    return check(store)


def test_wrong_passphrase_fails_after_one_attempt(store_block: KlosetRepository) -> None:
    store_block.create_repository()
    wrong = store_block.model_copy(update={"passphrase": SecretStr("not it")})
    state = _check_flow(wrong, return_state=True)
    assert state.is_failed()
    # `check` has retries=2 (5 s backoff): a retry would show as a second attempt.
    assert task_runs(state) == {"check": 1}


def test_flaky_koofr_succeeds_after_task_retries(
    emulator: Any,
    koofr_folder: Any,
    store_block: KlosetRepository,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import flows.backup as backup_module

    # The real backoff (5 s and up) is the policy; the test only skips the waiting.
    monkeypatch.setattr(
        backup_module,
        "enumerate_task",
        backup_module.enumerate_task.with_options(retry_delay_seconds=0),
    )
    source = koofr_folder("Corpus", fresh=False)
    # 3 answers of 503 outlast the client's own 3 attempts: the task has to retry.
    emulator.add_fault(
        FaultRule(kind="status", status=503, count=3, path_regex="^/Corpus", retry_after=None)
    )
    try:
        state = backup_flow(source, store_block, create_store=True, return_state=True)
    finally:
        emulator.clear_faults()
    assert state.is_completed(), state.message
    assert task_runs(state)["enumerate"] == 2
    assert state.result()["stats"]["files"] == 13


def test_missing_koofr_folder_fails_at_once(
    koofr_folder: Any, store_block: KlosetRepository
) -> None:
    state = backup_flow(
        koofr_folder("No-Such-Folder"), store_block, create_store=True, return_state=True
    )
    assert state.is_failed()
    assert task_runs(state)["enumerate"] == 1
    assert "does not exist" in (state.message or "")
    assert "Fix: check the base folder" in (state.message or "")


def test_first_run_without_a_store_says_how_to_create_it_in_one_line(
    local_source: Any, store_block: KlosetRepository
) -> None:
    """What a UI-only user sees when the deployment's store does not exist yet."""
    state = backup_flow(str(local_source), store_block, return_state=True)
    assert state.is_failed()
    message = state.message or ""
    assert "\n" not in message
    assert "no kloset store at" in message
    assert "Fix: create the store once: run the deployment with create_store=true" in message
    assert "kloset at STORE create" in message
