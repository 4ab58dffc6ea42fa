"""End-to-end Koofr fixtures: an in-process emulator, rclone pointed at it, and the real CLI.

Everything a user would do is done the way a user does it: the remote reaches kloset through
``rclone config show|dump | kloset ROLE import``, every kloset step is a fresh
``python -m kloset.cli.main`` process, and rclone judges what lands in Koofr. Trees whose
names matter are uploaded by rclone; large or fault-test trees are written straight into the
emulator's store (``koofr_emulator.sample.write_file``), which is much faster. The emulator
runs in the test process so tests can read its request counters and inject faults between steps.

Each test gets its own kloset config dir, cache dir and rclone config, so remotes, spools and
caches never leak from one test into another (or from the developer's home into a test).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from koofr_emulator import KoofrEmulator
from koofr_emulator.http_types import Request, Response

RCLONE = shutil.which("rclone") or "/usr/bin/rclone"
PASSPHRASE = "koofr e2e passphrase"
FAST_KDF = ("--kdf-memory-kib", "64", "--kdf-iterations", "1")
REPO = Path(__file__).resolve().parents[2]
FAULT_SEED = 20240611

# Retries stay as many as in production (8 attempts), only the waits shrink: a test of the
# retry path must not spend its time sleeping, and the emulator's Retry-After is whole seconds.
FAST_RETRY_ENV = {
    "KLOSET_KOOFR_BACKOFF_BASE": "0.005",
    "KLOSET_KOOFR_BACKOFF_MAX": "0.02",
    "KLOSET_KOOFR_TIMEOUT": "20",
}

needs_rclone = pytest.mark.skipif(
    not os.path.exists(RCLONE), reason="rclone is not installed (apt-get install rclone)"
)


@dataclass(frozen=True)
class Download:
    """One ``files/get`` the emulator answered: which file, which range, how many bytes."""

    path: str
    range: str | None
    status: int
    length: int


@dataclass
class DownloadLog:
    """Records every ``files/get`` by wrapping the emulator's API dispatcher.

    The emulator's own request log has no headers, and a test of "packs are read by range"
    must see the ``Range`` header and the size of what was sent, not just a count.
    """

    entries: list[Download] = field(default_factory=list)

    def install(self, emu: KoofrEmulator) -> None:
        api = emu.api
        original = api.handle

        def handle(req: Request) -> Response:
            resp = original(req)
            if req.route == "files/get":
                self.entries.append(
                    Download(
                        req.query.get("path", ""),
                        req.headers.get("Range"),
                        resp.status,
                        resp.content_length,
                    )
                )
            return resp

        api.handle = handle  # type: ignore[method-assign]

    def clear(self) -> None:
        self.entries.clear()


@dataclass
class KoofrWorld:
    """One test's emulator, rclone config and kloset environment."""

    emu: KoofrEmulator
    tmp: Path
    env: dict[str, str]
    rclone_conf: Path
    downloads: DownloadLog = field(repr=False)

    # -- running tools ----------------------------------------------------------------------

    def kloset(
        self, *argv: str | os.PathLike[str], input: bytes | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI in a fresh interpreter; stdout/stderr as text."""
        return subprocess.run(
            [sys.executable, "-m", "kloset.cli.main", *map(str, argv)],
            env={**self.env, **env},
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            cwd=self.tmp,
            timeout=240,
        )

    def ok(self, *argv: str | os.PathLike[str], **env: str) -> str:
        """Run the CLI, insist on exit 0 and no error or traceback on stderr, return stdout."""
        res = self.kloset(*argv, **env)
        assert res.returncode == 0, f"kloset {argv} -> {res.returncode}\n{res.stderr}"
        assert "error" not in res.stderr.lower() and "Traceback" not in res.stderr, res.stderr
        return res.stdout

    def rclone(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Debian's rclone, unchanged, with this test's config.

        ``--no-unicode-normalization``: by default rclone matches names after NFC
        normalisation, so it would upload only one of two names that differ only in their
        Unicode form and then call the pair "no differences" - exactly what the tree tests.
        """
        cmd = [
            RCLONE,
            "--config",
            str(self.rclone_conf),
            "--cache-dir",
            str(self.tmp / "rc"),
            "--no-unicode-normalization",
        ]
        res = subprocess.run(
            [*cmd, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and res.returncode != 0:
            raise AssertionError(f"rclone {args} -> {res.returncode}\n{res.stderr}")
        return res

    # -- remotes ----------------------------------------------------------------------------

    def add_rclone_remote(self, name: str, password: str | None = None, **extra: str) -> None:
        """Append an rclone Koofr remote for the emulator, obscured by rclone itself;
        ``extra`` adds options such as ``mountid`` or ``setmtime``."""
        obscured = self.rclone("obscure", password or self.emu.password).stdout.strip()
        options = "".join(f"{k} = {v}\n" for k, v in extra.items())
        with self.rclone_conf.open("a", encoding="utf-8") as fh:
            fh.write(
                f"[{name}]\ntype = koofr\nprovider = other\nendpoint = {self.emu.url}\n"
                f"user = {self.emu.user}\npassword = {obscured}\n{options}\n"
            )

    def import_remote(self, role: str, name: str, via: str = "show", alias: str = "") -> None:
        """``rclone config show|dump | kloset ROLE import --name NAME [--as ALIAS]``."""
        text = self.rclone("config", via).stdout
        argv = [role, "import", "--name", name, *(["--as", alias] if alias else [])]
        res = self.kloset(*argv, input=text.encode())
        assert res.returncode == 0, res.stderr
        assert f"@{alias or name}" in res.stdout

    # -- looking at Koofr -------------------------------------------------------------------

    def lsjson(self, remote_path: str) -> dict[str, dict[str, Any]]:
        """``rclone lsjson -R --hash`` of a Koofr folder: files only, by relative path."""
        out = self.rclone("lsjson", "-R", "--hash", "--files-only", remote_path).stdout
        return {e["Path"]: e for e in json.loads(out)}


@contextlib.contextmanager
def make_world(tmp_path: Path, **emulator: Any) -> Iterator[KoofrWorld]:
    """A running emulator (seeded fault RNG; ``emulator`` options such as ``mounts=``) plus
    isolated kloset and rclone settings."""
    emu = KoofrEmulator(tmp_path / "koofr", seed=FAULT_SEED, **emulator)
    emu.start()
    downloads = DownloadLog()
    downloads.install(emu)
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "KLOSET_CONFIG_DIR": str(tmp_path / "kloset-config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "KLOSET_PASSPHRASE": PASSPHRASE,
        "RCLONE_CONFIG": str(conf),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        **FAST_RETRY_ENV,
    }
    for var in ("KLOSET_DEBUG", "KLOSET_SPOOL", "KLOSET_CACHE_DIR", "KLOSET_PASSPHRASE_FILE"):
        env.pop(var, None)
    try:
        yield KoofrWorld(emu, tmp_path, env, conf, downloads)
    finally:
        emu.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[KoofrWorld]:
    """A one-mount Koofr account with rclone and kloset pointed at it."""
    with make_world(tmp_path) as w:
        yield w


# -- trees ----------------------------------------------------------------------------------


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def local_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """``{relative path: (bytes, mtime in ms)}`` of every regular file below ``root``."""
    out: dict[str, tuple[bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            out[rel] = (path.read_bytes(), path.stat().st_mtime_ns // 1_000_000)
    return out


def assert_same_files(expected: Path, actual: Path) -> None:
    """Same set of files, same bytes, same mtime to the millisecond."""
    want, got = local_files(expected), local_files(actual)
    assert sorted(got) == sorted(want)
    for rel, (data, mtime_ms) in want.items():
        assert got[rel][0] == data, f"{rel}: content differs"
        assert got[rel][1] == mtime_ms, f"{rel}: mtime {got[rel][1]} != {mtime_ms}"


def one_error_line(stderr: str) -> str:
    """The single non-empty stderr line of a failed command (no traceback, no noise)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]
