"""The README's main-job command, `./demo`, run as users run it (in a scratch directory)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_backs_up_lists_restores_and_verifies(tmp_path: Path) -> None:
    # The script works in its own directory; a copy keeps ./backup and ./.demo out of the tree.
    shutil.copy(REPO / "demo", tmp_path / "demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KLOSET_PASS"))}
    done = subprocess.run(
        ["bash", str(tmp_path / "demo")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    assert "kloset-demo-passphrase" in out  # the demo passphrase is printed clearly
    assert "identical" in out and "kloset at ./backup ui" in out
    assert (tmp_path / "backup" / "CONFIG").is_file()
    assert (tmp_path / ".demo" / "prefect-home").is_dir()  # Prefect ran with the demo's home
    restored = sorted(p.name for p in (tmp_path / ".demo" / "restored").rglob("*") if p.is_file())
    assert len(restored) >= 10
