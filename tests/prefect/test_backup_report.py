"""What a backup run's artifacts say when it stops early, and after a retry (issue 14.7)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flows import backup_flow
from tests.prefect.conftest import koofr_files
from tests.prefect.test_flows import _fault_after_first_index, _run_id, faulty_koofr_backup

pytestmark = pytest.mark.usefixtures("prefect_harness")
MIB = 1024 * 1024


def _artifacts(state: Any) -> list[Any]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[_run_id(state)])
                )
            )

    return asyncio.run(read())


def _rows(table: Any) -> list[dict[str, str]]:
    return json.loads(table.data) if isinstance(table.data, str) else list(table.data)


def test_a_retried_run_that_stops_early_reports_what_each_attempt_stored(
    emulator: Any, koofr_folder: Any, koofr_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, source = faulty_koofr_backup(koofr_folder, monkeypatch)
    stop = _fault_after_first_index(emulator, store.location.base_folder)
    try:
        state = backup_flow.with_options(retries=1, retry_delay_seconds=0)(
            source, store, batch_bytes=1 * MIB, workers=1, return_state=True
        )
    finally:
        stop()
        emulator.clear_faults()
    assert state.is_failed()

    found = _artifacts(state)
    summaries = sorted((a for a in found if a.type == "markdown"), key=lambda a: a.created)
    tables = sorted((a for a in found if a.type == "table"), key=lambda a: a.created)
    assert len(summaries) == 2 and len(tables) == 2, [(a.type, a.description) for a in found]
    first, second = (s.data for s in summaries)
    # The title is the source's short name, not its koofr://user@host/... label; each attempt
    # is labelled, in the card's title and description, so the Artifacts tab tells them apart.
    assert first.startswith("# Kloset backup of Corpus\n"), first
    assert second.startswith("# Kloset backup of Corpus (attempt 2)\n"), second
    assert "attempt 2" in (summaries[1].description or "")
    assert "attempt 2" in (tables[1].description or "")
    assert "attempt" not in (summaries[0].description or "")

    # What was really stored: the first attempt's one uploaded batch, not the plan.
    corpus = koofr_files(koofr_fs, "Corpus")
    assert "| **Status** | FAILED |" in first and "none (nothing committed)" in first
    stored = next(line for line in first.splitlines() if "Stored so far" in line)
    assert f"of {len(corpus)} to read" in stored and "in 1 of " in stored, stored
    assert "| **Stored so far** | 0 files" in second  # the fault was there from the start
    assert "Dedup ratio" not in first and "503" in first

    # Failed-paths rows name files of the source and why each was not stored.
    rows = _rows(tables[0])
    assert rows and {r["path"] for r in rows} <= {f"/{p}" for p in corpus}, rows
    assert all("503" in r["error"] for r in rows), rows
    assert len(rows) < len(corpus)  # the uploaded batch's files are not in the table

    # The next run adopts what the first attempt stored: it downloads only the other files.
    stored_files = int(stored.split("|")[2].split()[0])
    emulator.reset_counters()
    state = backup_flow(source, store, batch_bytes=1 * MIB, workers=1, return_state=True)
    assert state.is_completed(), state.message
    downloaded = {
        r.path
        for r in emulator.requests
        if r.route == "files/get" and r.path.startswith("/Corpus/")
    }
    assert len(downloaded) == len(corpus) - stored_files > 0, sorted(downloaded)


def test_verify_problems_name_the_damaged_files() -> None:
    from flows.backup import _verify_problems

    report = {
        "errors": ["pack 1a2b: blob 3c4d does not decrypt"],
        "affected": {"ab" * 32: ["/docs/a.txt", "/b.bin"]},
    }
    assert _verify_problems(report) == [
        (
            "/docs/a.txt",
            f"damaged in the new snapshot {'ab' * 6}: pack 1a2b: blob 3c4d does not decrypt",
        ),
        (
            "/b.bin",
            f"damaged in the new snapshot {'ab' * 6}: pack 1a2b: blob 3c4d does not decrypt",
        ),
    ]
    # Damage that names no file is still reported.
    assert _verify_problems({"errors": ["index 9f: unreadable"]}) == [
        ("(store)", "index 9f: unreadable")
    ]
