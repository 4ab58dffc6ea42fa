"""Smoke test of `bench/run.py`: it runs end to end on a tiny corpus and verifies its restores.

Why: the benchmark is only run by hand on a big corpus, so a broken script would go unnoticed
until someone needs numbers. This proves the whole path (copy, change set, measure, restore,
verify, report) works on ~5 MB in a few seconds. It asserts nothing about speed.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "bench" / "run.py"


def _make_corpus(root: Path) -> None:
    """~5 MB of mixed files: compressible text, random bytes, empties, a link, an empty dir."""
    rng = random.Random(7)
    for d in range(8):
        sub = root / f"pkg{d}" / "mod"
        sub.mkdir(parents=True)
        for f in range(25):
            size = rng.choice((0, 50, 2_000, 30_000, 90_000))
            data = (b"def f(x):\n    return x\n" * (size // 24 + 1))[:size]
            if rng.random() < 0.4:
                data = rng.randbytes(size)
            (sub / f"m{f}.py").write_bytes(data)
    (root / "blob.bin").write_bytes(rng.randbytes(1_500_000))
    (root / "link").symlink_to("pkg0/mod/m1.py")
    (root / "empty-dir").mkdir()


@pytest.mark.slow
def test_bench_runs_on_small_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _make_corpus(corpus)
    tools = ["kloset"] + (["restic"] if shutil.which("restic") else [])
    out = tmp_path / "BENCH.md"
    out.write_text("# Bench\n\nhand-written intro stays\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--corpus",
            str(corpus),
            "--tools",
            ",".join(tools),
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
            "--kloset-kdf-memory-kib",
            "8192",
            "--quiet-cores",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    doc = out.read_text()
    assert "hand-written intro stays" in doc
    assert "| measure | " + " | ".join(tools) in doc
    assert "first backup: wall time (s)" in doc
    assert ": identical" in doc and "MISMATCH" not in doc
    if "restic" in tools:
        assert "kloset/restic" in doc
    # the corpus itself is never modified by the change set
    assert not list(corpus.rglob("bench-added-*"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("rclone") is None, reason="needs rclone")
def test_koofr_bench_runs_and_writes_its_section(tmp_path: Path) -> None:
    """`bench/koofr.py` end to end on 30 files without added latency: every command runs,
    the table has its three rows, and --out replaces only its own section."""
    out = tmp_path / "BENCH.md"
    out.write_text("# Bench\n\nhand-written intro stays\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for i in range(2):  # the second run replaces the section instead of adding another
        res = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "koofr.py"), "--files", "30", "--latency", "0",
             "--repeat", "1", "--work", str(tmp_path / f"work{i}"), "--out", str(out)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
    text = out.read_text()
    assert text.startswith("# Bench\n\nhand-written intro stays\n")
    assert text.count("BEGIN KOOFR RESULTS") == 1
    for row in ("| backup from Koofr |", "| unchanged re-run |", "| restore to Koofr |"):
        assert row in text
    assert "| unchanged re-run |" in text and " 0 / 0 |" in text  # no downloads the second time


@pytest.mark.slow
def test_scale_bench_runs_and_writes_its_section(tmp_path: Path) -> None:
    """`bench/scale.py` end to end on a 300-file tree and a store with 20,000 generated blobs:
    every operation runs and --out writes one table with both columns."""
    out = tmp_path / "BENCH.md"
    out.write_text("# Bench\n\nhand-written intro stays\n")
    res = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--files", "300", "--blobs", "20000",
         "--work", str(tmp_path / "work"), "--out", str(out), "--kloset-kdf-memory-kib", "64"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    text = out.read_text()
    assert text.startswith("# Bench\n\nhand-written intro stays\n")
    assert "| operation | 300 files | store of 20,000 blobs |" in text
    for op in ("first backup", "unchanged incremental", "ls of a snapshot", "restore one file"):
        assert f"| {op} |" in text
    assert not list((tmp_path / "work").glob("store-*"))  # stores are removed afterwards
