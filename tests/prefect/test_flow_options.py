"""The backup and restore options as flow parameters: the scan filters reach the engine's scan,
and the bandwidth limits are in force for every byte the flow's tasks move (and undone after)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pytest
from prefect.context import TaskRunContext
from pydantic import SecretStr

from blocks import KlosetRepository
from flows import backup_flow, restore_flow
from kloset import throttle
from kloset.vfs import SnapshotView
from tests.prefect.conftest import PASSPHRASE

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_flows_take_the_scan_filters_and_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = fsspec.filesystem("memory")
    src = f"/{tmp_path.name}-src"
    mem.pipe_file(f"{src}/keep/a.txt", b"a" * 100)
    mem.pipe_file(f"{src}/keep/big.bin", b"b" * 5000)
    mem.pipe_file(f"{src}/other/b.txt", b"b")
    # A memory:// store and source are remote to kloset: their bytes go through the buckets.
    store = KlosetRepository(
        location=f"memory://{tmp_path.name}-store", passphrase=SecretStr(PASSPHRASE)
    )
    # What the limits were at every byte a task moved (the flow's own small reads for its
    # reports, after the run, are not limited).
    seen: list[tuple[str, float | None, float | None]] = []
    for name, bucket in (("up", throttle.UPLOAD), ("down", throttle.DOWNLOAD)):

        def take(n: int, name: str = name) -> None:
            if TaskRunContext.get() is not None:
                seen.append((name, throttle.UPLOAD.rate, throttle.DOWNLOAD.rate))

        monkeypatch.setattr(bucket, "take", take)

    result: dict[str, Any] = backup_flow(
        f"memory://{src}",
        store,
        files_from=["keep"],
        exclude_larger_than="1K",
        one_file_system=False,
        create_store=True,
        verify_fraction=1.0,
        limit_upload=50_000,
        limit_download=60_000,
    )
    assert {n for n, _u, _d in seen} == {"up", "down"}
    assert {(u, d) for _n, u, d in seen} == {(50_000 * 1024, 60_000 * 1024)}
    assert throttle.UPLOAD.rate is None and throttle.DOWNLOAD.rate is None  # after the run
    repo = store.open_repository()
    view = SnapshotView(repo, repo.resolve_snapshot(result["snapshot_id"]))
    assert {p for p, _e in view.walk()} == {"/", "/keep", "/keep/a.txt"}

    seen.clear()
    out = tmp_path / "out"
    restored = restore_flow(store, str(out), limit_download=70_000)
    assert restored["files_written"] == 1 and (out / "keep" / "a.txt").read_bytes() == b"a" * 100
    assert seen and {(u, d) for _n, u, d in seen} == {(None, 70_000 * 1024)}
    assert throttle.DOWNLOAD.rate is None
