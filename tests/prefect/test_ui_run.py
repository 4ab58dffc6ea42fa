"""The Prefect UI in Chromium: Run → Quick run of the nightly backup just runs it, and Custom run
shows the deployment's blocks selected (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from helpers import SCREENSHOTS, screenshots_wanted

from tests.prefect.conftest import Deployed, PrefectServer
from tests.prefect.feed import wait_for
from tests.prefect.test_deployment import triggered_run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing"),
]
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def page(prefect_server: PrefectServer) -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            pg = context.new_page()
            pg.set_default_timeout(60_000)
            yield pg
        finally:
            browser.close()


def _deployment(server: PrefectServer, name: str) -> dict[str, Any]:
    """The deployment as the UI reads it (REST: Playwright's sync API owns the event loop)."""
    answer = httpx.get(f"{server.api_url}/deployments/name/{name}", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def _runs(server: PrefectServer, deployment_id: str) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{server.api_url}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [deployment_id]}}, "sort": "EXPECTED_START_TIME_DESC"},
        timeout=10,
    )
    answer.raise_for_status()
    return [
        r for r in answer.json() if r["state_type"] != "SCHEDULED" or r["auto_scheduled"] is False
    ]


def _shoot(page: Any, name: str) -> None:
    if screenshots_wanted():
        page.screenshot(path=str(SCREENSHOTS / name))


def test_quick_run_runs_the_deployment_and_custom_run_shows_its_blocks(
    prefect_server: PrefectServer, deployed: Deployed, process_worker: Any, page: Any
) -> None:
    dep = _deployment(prefect_server, "kloset-backup/nightly-koofr-backup")
    before = {r["id"] for r in _runs(prefect_server, dep["id"])}
    page.goto(f"{prefect_server.url}/deployments/deployment/{dep['id']}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Quick run", exact=True).click()
    # No form: the run is created at once.
    wait_for(
        lambda: [r for r in _runs(prefect_server, dep["id"]) if r["id"] not in before],
        "the quick run to be created",
        90,  # a loaded 2-core machine: the UI's click, then the server's scheduling
    )
    assert page.get_by_text("Run Deployment").count() == 0

    def new_run_finished() -> list[dict[str, Any]]:
        runs = [r for r in _runs(prefect_server, dep["id"]) if r["id"] not in before]
        return [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]

    (run,) = wait_for(new_run_finished, "the quick run to finish", 180, interval=1.0)
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{process_worker.log_tail()}"
    assert run["parameters"]["source"] == dep["parameters"]["source"]
    page.goto(f"{prefect_server.url}/runs/flow-run/{run['id']}")
    page.get_by_text("Finished in state Completed").first.wait_for()  # its logs are shown
    _shoot(page, "prefect-quick-run.png")

    page.goto(f"{prefect_server.url}/deployments/deployment/{dep['id']}")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run", exact=True).click()
    page.get_by_text("Parameters").first.wait_for()
    # The block pickers show the deployment's blocks (by their names).
    for name in ("photos", "vault"):
        page.get_by_text(name, exact=True).first.wait_for()
    _shoot(page, "prefect-custom-run.png")
    if screenshots_wanted():  # the run's kloset.* events, as docs/PREFECT.md shows them
        page.goto(f"{prefect_server.url}/events")
        event = page.get_by_text("kloset.snapshot.created").first
        event.wait_for()
        event.evaluate("e => e.scrollIntoView({block: 'center'})")
        _shoot(page, "prefect-event-feed.png")
    # Let the runs this backup triggered (verify, off-site sync) finish before the session ends.
    # (In a thread: Playwright's sync API keeps an event loop running in this one.)
    with ThreadPoolExecutor(1) as pool:
        snapshot = pool.submit(deployed.vault.list_snapshots).result()[-1]["id"]
        for name in ("kloset-verify/verify-new-snapshot", "kloset-sync/offsite-sync"):
            assert pool.submit(triggered_run, name, snapshot).result().state.is_completed()
