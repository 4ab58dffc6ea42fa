"""`--json` on long runs (backup, restore): restic's JSON lines, so wrappers and monitoring
can follow a run as it goes.

stdout gets one `{"message_type": "status", …}` line about once a second while the run lasts
(and one with the final counts), then a `{"message_type": "summary", …}` line; per-file problems are
`{"message_type": "error", "error": {"message": …}, "during": …, "item": PATH}` lines on
stderr. The counters are the progress bar's (`ProgressReporter`, fed by the same engine
events), only printed instead of drawn. The field names of each verb's lines live here, so
backup and restore speak one dialect.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from kloset.cli.output import json_line
from kloset.cli.progress import ProgressReporter

INTERVAL = 1.0


class JsonStatus(ProgressReporter):
    """A progress callback that prints status lines from a ticker thread while in use."""

    def __init__(
        self,
        kind: str,
        fields: Callable[[JsonStatus], dict[str, Any]],
        *,
        interval: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(kind, enabled=False)
        self.fields = fields
        self.interval = INTERVAL if interval is None else interval
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._print_lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def percent_done(self) -> float:
        """Bytes done over bytes planned, 0..1 (restic's `percent_done`)."""
        if not self.bytes_total:
            return 0.0
        return round(min(1.0, self.bytes_done / self.bytes_total), 4)

    def __enter__(self) -> JsonStatus:
        self.started = time.monotonic()
        self._ticker = threading.Thread(target=self._tick, name="kloset-json", daemon=True)
        self._ticker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if exc_type is None:
            self.status()  # the final counts, so even a run under a second reports one

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.status()

    def status(self) -> None:
        with self._lock:
            doc = {"message_type": "status", "seconds_elapsed": int(self.elapsed)}
            doc.update(self.fields(self))
        self.emit(doc)

    def emit(self, doc: dict[str, Any]) -> None:
        """One JSON line on the status stream (the summary goes through here too)."""
        with self._print_lock:
            self.stream.write(json_line(doc) + "\n")
            self.stream.flush()

    def error(self, item: str, message: str, during: str) -> None:
        with self._print_lock:
            doc = {"message_type": "error", "error": {"message": message}, "during": during}
            sys.stderr.write(json_line({**doc, "item": item}) + "\n")
            sys.stderr.flush()


def restore_status(bar: JsonStatus) -> dict[str, Any]:
    """restic's restore status fields, from the progress counters."""
    return {
        "percent_done": bar.percent_done(),
        "total_files": bar.files_total or 0,
        "files_restored": bar.files_done - bar.files_skipped,
        "files_skipped": bar.files_skipped,
        "files_deleted": bar.files_deleted,
        "total_bytes": bar.bytes_total or 0,
        "bytes_restored": bar.bytes_done - bar.bytes_skipped,
        "bytes_skipped": bar.bytes_skipped,
    }


def backup_status(bar: JsonStatus) -> dict[str, Any]:
    """restic's backup status fields. Like restic's, the totals cover the whole source and
    files unchanged since the parent snapshot count as done (they need no reading)."""
    plan = bar.plan
    files_total = int(getattr(plan, "files", 0))
    bytes_total = int(getattr(plan, "bytes_total", 0))
    unchanged_bytes = bytes_total - int(getattr(plan, "bytes_to_read", 0))
    files_done = int(getattr(plan, "files_reused", 0)) + bar.files_done
    bytes_done = unchanged_bytes + bar.bytes_done
    doc: dict[str, Any] = {
        "percent_done": round(min(1.0, bytes_done / bytes_total), 4) if bytes_total else 0.0,
        "total_files": files_total,
        "files_done": min(files_done, files_total),
        "total_bytes": bytes_total,
        "bytes_done": min(bytes_done, bytes_total),
        "error_count": int(getattr(plan, "errors", 0)) + bar.errors,
    }
    rate = bar.bytes_done / bar.elapsed if bar.elapsed > 0 else 0.0
    if plan is not None and rate > 0:
        doc["seconds_remaining"] = int(max(0, bytes_total - bytes_done) / rate)
    return doc
