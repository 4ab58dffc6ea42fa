"""Progress bars for backup, restore and check, fed by the engine's `progress(event, data)`.

The engine knows nothing about terminals: it calls a callback. This module turns those calls
into one rich bar (bytes, files, speed, ETA) on stderr, and into nothing at all when stderr is
not a terminal, so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported only when a bar is drawn: it costs ~40 ms of start-up
    from rich.console import Console
    from rich.progress import Progress, TaskID


class ProgressReporter:
    """A callable `progress(event, data)` that draws a bar while used as a context manager.

    `kind` is "backup", "restore" or "check"; it picks the label and which events count.
    Engine callbacks may come from several threads at once (restore writes files in parallel),
    so the counters are guarded by a lock.
    """

    def __init__(self, kind: str, *, console: Console | None = None, enabled: bool | None = None):
        self.kind = kind
        if enabled is None:
            enabled = sys.stderr.isatty() if console is None else console.is_terminal
        self.enabled = enabled
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._lock = threading.Lock()
        self.bytes_done = 0
        self.bytes_total: int | None = None
        self.files_done = 0
        self.files_total: int | None = None
        self._files_from_batches = 0
        self.files_skipped = 0  # restore: files already there and identical
        self.bytes_skipped = 0
        self.files_deleted = 0  # restore --delete
        self.errors = 0  # backup: files a batch could not read
        self.plan: Any = None  # what the "planned" event said
        self.files_stored = 0  # backup: files of batches whose data is in the store
        from kloset import interrupts

        interrupts.set_status(self.interrupted_status)

    def interrupted_status(self) -> str:
        """What was done so far, for the one line an interrupt prints (kloset.interrupts)."""
        with self._lock:
            if self.kind == "backup":
                return f"{self.files_stored:,} files stored; run the same backup again to resume"
            if self.kind == "restore":
                return f"{self.files_done:,} files restored; run the same restore again to continue"
            if self.kind == "check":
                return f"{self.files_done:,} packs read; the store was not changed"
        return ""

    def __enter__(self) -> ProgressReporter:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TextColumn("{task.fields[files]}"),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console or Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.kind, total=None, files="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- the engine callback ---------------------------------------------------------------
    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            label = self._apply(event, data)
            self._draw(label)

    def _apply(self, event: str, data: dict[str, Any]) -> str | None:
        """Update counters from one event; returns a new label when the phase changes."""
        if event == "planned":
            plan = self.plan = data.get("plan")
            if self.kind == "backup":
                self.bytes_total = int(getattr(plan, "bytes_to_read", 0))
                self.files_total = int(getattr(plan, "files_to_read", 0))
            else:
                self.bytes_total = int(getattr(plan, "bytes", 0))
                self.files_total = int(getattr(plan, "files", 0))
                self.files_deleted = len(getattr(plan, "deleted", ()))
        elif event == "read":
            self.bytes_done += int(data.get("bytes", 0))
            self.files_done += int(data.get("files", 0))
        elif event == "batch":
            # Forked chunk workers only report bytes; their batch results carry the file count.
            res = data.get("result")
            self.files_stored += int(getattr(res, "files", 0))
            self._files_from_batches += int(getattr(res, "files", 0)) + len(
                getattr(res, "errors", []) or []
            )
            self.files_done = max(self.files_done, self._files_from_batches)
            self.errors += len(getattr(res, "errors", []) or [])
        elif event == "file":
            self.bytes_done += int(data.get("bytes", 0))
            self.files_done += 1
            if data.get("skipped"):
                self.files_skipped += 1
                self.bytes_skipped += int(data.get("bytes", 0))
        elif event == "committing":
            return "commit"
        elif event == "trees":
            return f"trees {int(data.get('trees', 0))}"
        elif event == "read_planned":
            self.bytes_total = int(data.get("bytes", 0))
            self.files_total = int(data.get("packs", 0))
            return "read data"
        elif event == "pack":
            self.bytes_done += int(data.get("bytes", 0))
            self.files_done += 1
        elif event == "blobs":
            self.files_done += int(data.get("blobs", 0))
        return None

    def _draw(self, label: str | None) -> None:
        if self._progress is None or self._task is None:
            return
        unit = "packs" if self.kind == "check" else "files"
        files = f"{self.files_done}/{self.files_total} {unit}" if self.files_total else ""
        fields: dict[str, Any] = {"completed": self.bytes_done, "files": files}
        if self.bytes_total is not None:
            fields["total"] = self.bytes_total
        if label is not None:
            fields["description"] = label
        self._progress.update(self._task, **fields)
