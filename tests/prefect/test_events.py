"""The flows' events reach the real server's event feed, with stable store and source ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from blocks import KlosetRepository
from flows import backup_flow, prune_flow, restore_flow, verify_flow
from flows.events import location_resource
from tests.prefect.conftest import PrefectServer, damage_a_pack
from tests.prefect.feed import drain_events, read_events, related, wait_for

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _events_of(api_url: str, name: str, resource_id: str) -> list[dict[str, Any]]:
    return [e for e in read_events(api_url, name, resource_id) if e["event"] == name]


def test_flows_emit_events_with_store_and_source(
    prefect_server: PrefectServer,
    local_source: Path,
    store_block: KlosetRepository,
    tmp_path: Path,
) -> None:
    api = prefect_server.api_url
    state = backup_flow(str(local_source), store_block, create_store=True, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    snap = result["snapshot_id"]
    store_id = store_block.open_repository().config.store_id
    restore_flow(store_block, str(tmp_path / "restored"))
    prune_flow(store_block, keep_last=1, dry_run=True)
    drain_events()

    (created,) = wait_for(
        lambda: _events_of(api, "kloset.snapshot.created", f"kloset.snapshot.{snap}"),
        "kloset.snapshot.created",
    )
    store = related(created, "store")
    assert store["prefect.resource.id"] == f"kloset.store.{store_id}"
    assert store["prefect.resource.name"] == store_block.location_label()
    source = related(created, "source")
    assert source == location_resource(source["prefect.resource.name"], "source")
    assert source["prefect.resource.name"].endswith(local_source.name)
    assert created["payload"]["snapshot_id"] == snap and created["payload"]["files"] == 3
    # Prefect relates the event to the flow run that emitted it.
    assert related(created, "flow-run")["prefect.resource.id"].startswith("prefect.flow-run.")

    (done,) = wait_for(
        lambda: [
            e
            for e in read_events(api, "kloset.backup.completed")
            if e["payload"]["snapshot_id"] == snap
        ],
        "kloset.backup.completed",
    )
    assert done["resource"]["prefect.resource.id"].startswith("kloset.backup.")
    assert related(done, "store")["prefect.resource.id"] == f"kloset.store.{store_id}"
    payload = done["payload"]
    assert payload["errors"] == 0 and payload["verified"] is True
    assert payload["files"] == result["stats"]["files"]
    assert payload["bytes_added"] == result["stats"]["bytes_added"] > 0

    (restored,) = wait_for(
        lambda: _events_of(api, "kloset.restore.completed", f"kloset.snapshot.{snap}"),
        "kloset.restore.completed",
    )
    assert restored["payload"]["files_written"] == 3
    assert related(restored, "store")["prefect.resource.id"] == f"kloset.store.{store_id}"
    assert related(restored, "target")["prefect.resource.name"].endswith("restored")
    (pruned,) = wait_for(
        lambda: _events_of(api, "kloset.prune.completed", f"kloset.store.{store_id}"),
        "kloset.prune.completed",
    )
    assert pruned["payload"]["dry_run"] is True and pruned["payload"]["snapshots_kept"] == 1

    # Damage: the check fails, and says so on the feed with the affected paths.
    damage_a_pack(store_block)
    assert verify_flow(store_block, read_data_subset="all", return_state=True).is_failed()
    drain_events()
    (damaged,) = wait_for(
        lambda: _events_of(api, "kloset.check.failed", f"kloset.store.{store_id}"),
        "kloset.check.failed",
    )
    assert damaged["payload"]["damaged_packs"] == 1
    assert "/docs/deep/b.bin" in damaged["payload"]["first_paths"]


def test_failed_backup_emits_the_message_and_the_fix(
    prefect_server: PrefectServer, local_source: Path, store_block: KlosetRepository
) -> None:
    store_block.create_repository()
    wrong = store_block.model_copy(update={"passphrase": SecretStr("not the passphrase")})
    state = backup_flow(str(local_source), wrong, return_state=True)
    assert state.is_failed()
    assert "wrong passphrase" in (state.message or "")
    assert "Fix: set the store's passphrase" in (state.message or "")
    drain_events()
    store_id = store_block.open_repository().config.store_id

    def failed() -> list[dict[str, Any]]:
        return [
            e
            for e in read_events(prefect_server.api_url, "kloset.backup.failed")
            if related(e, "store")["prefect.resource.id"] == f"kloset.store.{store_id}"
        ]

    (event,) = wait_for(failed, "kloset.backup.failed")
    assert "WrongPassphrase" in event["payload"]["message"]
    assert "passphrase" in event["payload"]["fix"]
    assert event["payload"]["snapshot_id"] is None
