"""How to drive each backup program: kloset, restic and borg, with defaults and encryption on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import first_line

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
PASSPHRASE = "bench-passphrase-not-secret"


@dataclass
class ToolEnv:
    """Where one tool's run keeps its repository, caches and temp files."""

    base: Path
    repo: Path
    cache: Path
    tmp: Path
    log: Path


class Tool:
    """How to drive one backup program. Commands run from `cwd` with `env`."""

    name = ""

    def available(self) -> bool:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = dict(os.environ)
        env["TMPDIR"] = str(te.tmp)
        env["LC_ALL"] = "C.UTF-8"
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        raise NotImplementedError

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        raise NotImplementedError

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        raise NotImplementedError

    def notes(self) -> str:
        return ""


class Restic(Tool):
    """restic: default repository v2 (zstd `auto`), AES-256 + Poly1305, scrypt KDF."""

    name = "restic"
    exe = "restic"

    def available(self) -> bool:
        return shutil.which(self.exe) is not None

    def version(self) -> str:
        return first_line([self.exe, "version"])

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = super().env(te)
        env.update(RESTIC_PASSWORD=PASSPHRASE, RESTIC_CACHE_DIR=str(te.cache))
        env.pop("RESTIC_REPOSITORY", None)
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        return [self.exe, "-r", str(te.repo), "init"]

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        # "." from inside the tree: the snapshot holds the tree's content at its root.
        return [
            self.exe,
            "-r",
            str(te.repo),
            "backup",
            ".",
            "--host",
            "bench",
            "--tag",
            label,
        ], tree

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        return [self.exe, "-r", str(te.repo), "restore", "latest", "--target", str(target)], te.base


class Borg(Tool):
    """borg 1.2: `repokey-blake2` (AES-256-CTR + keyed BLAKE2b), default lz4 compression."""

    name = "borg"
    exe = "borg"

    def available(self) -> bool:
        return shutil.which(self.exe) is not None

    def version(self) -> str:
        return first_line([self.exe, "--version"])

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = super().env(te)
        env.update(
            BORG_PASSPHRASE=PASSPHRASE,
            BORG_BASE_DIR=str(te.cache),
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="no",
        )
        return env

    def init_cmd(self, te: ToolEnv) -> list[str]:
        return [self.exe, "init", "--encryption=repokey-blake2", str(te.repo)]

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        return [self.exe, "create", f"{te.repo}::{label}", "."], tree

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        # borg extracts into the current directory.
        return [self.exe, "extract", f"{te.repo}::{label}"], target


def python_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a Python program measured as users run it: with its bytecode cached.

    An installed package has its `.pyc` files (pip compiles them); a shell that sets
    PYTHONDONTWRITEBYTECODE would make every measured start compile kloset's sources anew
    (a second or more on a busy machine). The first run writes the cache; `warm_up` pays it.
    """
    env = dict(env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_bytecode() -> None:
    """Write the `.pyc` files of this checkout's packages, as `pip install` does for a wheel,
    so no measured command pays for compiling (the first run after an edit would)."""
    pkgs = [str(REPO_ROOT / p) for p in ("kloset", "koofrfs", "koofr_emulator")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *pkgs],
        check=True,
        env=python_env(dict(os.environ)),
    )


class Kloset(Tool):
    """kloset: the real CLI when it has the verbs, else the engine driver (flagged in reports)."""

    name = "kloset"

    def __init__(self, driver: str = "auto", kdf_memory_kib: int | None = None) -> None:
        self.kdf_memory_kib = kdf_memory_kib
        compile_bytecode()
        self.exe = shutil.which("kloset") or ""
        if driver == "auto":
            driver = "cli" if self._cli_ready() else "engine"
        self.driver = driver
        if driver == "cli":
            if not self.exe:
                raise SystemExit("kloset CLI not on PATH (pip install -e .)")
            self.prefix = [self.exe]
        else:
            self.prefix = [sys.executable, str(HERE / "kloset_driver.py")]

    def _cli_ready(self) -> bool:
        if not self.exe:
            return False
        for verb in ("create", "backup", "restore"):
            res = subprocess.run(
                [self.exe, "at", "/nonexistent-kloset-probe", verb, "--help"],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                return False
        return True

    def available(self) -> bool:
        return True

    def version(self) -> str:
        try:
            from importlib.metadata import version

            ver = version("prefect-kloset")
        except Exception:  # noqa: BLE001 - not installed: still benchmarkable from the tree
            ver = "?"
        rev = first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(REPO_ROOT),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "kloset",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        via = "CLI" if self.driver == "cli" else "engine driver (CLI verbs missing)"
        return f"kloset {ver} (git {rev}{'+dirty' if dirty else ''}), via {via}"

    def env(self, te: ToolEnv) -> dict[str, str]:
        env = super().env(te)
        env.update(
            KLOSET_PASSPHRASE=PASSPHRASE,
            XDG_CACHE_HOME=str(te.cache),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        return python_env(env)

    def init_cmd(self, te: ToolEnv) -> list[str]:
        cmd = [*self.prefix, "at", str(te.repo), "create"]
        if self.kdf_memory_kib:
            cmd += ["--kdf-memory-kib", str(self.kdf_memory_kib)]
        return cmd

    def backup_cmd(self, te: ToolEnv, tree: Path, label: str) -> tuple[list[str], Path]:
        return [*self.prefix, "at", str(te.repo), "backup", str(tree)], te.base

    def restore_cmd(self, te: ToolEnv, target: Path, label: str) -> tuple[list[str], Path]:
        return [*self.prefix, "at", str(te.repo), "restore", "-to", str(target), "latest"], te.base

    def notes(self) -> str:
        return "" if self.driver == "cli" else "kloset ran through bench/kloset_driver.py"
