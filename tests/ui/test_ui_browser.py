"""End to end: Debian's chromium, driven by Playwright, against the viewer on a real socket.

The server runs in a thread with uvicorn on 127.0.0.1 (one test also starts the real
`kloset at STORE ui --no-open`). With ``KLOSET_SCREENSHOTS=1`` the run also refreshes the
screenshots of the main pages in docs/screenshots/ (never otherwise: tests leave the checkout
clean).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helpers import SCREENSHOTS, screenshots_wanted
from ui_helpers import PASSPHRASE, UiStore, folder_contents

from kloset.vfs import SnapshotView

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)",
    ),
]
playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


@dataclass
class Served:
    base: str
    token: str
    target: Path

    @property
    def tokened(self) -> str:
        return f"{self.base}/?token={self.token}"


@pytest.fixture(scope="module")
def served(
    ui_store: UiStore, token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    import uvicorn

    from kloset.cli.cmd_ui import bind
    from kloset.ui import create_app

    target = tmp_path_factory.mktemp("browser-restore")
    app = create_app(ui_store.repo, token=token, restore_targets=[str(target)])
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", token, target)
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser: playwright_api.Browser, served: Served) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.goto(served.tokened)
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()


@pytest.fixture(autouse=True)
def no_js_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "page" in request.fixturenames:
        errors = request.getfixturevalue("page").js_errors
        assert not errors, f"errors in the page: {errors}"
        errors.clear()


def shot(page: Page, name: str) -> None:
    if not screenshots_wanted():
        return
    page.mouse.move(1270, 790)  # no hover highlight in the picture
    page.wait_for_timeout(150)  # let the last layout settle
    page.screenshot(path=str(SCREENSHOTS / name))


def go(page: Page, served: Served, fragment: str) -> None:
    page.goto(f"{served.base}/#{fragment}")


def test_snapshot_list(page: Page, served: Served, ui_store: UiStore) -> None:
    assert "token=" not in page.url  # traded for a cookie
    rows = page.locator("#snapshots tbody tr")
    rows.first.wait_for()
    assert rows.count() == 3
    assert rows.first.get_attribute("data-id") == ui_store.second.hex
    assert "nightly" in rows.first.inner_text()
    shot(page, "snapshots.png")
    page.click("th[data-sort=time]")  # newest first → oldest first
    page.wait_for_function("() => location.hash.includes('order=asc')")
    # Every row is on the page in both orders: wait for the re-sorted list, not for a row.
    page.wait_for_function(
        "id => document.querySelector('#snapshots tbody tr')?.dataset.id === id",
        arg=ui_store.damaged.hex,
    )
    assert (
        page.locator("#snapshots tbody tr").first.get_attribute("data-id") == ui_store.damaged.hex
    )


def test_browse_into_a_folder(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, "/")
    page.click(f"#snapshots tbody tr[data-id='{ui_store.second.hex}']")
    page.click("#tree tr[data-name=docs] a")
    page.wait_for_function("() => document.querySelector('.crumbs .here')?.textContent === 'docs'")
    names = page.locator("#tree tbody tr[data-name]").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert names == sorted(os.listdir(ui_store.source / "docs"))
    shot(page, "tree.png")


def test_big_folder_loads_as_you_scroll(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, f"/snap/{ui_store.second.hex}/many")
    rows = page.locator("#tree tbody tr[data-name]")
    page.wait_for_function(
        "() => document.querySelectorAll('#tree tbody tr[data-name]').length === 200"
    )
    page.locator("#load-more").scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelectorAll('#tree tbody tr[data-name]').length >= 400"
    )
    assert rows.nth(399).get_attribute("data-name") == "f00399.txt"
    assert "items" in page.inner_text("#loaded-count")


def test_preview_text_and_image(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, f"/snap/{ui_store.second.hex}/src")
    page.click("#tree tr[data-name='app.py'] a")
    page.locator("#code .t-kw").first.wait_for()
    src = page.inner_text("#code .src")
    assert src.rstrip("\n") == (ui_store.source / "src/app.py").read_text().rstrip("\n")
    keywords = page.locator("#code .t-kw").all_inner_texts()
    assert {"def", "return", "class", "import"} <= set(keywords)
    shot(page, "preview-text.png")
    # Every highlighter compiles and escapes what it colours.
    sample = "<b onclick=x> 'a' \"b\" # c // d /* e */ -- f 42 def select"
    out = page.evaluate(
        "s => KlosetHighlight.languages.map(l => [l, KlosetHighlight.highlight(s, l)])", sample
    )
    assert len(out) >= 15
    for lang, html in out:
        assert "<b" not in html and "&lt;b" in html, lang
    go(page, served, f"/snap/{ui_store.second.hex}/images/logo.png")
    page.wait_for_function("() => document.querySelector('#preview-image')?.naturalWidth === 96")
    shot(page, "preview-image.png")
    go(page, served, f"/snap/{ui_store.second.hex}/data/big.txt")
    page.locator(".truncated").wait_for()
    assert "Download the whole file" in page.inner_text(".truncated")


def test_download_a_file_and_a_folder(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, f"/snap/{ui_store.second.hex}/data/blob.bin")
    page.locator("#hexdump").wait_for()
    with page.expect_download() as info:
        page.click("#download-file")
    download = info.value
    assert download.suggested_filename == "blob.bin"
    assert Path(download.path()).read_bytes() == (ui_store.source / "data/blob.bin").read_bytes()
    go(page, served, f"/snap/{ui_store.second.hex}/docs")
    page.locator("#dl-zip").wait_for()
    with page.expect_download() as info:
        page.click("#dl-zip")
    with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as zf:
        files = {i.filename[len("docs/") :]: zf.read(i) for i in zf.infolist() if not i.is_dir()}
    want = {k: v for k, v in folder_contents(ui_store.source / "docs").items() if v != "<dir>"}
    assert files == want


def test_search(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, "/search")
    page.fill("#pattern", "*.txt")
    page.fill("#in-path", "/docs")
    page.click("#search-form button[type=submit]")
    page.locator("#results tbody tr").first.wait_for()
    paths = set(page.locator("#results td.path").all_inner_texts())
    assert paths == {"/docs/notes.txt", "/docs/résumé ü.txt", "/docs/sub/deep.txt"}
    assert page.locator("#results tbody tr").count() == 9  # three snapshots
    shot(page, "search.png")
    page.select_option("#snapshot", ui_store.second.hex)
    page.click("#search-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 3")


def test_diff(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, "/diff")
    page.select_option("#diff-a", ui_store.first.hex)
    page.select_option("#diff-b", ui_store.second.hex)
    page.click("#diff-form button[type=submit]")
    page.locator("#diff-summary").wait_for()
    summary = page.inner_text("#diff-summary")
    assert "+2 added" in summary and "−1 removed" in summary
    kinds = page.locator("#diff-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.kind + ' ' + r.cells[1].textContent)"
    )
    assert "removed /src/util.js" in kinds and "changed /docs/notes.txt" in kinds
    shot(page, "diff.png")
    page.click(".tabs button[data-kind=added]")
    assert page.locator("#diff-table tbody tr").count() == 2


def test_restore_a_folder(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, f"/snap/{ui_store.second.hex}/docs")
    page.click("#restore-btn")
    page.fill("#restore-subdir", "from-browser")
    page.click("#restore-start")
    page.locator("#restore-status .state.done").wait_for()
    assert "restored 4 files" in page.inner_text("#restore-message")
    shot(page, "restore.png")
    assert folder_contents(served.target / "from-browser") == folder_contents(
        ui_store.source / "docs"
    )
    page.click(".dialog footer a")  # "All restores"
    page.locator("#jobs tbody tr").first.wait_for()
    assert "from-browser" in page.inner_text("#jobs")


def test_errors_view(page: Page, served: Served, ui_store: UiStore) -> None:
    go(page, served, "/")
    page.click(f"#snapshots tr[data-id='{ui_store.damaged.hex}'] a.badge")
    page.locator("#errors tbody tr").first.wait_for()
    assert page.locator("#errors tbody tr").count() == 2
    assert "permission denied" in page.inner_text("#errors")
    shot(page, "errors.png")


def test_no_token_no_access(browser: playwright_api.Browser, served: Served) -> None:
    context = browser.new_context()
    try:
        assert context.request.get(f"{served.base}/api/snapshots").status == 401
        pg = context.new_page()
        response = pg.goto(f"{served.base}/")
        assert response is not None and response.status == 401
        assert "Token needed" in pg.inner_text("h1")
        response = pg.goto(f"{served.base}/?token=not-the-right-one")
        assert response is not None and response.status == 401
    finally:
        context.close()


def test_server_stays_responsive_during_slow_reads(
    served: Served, ui_store: UiStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store reads run in the threadpool: a slow download does not hold up other requests."""
    SnapshotView(ui_store.repo, ui_store.second).stat("/data/blob.bin")  # trees now cached
    storage = ui_store.repo.storage
    real = storage.read_range
    reading = threading.Event()

    def slow(name: str, offset: int, length: int) -> bytes:
        if not reading.is_set():  # the first read of the download stalls for a second
            reading.set()
            time.sleep(1.0)
        return real(name, offset, length)

    monkeypatch.setattr(storage, "read_range", slow)
    auth = {"Authorization": f"Bearer {served.token}"}
    url = f"{served.base}/api/snapshots/{ui_store.second.hex}/raw?path=/data/blob.bin"
    done: dict[str, float] = {}
    with httpx.Client(headers=auth, timeout=30) as http:

        def download() -> None:
            body = http.get(url).content
            done["at"] = time.monotonic()
            done["ok"] = float(body == (ui_store.source / "data/blob.bin").read_bytes())

        worker = threading.Thread(target=download)
        worker.start()
        assert reading.wait(10), "the download never reached the store"
        asked = time.monotonic()
        assert http.get(f"{served.base}/api/info").status_code == 200
        answered = time.monotonic()
        worker.join(30)
    assert done.get("ok") == 1.0
    assert answered < done["at"], "the info request waited for the download"
    assert answered - asked < 0.5


def test_the_real_command(
    browser: playwright_api.Browser, ui_store: UiStore, tmp_path: Path
) -> None:
    env = dict(os.environ, KLOSET_PASSPHRASE=PASSPHRASE)
    cmd = [sys.executable, "-m", "kloset.cli.main", "at", ui_store.location, "ui", "--no-open",
           "--restore-target", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "?token=" in line:
                url = line.strip()
        assert url.startswith("http://127.0.0.1:"), (
            url,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        base, token = url.split("/?token=")
        assert httpx.get(f"{base}/api/info").status_code == 401
        info = httpx.get(f"{base}/api/info", headers={"Authorization": f"Bearer {token}"}).json()
        assert info["targets"][0]["label"] == str(tmp_path)
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(url)
        pg.locator("#snapshots tbody tr").first.wait_for(timeout=TIMEOUT_MS)
        assert pg.locator("#snapshots tbody tr").count() == 3
        context.close()
    finally:
        proc.terminate()
        proc.wait(10)
