"""Prefect events of the Kloset flows: what automations, triggers and the Event Feed react to.

* ``kloset.backup.completed`` / ``kloset.backup.failed``: resource ``kloset.backup.<job>``,
  related store and source; payload counts, snapshot id, and for a failure message and fix.
* ``kloset.snapshot.created``: ``kloset.snapshot.<id>``, related store and source.
* ``kloset.check.failed``: ``kloset.store.<store id>``; damaged packs, errors, paths.
* ``kloset.prune.completed``: ``kloset.store.<store id>``; snapshots removed, bytes reclaimed.
* ``kloset.restore.completed``: ``kloset.snapshot.<id>``, related store and target.

Resource ids are stable across runs, so a trigger can name one store, source or backup job:
a store is its ``store_id`` (read from its plaintext CONFIG, no passphrase needed), a source
or target a hash of its location label, a backup job a hash of both labels. Prefect adds the
flow run, flow, deployment and work pool of the emitting run as related resources itself.
Emitting never fails a run: an event is a notification, not part of the backup.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from prefect import get_run_logger
from prefect.events import emit_event

from blocks import KlosetRepository
from kloset_tasks.failures import fix_for

BACKUP_COMPLETED = "kloset.backup.completed"
BACKUP_FAILED = "kloset.backup.failed"
SNAPSHOT_CREATED = "kloset.snapshot.created"
CHECK_FAILED = "kloset.check.failed"
PRUNE_COMPLETED = "kloset.prune.completed"
RESTORE_COMPLETED = "kloset.restore.completed"
STAT_KEYS = ("files", "bytes", "bytes_read", "bytes_added", "files_read", "chunks_new")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


def store_id(store: KlosetRepository) -> str | None:
    """The store's id from its CONFIG (plaintext), or None if it cannot be read."""
    try:
        from kloset.config import CONFIG_NAME, StoreConfig

        return StoreConfig.from_bytes(store.get_storage().read(CONFIG_NAME)).store_id
    except Exception:  # noqa: BLE001 - no store yet, or unreachable: fall back to the label
        return None


def store_resource(store: KlosetRepository, known_id: str | None = None) -> dict[str, str]:
    """``kloset.store.<store id>`` (``kloset.store.at-<hash>`` while there is no store)."""
    label = store.location_label()
    sid = known_id or store_id(store)
    return {
        "prefect.resource.id": f"kloset.store.{sid}"
        if sid
        else f"kloset.store.at-{_digest(label)}",
        "prefect.resource.name": label,
        "kloset.location": label,
    }


def location_resource(label: str, role: str) -> dict[str, str]:
    """A source or a restore target: ``kloset.<role>.<hash of its label>``."""
    return {
        "prefect.resource.id": f"kloset.{role}.{_digest(label)}",
        "prefect.resource.role": role,
        "prefect.resource.name": label,
        "kloset.location": label,
    }


def _related_store(resource: dict[str, str]) -> dict[str, str]:
    return {**resource, "prefect.resource.role": "store"}


def emit(
    event: str,
    resource: dict[str, str],
    related: list[dict[str, str]] | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """`emit_event`, logged and never raised (a lost event must not fail a backup)."""
    try:
        emit_event(event=event, resource=resource, related=related or [], payload=payload or {})
    except Exception as exc:  # noqa: BLE001 - see module docstring
        with contextlib.suppress(Exception):  # outside a run there is no logger either
            get_run_logger().warning("cannot emit %s: %s", event, exc)


def _message(problem: BaseException | str) -> tuple[str, str | None]:
    if isinstance(problem, BaseException):
        lines = str(problem).strip().splitlines()
        return f"{type(problem).__name__}: {lines[0] if lines else ''}", fix_for(problem)
    return str(problem), None


class BackupEvents:
    """The events of one backup run; the flow calls one method per outcome."""

    def __init__(self, store: KlosetRepository, source_label: str) -> None:
        self.store = store
        self.source_label = source_label
        self._store: dict[str, str] | None = None

    def _related(self) -> list[dict[str, str]]:
        if self._store is None or self._store["prefect.resource.id"].startswith("kloset.store.at-"):
            self._store = store_resource(self.store)
        return [_related_store(self._store), location_resource(self.source_label, "source")]

    def _job(self) -> dict[str, str]:
        store_label = self.store.location_label()
        return {
            "prefect.resource.id": f"kloset.backup.{_digest(store_label, self.source_label)}",
            "prefect.resource.name": f"{self.source_label} → {store_label}",
        }

    def _payload(self, snapshot_id: str | None, stats: dict[str, Any], errors: int) -> dict:
        return {
            "snapshot_id": snapshot_id,
            "source": self.source_label,
            "store": self.store.location_label(),
            **{key: int(stats.get(key, 0)) for key in STAT_KEYS},
            "errors": errors,
        }

    @staticmethod
    def committed(commit: Any) -> tuple[str | None, dict[str, Any], int]:
        """(snapshot id, stats, errors) of a `CommitResult`, or of none yet."""
        if commit is None:
            return None, {}, 0
        return commit.snapshot_id, dict(commit.stats), len(commit.errors)

    def snapshot_created(self, snapshot_id: str | None, stats: dict[str, Any], errors: int) -> None:
        """The snapshot header is written: verify and off-site sync can start from here."""
        if snapshot_id is None:
            return
        emit(
            SNAPSHOT_CREATED,
            {"prefect.resource.id": f"kloset.snapshot.{snapshot_id}",
             "prefect.resource.name": snapshot_id[:12]},
            self._related(),
            self._payload(snapshot_id, stats, errors),
        )  # fmt: skip

    def completed(
        self, snapshot_id: str | None, stats: dict[str, Any], errors: int, *, verified: bool
    ) -> None:
        """The run did its whole job."""
        payload = {**self._payload(snapshot_id, stats, errors), "verified": verified}
        emit(BACKUP_COMPLETED, self._job(), self._related(), payload)

    def failed(
        self,
        problem: BaseException | str,
        snapshot_id: str | None = None,
        stats: dict[str, Any] | None = None,
        errors: int = 0,
    ) -> None:
        """The run failed; a snapshot may still exist (committed without some paths)."""
        message, fix = _message(problem)
        payload = {**self._payload(snapshot_id, stats or {}, errors), "message": message}
        if fix:
            payload["fix"] = fix
        emit(BACKUP_FAILED, self._job(), self._related(), payload)


def check_failed(store: KlosetRepository, report: dict[str, Any] | None, problem: Any) -> None:
    """`kloset.check.failed`: damage found (`report`), or the check could not run (`problem`)."""
    message, fix = _message(problem) if problem is not None else ("store is damaged", None)
    payload: dict[str, Any] = {"store": store.location_label(), "message": message}
    if fix:
        payload["fix"] = fix
    if report is not None:
        affected = report.get("affected", {})
        payload.update(
            damaged_packs=len(report.get("damaged_packs", [])),
            errors=len(report.get("errors", [])),
            snapshots_affected=len(affected),
            paths_affected=sum(len(p) for p in affected.values()),
            first_paths=[p for paths in affected.values() for p in paths][:10],
        )
    emit(CHECK_FAILED, store_resource(store), payload=payload)


def prune_completed(store: KlosetRepository, report: dict[str, Any], dry_run: bool) -> None:
    """`kloset.prune.completed`, with what was (or, for a dry run, would be) removed."""
    emit(
        PRUNE_COMPLETED,
        store_resource(store),
        payload={
            "store": store.location_label(),
            "dry_run": dry_run,
            "snapshots_removed": len(report.get("removed", [])),
            "snapshots_kept": len(report.get("kept", [])),
            "packs_deleted": int(report.get("packs_deleted", 0)),
            "bytes_reclaimed": int(report.get("bytes_reclaimed", 0)),
        },
    )


def restore_completed(
    store: KlosetRepository, snapshot_id: str, target_label: str, counts: dict[str, Any]
) -> None:
    """`kloset.restore.completed` for the snapshot that was restored into `target_label`."""
    emit(
        RESTORE_COMPLETED,
        {"prefect.resource.id": f"kloset.snapshot.{snapshot_id}",
         "prefect.resource.name": snapshot_id[:12]},
        [_related_store(store_resource(store)), location_resource(target_label, "target")],
        {"store": store.location_label(), "target": target_label, **counts},
    )  # fmt: skip
