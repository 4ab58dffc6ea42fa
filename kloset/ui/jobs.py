"""Restore from the page: the configured targets, and restores as background jobs with progress.

The browser may only name a target the operator configured on the command line (by its id) and
an optional sub-folder, which is checked component by component so it can never leave the
target — not with `..`, not through a symlink already inside a local target. The restore itself
is the engine's (`kloset.restore.run_restore`) with its safe destinations.
"""

from __future__ import annotations

import itertools
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kloset.destination import safe_parts
from kloset.errors import KlosetError, LocationError, UnsafePath
from kloset.locations import open_destination
from kloset.repository import Repository
from kloset.restore import run_restore
from kloset.snapshot import SnapshotHeader
from kloset.vfs import normalize

MAX_JOB_ERRORS = 200
KEEP_FINISHED = 100


@dataclass(frozen=True)
class RestoreTarget:
    """One place the operator allowed restores to: a local folder or a remote `@NAME[:/sub]`."""

    id: str
    label: str
    location: str

    @property
    def local(self) -> bool:
        return not self.location.startswith("@") and "://" not in self.location

    def doc(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "local": self.local}


def parse_targets(specs: list[str]) -> list[RestoreTarget]:
    """`--restore-target` values: local paths become absolute; `@NAME` must be well formed."""
    from kloset.remotes import parse_at_location

    out: list[RestoreTarget] = []
    for i, spec in enumerate(specs):
        spec = spec.strip()
        if not spec:
            raise LocationError("empty --restore-target")
        if spec.startswith("@"):
            if parse_at_location(spec) is None:
                raise LocationError(
                    f"bad restore target '{spec}' (use @NAME, @NAME:/path or @NAME/MOUNT:/path)"
                )
            location = spec
        elif "://" in spec:
            location = spec
        else:
            location = os.path.abspath(os.path.expanduser(spec))
            if os.path.exists(location) and not os.path.isdir(location):
                raise LocationError(f"restore target {spec} is not a directory")
        label = location if location != spec and not spec.startswith("@") else spec
        out.append(RestoreTarget(f"t{i}", label, location))
    return out


def _check_local_subdir(root: str, parts: list[str]) -> str:
    """The local folder for `parts` under `root`, refusing any existing component that is a
    symlink or not a directory (so a link inside the target cannot redirect the restore)."""
    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"{part!r} inside the restore target is not a plain directory")
    return path


def target_location(target: RestoreTarget, subdir: str) -> str:
    """Location string for run_restore: the target plus a checked sub-folder."""
    if any(p == ".." for p in subdir.replace("\\", "/").split("/")):
        raise UnsafePath("the sub-folder may not contain '..'")
    parts = safe_parts(normalize(subdir).lstrip("/"))
    if not parts:
        return target.location
    if target.local:
        return _check_local_subdir(target.location, parts)
    if target.location.startswith("@"):
        name, _, base = target.location.partition(":")
        return f"{name}:/" + "/".join([p for p in base.split("/") if p] + parts)
    return target.location.rstrip("/") + "/" + "/".join(parts)


@dataclass
class Job:
    """A restore running (or finished) in the background; its doc is what the page polls."""

    id: str
    snapshot: str
    path: str
    target: str
    location: str
    state: str = "queued"  # queued, planning, running, done, failed
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    files_written: int = 0
    files_skipped: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    errors_total: int = 0
    message: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "snapshot": self.snapshot,
            "path": self.path,
            "target": self.target,
            "destination": self.location,
            "state": self.state,
            "files_total": self.files_total,
            "bytes_total": self.bytes_total,
            "files_done": self.files_done,
            "bytes_done": self.bytes_done,
            "files_written": self.files_written,
            "files_skipped": self.files_skipped,
            "errors": [{"path": p, "error": m} for p, m in self.errors],
            "errors_total": self.errors_total,
            "message": self.message,
            "started": self.started,
            "finished": self.finished,
        }


class JobManager:
    """Runs restores two at a time on background threads, keeping recent ones for polling."""

    def __init__(self, repo: Repository, targets: list[RestoreTarget], workers: int = 2) -> None:
        self.repo = repo
        self.targets = {t.id: t for t in targets}
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="kloset-restore")

    def target(self, target_id: str) -> RestoreTarget:
        try:
            return self.targets[target_id]
        except KeyError:
            raise LocationError(f"unknown restore target '{target_id}'") from None

    def start(
        self,
        header: SnapshotHeader,
        path: str,
        target_id: str,
        subdir: str = "",
        overwrite: bool = False,
    ) -> Job:
        """Validate the request, then queue the restore; raises before queueing on bad input."""
        target = self.target(target_id)
        location = target_location(target, subdir)
        norm = normalize(path)
        job = Job(f"{next(self._ids)}", header.hex, norm, target.id, location)
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
        self._pool.submit(self._run, job, header, overwrite)
        return job

    def _run(self, job: Job, header: SnapshotHeader, overwrite: bool) -> None:
        lock = self._lock

        def progress(event: str, data: dict[str, Any]) -> None:
            with lock:
                if event == "planned":
                    plan = data["plan"]
                    job.files_total, job.bytes_total = plan.files, plan.bytes
                    job.state = "running"
                elif event == "file":
                    job.files_done += 1
                    job.bytes_done += int(data.get("bytes", 0))

        try:
            with lock:
                job.state = "planning"
            dest = open_destination(job.location)
            report = run_restore(
                self.repo, header, job.path, dest, overwrite=overwrite, progress=progress
            )
            with lock:
                job.files_written = report.files_written
                job.files_skipped = report.files_skipped
                job.errors_total = len(report.errors)
                job.errors = report.errors[:MAX_JOB_ERRORS]
                job.state = "done"
                job.message = (
                    f"restored {report.files_written} files to {job.location}"
                    + (f", {report.files_skipped} already there" if report.files_skipped else "")
                    + (f", {len(report.errors)} errors" if report.errors else "")
                )
        except KlosetError as exc:
            self._fail(job, str(exc))
        except Exception as exc:  # noqa: BLE001 - the page shows the reason; the server lives on
            self._fail(job, f"{type(exc).__name__}: {exc}")
        finally:
            with lock:
                job.finished = time.time()

    def _fail(self, job: Job, message: str) -> None:
        with self._lock:
            job.state = "failed"
            job.message = message

    def _trim(self) -> None:
        done = [j for j in self._jobs.values() if j.finished is not None]
        for j in sorted(done, key=lambda j: j.started)[: max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[j.id]

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.doc() if job is not None else None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [j.doc() for j in sorted(self._jobs.values(), key=lambda j: -j.started)]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
