"""The shipped automations, installed with their one command, notify a local webhook: of a
failed backup, of one that did not happen within the (shortened) window, of a damaged store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from blocks import KlosetRepository
from flows import backup_flow, verify_flow
from tests.prefect.conftest import REPO, PrefectServer, damage_a_pack
from tests.prefect.feed import drain_events, wait_for
from tests.prefect.webhook import webhook_receiver

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_automations_notify_on_failure_when_overdue_and_on_damage(
    prefect_server: PrefectServer, local_source: Path, store_block: KlosetRepository
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from automations.install import aremove

    with webhook_receiver() as (url, received):
        CustomWebhookNotificationBlock(
            name="kloset-tests",
            url=url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            allow_private_urls=True,
        ).save("kloset-tests", overwrite=True)
        # The documented command, with the overdue window shortened from 26 h to 10 s.
        done = subprocess.run(
            [sys.executable, "-m", "automations", "install",
             "--notify-block", "custom-webhook/kloset-tests", "--overdue-after", "10s"],
            env=prefect_server.env, cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "installed automation kloset-backup-overdue" in done.stdout
        try:
            store_block.create_repository()
            wrong = store_block.model_copy(update={"passphrase": SecretStr("not it")})
            assert backup_flow(str(local_source), wrong, return_state=True).is_failed()
            drain_events()
            (failed,) = wait_for(
                lambda: received.matching("Kloset backup failed"), "the failure webhook"
            )
            assert "wrong passphrase" in failed["body"]
            assert "Fix: set the store's passphrase" in failed["body"]
            assert str(local_source) in failed["subject"]

            state = backup_flow(str(local_source), store_block, return_state=True)
            assert state.is_completed(), state.message
            drain_events()
            # Nothing completes within the next 10 s: the proactive trigger fires once.
            (overdue,) = wait_for(
                lambda: received.matching("Kloset backup overdue"), "the overdue webhook", 60
            )
            assert state.result()["snapshot_id"] in overdue["body"]

            # Damage in a pack: the check fails and says which file is hit.
            damage_a_pack(store_block)
            assert verify_flow(store_block, read_data_subset="all", return_state=True).is_failed()
            drain_events()
            (damaged,) = wait_for(
                lambda: received.matching("Kloset store damaged"), "the damage webhook"
            )
            assert "/docs/deep/b.bin" in damaged["body"] and "1 damaged pack" in damaged["body"]
        finally:
            asyncio.run(aremove())


def test_install_refuses_a_missing_block_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from automations.__main__ import main

    assert main(["install", "--notify-block", "slack-webhook/nope"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "automations: error: no block slack-webhook/nope on this Prefect server: create it first"
    ]
