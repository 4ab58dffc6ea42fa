"""Console script, sample data, persistence across restarts and the pytest fixtures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from koofr_emulator import KoofrEmulator, seed_sample_data
from koofr_emulator.__main__ import is_loopback, main
from koofr_emulator.sample import SAMPLE_EMPTY_DIRS, jpeg_bytes, png_bytes, sample_files

REPO = Path(__file__).resolve().parents[2]


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "koofr_emulator", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("Koofr emulator listening on http://127.0.0.1:"), line
    return proc, line.rsplit(" ", 1)[1].strip()


def test_cli_serves_sample_data_and_faults(tmp_path: Path) -> None:
    proc, url = _start_cli(
        "--root",
        str(tmp_path / "r"),
        "--user",
        "me@example.com",
        "--password",
        "pw",
        "--seed-sample-data",
        "--fault-429-rate",
        "1.0",
        "--fault-path",
        "^/Photos",
    )
    try:
        with httpx.Client(base_url=url, auth=("me@example.com", "pw"), timeout=10) as c:
            mount = c.get("/api/v2/mounts").json()["mounts"][0]["id"]
            files = c.get(f"/api/v2/mounts/{mount}/files/list", params={"path": "/"}).json()
            assert [f["name"] for f in files["files"]] == [
                "Documents",
                "Empty Folder",
                "Photos",
                "Projects",
            ]
            resp = c.get(f"/api/v2/mounts/{mount}/files/list", params={"path": "/Photos"})
            assert resp.status_code == 429 and resp.headers["retry-after"] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_cli_refuses_remote_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2
    assert "refusing" in capsys.readouterr().err
    assert main(["--host", "example.com"]) == 2
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1")


def test_sample_data_is_realistic_and_idempotent(tmp_path: Path) -> None:
    written = seed_sample_data(tmp_path / "s")
    assert written == sorted(sample_files())
    assert seed_sample_data(tmp_path / "s") == written
    with KoofrEmulator(tmp_path / "s") as emu:
        store = emu.store
        for d in SAMPLE_EMPTY_DIRS:
            assert store.list(d) == []
        png = store.info("/Photos/sunset.png")
        assert png.content_type == "image/png" and png.size > 100
        assert store.info("/Photos/日本/桜.jpg").content_type == "image/jpeg"
        assert len(store.list("/Documents/Reports/Archive")) == 2
    assert png_bytes(4, 4).startswith(b"\x89PNG\r\n\x1a\n")
    jpg = jpeg_bytes(16, 8)
    assert jpg.startswith(b"\xff\xd8\xff\xe0") and jpg.endswith(b"\xff\xd9")


def test_state_persists_across_restarts(tmp_path: Path) -> None:
    root = tmp_path / "p"
    with (
        KoofrEmulator(root) as emu,
        httpx.Client(base_url=emu.url, auth=(emu.user, emu.password)) as c,
    ):
        mount_id = emu.mount_id
        c.post(
            f"/content/api/v2/mounts/{mount_id}/files/put",
            params={"path": "/", "filename": "keep.txt", "modified": "1234"},
            content=b"k",
        )
    assert json.loads((root / ".emulator" / "mount.json").read_text())["mountId"] == mount_id
    with KoofrEmulator(root) as again:
        assert again.mount_id == mount_id
        info = again.store.info("/keep.txt")
        assert (info.modified, info.md5, info.size) == (1234, "8ce4b16b22b58894aa86c421e8759df3", 1)
        assert again.store.used_bytes == 1


def test_files_written_behind_the_emulator_are_served(tmp_path: Path) -> None:
    with KoofrEmulator(tmp_path / "x") as emu:
        (emu.files_dir / "Outside.TXT").write_bytes(b"abc")
        info = emu.store.info("/outside.txt")
        assert (info.name, info.md5) == ("Outside.TXT", "900150983cd24fb0d6963f7d28e17f72")
        (emu.files_dir / "Outside.TXT").write_bytes(b"abcd")
        assert emu.store.info("/outside.txt").md5 == "e2fc714c4727ee9395f324cd2e7f331f"


def test_restart_same_object(tmp_path: Path) -> None:
    emu = KoofrEmulator(tmp_path / "o")
    emu.start()
    first = emu.url
    emu.stop()
    emu.stop()  # idempotent
    emu.start()
    try:
        with httpx.Client(base_url=emu.url, auth=(emu.user, emu.password)) as c:
            assert c.get("/api/v2/mounts").status_code == 200
    finally:
        emu.stop()
    assert first.startswith("http://127.0.0.1:")


def test_session_fixture(koofr_emulator_session: KoofrEmulator) -> None:
    assert koofr_emulator_session.running
    assert koofr_emulator_session.url.startswith("http://127.0.0.1:")
    assert not koofr_emulator_session.url.endswith("/")
