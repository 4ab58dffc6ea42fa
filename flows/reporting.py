"""What a flow shows in the Prefect UI: a progress bar, a summary, a table of failed paths.

Summaries and failure tables use artifact keys (one per flow kind and deployment), so the
Artifacts page keeps their history: a failed archive is one click from its list of paths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

MAX_TABLE_ROWS = 5000
MAX_MESSAGE_PATHS = 10


class KlosetFlowError(RuntimeError):
    """A flow could not do its whole job; the message names the failing paths."""


def artifact_key(kind: str, suffix: str) -> str:
    """``kloset-<kind>[-<deployment>]-<suffix>``, in the charset artifact keys allow."""
    try:
        from prefect.runtime import deployment

        name = deployment.name or ""
    except Exception:  # noqa: BLE001 - outside a deployment there is no name
        name = ""
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    parts = ["kloset", kind, slug, suffix] if slug else ["kloset", kind, suffix]
    return "-".join(parts)


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class Progress:
    """A progress artifact updated at most every `interval` seconds (each update is an API
    call; a per-batch update is plenty and stays far below the server's write rate)."""

    def __init__(self, description: str, interval: float = 2.0) -> None:
        self.description = description
        self.interval = interval
        self._last = 0.0
        self._value = 0.0
        self.id: UUID | None = None
        try:
            self.id = create_progress_artifact(progress=0.0, description=description)
        except Exception as exc:  # noqa: BLE001 - a UI nicety must never fail a backup
            get_run_logger().warning("cannot create progress artifact: %s", exc)

    def update(self, fraction: float, *, force: bool = False) -> None:
        """Set progress to `fraction` (0..1)."""
        self._value = max(0.0, min(1.0, fraction)) * 100
        now = time.monotonic()
        if self.id is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        try:
            update_progress_artifact(self.id, progress=round(self._value, 2))
        except Exception as exc:  # noqa: BLE001 - see __init__
            get_run_logger().warning("cannot update progress artifact: %s", exc)

    def finish(self) -> None:
        """Show the last value (100% after a complete run)."""
        self.update(self._value / 100, force=True)


def markdown_summary(title: str, rows: Sequence[tuple[str, Any]], notes: Iterable[str] = ()) -> str:
    """A two-column markdown table under a heading, with free-text notes after it."""
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    for key, value in rows:
        text = str(value).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| **{key}** | {text} |")
    extra = [n for n in notes if n]
    if extra:
        lines += ["", *extra]
    return "\n".join(lines) + "\n"


def publish(
    kind: str,
    title: str,
    rows: Sequence[tuple[str, Any]],
    failures: Sequence[tuple[str, str]],
    notes: Iterable[str] = (),
    description: str | None = None,
    attempt: int = 1,
) -> None:
    """Create the summary (markdown) and failed-paths (table) artifacts of one run.

    The table is created even when empty, so the latest version under its key always
    describes the latest run. From the second `attempt` of a flow run on (a Retry), both
    cards say which attempt they describe: one run's Artifacts tab shows every attempt's.
    """
    label = f" (attempt {attempt})" if attempt > 1 else ""
    logger = get_run_logger()
    try:
        create_markdown_artifact(
            markdown_summary(title, rows, notes),
            key=artifact_key(kind, "summary"),
            description=(description or title) + label,
        )
        table = [{"path": p, "error": m} for p, m in failures[:MAX_TABLE_ROWS]]
        create_table_artifact(
            table,
            key=artifact_key(kind, "failures"),
            description=f"{len(failures)} failed path(s)"
            + (f", first {MAX_TABLE_ROWS} shown" if len(failures) > MAX_TABLE_ROWS else "")
            + label,
        )
    except Exception as exc:  # noqa: BLE001 - reporting must not hide the run's real outcome
        logger.warning("cannot create summary artifacts: %s", exc)


def with_fix(exc: BaseException) -> BaseException:
    """`exc` itself, or a `KlosetFlowError` saying in one line what to fix (chained to it),
    so a failed run's message in the UI tells the user what to change."""
    from kloset_tasks.failures import explain, fix_for

    if not isinstance(exc, Exception) or isinstance(exc, KlosetFlowError) or not fix_for(exc):
        return exc
    fixed = KlosetFlowError(explain(exc))
    fixed.__cause__ = exc
    return fixed


def failure_message(what: str, failures: Sequence[tuple[str, str]]) -> str:
    """One message naming the first failing paths and how many there are in total."""
    shown = "; ".join(f"{p}: {m}" for p, m in failures[:MAX_MESSAGE_PATHS])
    more = len(failures) - MAX_MESSAGE_PATHS
    tail = f" (+{more} more, see the failures artifact)" if more > 0 else ""
    return f"{what}: {len(failures)} path(s) failed: {shown}{tail}"


def dedup_ratio(logical: int, added: int) -> str:
    """How many bytes of source each stored byte stands for ('∞' when nothing was added)."""
    if logical <= 0:
        return "n/a"
    if added <= 0:
        return "∞ (nothing new stored)"
    return f"{logical / added:.2f}x"
