"""Backup, restore, verify and prune flows against the Koofr emulator, inside one harness."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from pydantic import SecretStr

from blocks import KlosetRepository
from flows import backup_flow, prune_flow, restore_flow, verify_flow
from kloset.check import check_store
from koofr_emulator import FaultRule
from tests.prefect.conftest import PASSPHRASE, koofr_files, tree_files

pytestmark = pytest.mark.usefixtures("prefect_harness")
MIB = 1024 * 1024


def _run_id(state: Any) -> UUID:
    return state.state_details.flow_run_id  # type: ignore[no-any-return]


def artifacts(state: Any) -> dict[str, Any]:
    """{type: artifact} of one flow run (markdown summary, table, progress)."""

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[_run_id(state)])
                )
            )

    return {a.type: a for a in asyncio.run(read())}


def flow_parameters(state: Any) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with get_client() as client:
            return dict((await client.read_flow_run(_run_id(state))).parameters)

    return asyncio.run(read())


def test_backup_from_koofr_into_local_store(
    koofr_folder: Any, store_block: KlosetRepository, koofr_fs: Any
) -> None:
    source = koofr_folder("Corpus", fresh=False)
    state = backup_flow(
        source,
        store_block,
        create_store=True,
        batch_bytes=1 * MIB,
        workers=2,
        verify_fraction=1.0,
        tags=["t1"],
        return_state=True,
    )
    assert state.is_completed(), state.message
    result = state.result()
    stats = result["stats"]
    assert stats["files"] == 13 and stats["errors"] == 0 and result["verified"]
    # copy-of-file-00.bin is a duplicate: its chunk is stored once.
    assert stats["bytes_added"] < stats["bytes"]

    repo = store_block.open_repository()
    (header,) = repo.list_snapshots()
    assert header.hex == result["snapshot_id"] and header.tags == ["t1"]
    assert header.source == source.location_label()
    assert check_store(repo, read_data=True).ok

    found = artifacts(state)
    summary = found["markdown"].data
    assert result["snapshot_id"] in summary and "Dedup ratio" in summary
    assert "| **Status** | Completed |" in summary
    assert found["progress"].data == 100
    assert found["table"].data in ("[]", [])
    # The unsaved block went to the API as a flow parameter: its secret must not.
    params = repr(flow_parameters(state))
    assert "test-password" not in params and PASSPHRASE not in params

    again = backup_flow(source, store_block, batch_bytes=1 * MIB, return_state=True)
    assert again.is_completed(), again.message
    second = again.result()["stats"]
    assert second["files_read"] == 0 and second["bytes_read"] == 0 and second["files"] == 13
    assert len(repo.list_snapshots()) == 2


def test_local_to_koofr_store_then_restore_locally_and_to_koofr(
    koofr_folder: Any, local_source: Path, tmp_path: Path, koofr_fs: Any
) -> None:
    store = KlosetRepository(location=koofr_folder("store"), passphrase=SecretStr(PASSPHRASE))
    state = backup_flow(str(local_source), store, create_store=True, return_state=True)
    assert state.is_completed(), state.message
    assert koofr_fs.exists(f"{store.location.base_folder}/CONFIG")

    target = tmp_path / "restored"
    restored = restore_flow(store, str(target), return_state=True)
    assert restored.is_completed(), restored.message
    assert restored.result()["files_verified"] == 3
    assert tree_files(target) == tree_files(local_source)
    assert os.readlink(target / "link") == "docs/a.txt"

    # Koofr holds no symlinks: the restore writes and verifies every file, then fails loudly
    # naming the one path it could not restore.
    koofr_target = koofr_folder("restored")
    to_koofr = restore_flow(store, koofr_target, path="/", return_state=True)
    assert to_koofr.is_failed()
    assert "/link" in (to_koofr.message or "")
    assert koofr_files(koofr_fs, koofr_target.base_folder) == tree_files(local_source)
    table = artifacts(to_koofr)["table"].data
    assert "/link" in str(table)


def test_unreadable_source_file_fails_loudly_after_committing(
    emulator: Any, koofr_folder: Any, store_block: KlosetRepository
) -> None:
    source = koofr_folder("Corpus", fresh=False)
    emulator.add_fault(
        FaultRule(kind="status", status=500, rate=1.0, route="files/get", path_regex="file-03")
    )
    try:
        state = backup_flow(source, store_block, create_store=True, return_state=True)
    finally:
        emulator.clear_faults()
    assert state.is_failed()
    assert "/file-03.bin" in (state.message or "")
    (header,) = store_block.open_repository().list_snapshots()
    assert header.stats["files"] == 12 and header.errors_total == 1
    assert "FAILED" in artifacts(state)["markdown"].data


def test_failed_upload_then_rerun_reuses_uploaded_batches(
    emulator: Any, koofr_folder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, source = faulty_koofr_backup(koofr_folder, monkeypatch)
    base = store.location.base_folder
    emulator.reset_counters()

    stop = _fault_after_first_index(emulator, base)
    try:
        failed = backup_flow(source, store, batch_bytes=1 * MIB, workers=1, return_state=True)
    finally:
        stop()
        emulator.clear_faults()
    assert failed.is_failed()
    assert "rerun reuses" in (failed.message or "") and "503" in (failed.message or "")
    repo = store.open_repository()
    assert repo.list_snapshots() == []
    indexed_before = len(repo.index)
    assert indexed_before > 0, "the first batch was uploaded and indexed before the fault"

    emulator.reset_counters()
    state = backup_flow(source, store, batch_bytes=1 * MIB, workers=1, return_state=True)
    assert state.is_completed(), state.message
    stats = state.result()["stats"]
    # 13 files, 12 distinct contents (one copy), one chunk each: what the failed run indexed
    # is not stored again.
    assert stats["chunks_new"] + indexed_before == 12
    repo = store.open_repository()
    report = check_store(repo, read_data=True)
    assert report.ok, report.errors
    assert len(repo.list_snapshots()) == 1


def faulty_koofr_backup(koofr_folder: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """A fresh store and the shared corpus, both on Koofr, for a backup a fault will stop:
    batch retries stay on but do not wait (the faults these tests inject are permanent)."""
    import flows.backup as backup_module

    monkeypatch.setattr(
        backup_module,
        "backup_batch",
        backup_module.backup_batch.with_options(retries=1, retry_delay_seconds=0),
    )
    store = KlosetRepository(location=koofr_folder("faulty"), passphrase=SecretStr(PASSPHRASE))
    store.create_repository()
    return store, koofr_folder("Corpus", fresh=False)


def _fault_after_first_index(emulator: Any, base: str) -> Any:
    """Make every upload fail with 503 once the first batch is stored (its journal, written
    after its packs and their index)."""
    import threading
    import time

    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            # Koofr uploads name the target folder in `path`.
            if any(
                r.route == "files/put" and r.status == 200 and r.path.startswith(f"/{base}/runs/")
                for r in emulator.requests
            ):
                emulator.add_fault(
                    FaultRule(
                        kind="status", status=503, rate=1.0, route="files/put", retry_after=None
                    )
                )
                return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(5)

    return stop


def test_verify_and_prune(
    local_source: Path, store_block: KlosetRepository, tmp_path: Path
) -> None:
    first = backup_flow(str(local_source), store_block, create_store=True, return_state=True)
    assert first.is_completed(), first.message
    (local_source / "docs" / "new.txt").write_text("new file\n")
    second = backup_flow(str(local_source), store_block, return_state=True)
    assert second.is_completed(), second.message

    checked = verify_flow(store_block, read_data_subset="100%", return_state=True)
    assert checked.is_completed(), checked.message
    assert checked.result()["packs_read"] >= 2

    dry = prune_flow(store_block, keep_last=1, dry_run=True)
    assert len(dry["removed"]) == 1 and len(store_block.list_snapshots()) == 2
    report = prune_flow(store_block, keep_last=1)
    assert [s["id"] for s in report["removed"]] == [first.result()["snapshot_id"]]
    (kept,) = store_block.list_snapshots()
    assert kept["id"] == second.result()["snapshot_id"]
    assert store_block.read_file("latest", "/docs/new.txt") == b"new file\n"
    assert check_store(store_block.open_repository(), read_data=True).ok

    # The block's one-call helpers, sync and async.
    done = store_block.restore("latest", "/docs", str(tmp_path / "docs"))
    assert done["files_written"] == 3 and done["errors"] == []
    assert tree_files(tmp_path / "docs") == tree_files(local_source / "docs")
    assert [s["id"] for s in asyncio.run(store_block.alist_snapshots())] == [kept["id"]]


def test_verify_flow_fails_loudly_on_damage(
    local_source: Path, store_block: KlosetRepository
) -> None:
    assert backup_flow(
        str(local_source), store_block, create_store=True, return_state=True
    ).is_completed()
    store_root = Path(str(store_block.location))
    pack = max(
        (p for p in (store_root / "packs").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    state = verify_flow(store_block, read_data_subset="100%", return_state=True)
    assert state.is_failed()
    assert "damaged" in (state.message or "")
    assert "/docs/deep/b.bin" in (state.message or "")


def test_parallel_chunk_tasks_store_shared_content_once(
    store_block: KlosetRepository, tmp_path: Path
) -> None:
    """Four batches holding the same 2 MiB, chunked by four tasks at once: the chunk tasks
    claim new chunks through the run dir, so the store holds one copy, not four."""
    blob = random.Random(21).randbytes(2 * MIB)
    source = tmp_path / "dupes"
    for name in ("a", "b", "c", "d"):
        (source / name).mkdir(parents=True)
        (source / name / "same.bin").write_bytes(blob)
    state = backup_flow(
        str(source), store_block, create_store=True, batch_bytes=2 * MIB, batch_files=1,
        workers=4, return_state=True,
    )  # fmt: skip
    assert state.is_completed(), state.message
    stats = state.result()["stats"]
    assert stats["files"] == 4 and stats["bytes_read"] == 8 * MIB
    assert stats["bytes_new"] < 2.05 * MIB, stats
    restored = restore_flow(store_block, str(tmp_path / "restored"), return_state=True)
    assert restored.is_completed(), restored.message
    assert tree_files(tmp_path / "restored") == tree_files(source)
