"""The small things tasks receive instead of opened objects, and how a task opens them.

A task gets a *store spec* — a `KlosetRepository` block (location + passphrase), which pickles
and validates like any Prefect parameter — and a *location* (a `KoofrStorage` block or a string).
It opens them itself, on whatever thread, process or Dask worker it runs on. Opening a store
costs an Argon2id derivation and an index load, so opened stores are reused per process, but
only within one flow run: a long-lived worker must never trust yesterday's index after a prune.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from blocks import KlosetRepository, KoofrStorage
from blocks import locations as block_locations
from kloset.errors import StoreNotFound
from kloset.gcpause import fewer_collections
from kloset.locks import store_lock
from kloset.repository import Repository

StoreParam = KlosetRepository | str
LocationParam = KoofrStorage | str

_F = TypeVar("_F", bound=Callable[..., Any])
_MAX_OPEN = 4
_repos: OrderedDict[tuple[str, str], Repository] = OrderedDict()
_repos_lock = threading.Lock()


def bulk(fn: _F) -> _F:
    """Run a task body with fewer garbage collections (`kloset.gcpause`), as the CLI does: the
    engine builds millions of small objects and default GC thresholds rescan them all the time
    (a flow's commit took 1.3 s instead of 0.4 s)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with fewer_collections():
            return fn(*args, **kwargs)

    return cast(_F, wrapper)


def store_spec(store: StoreParam) -> KlosetRepository:
    """A `KlosetRepository` for a block or a plain location (passphrase from the worker env)."""
    if isinstance(store, KlosetRepository):
        return store
    if isinstance(store, KoofrStorage):
        return KlosetRepository(location=store)
    return KlosetRepository(location=str(store))


def _run_id() -> str:
    """The current flow run's id: the scope within which an opened store may be reused."""
    try:
        from prefect.context import FlowRunContext, TaskRunContext

        task_ctx = TaskRunContext.get()
        if task_ctx is not None and task_ctx.task_run.flow_run_id is not None:
            return str(task_ctx.task_run.flow_run_id)
        flow_ctx = FlowRunContext.get()
        if flow_ctx is not None and flow_ctx.flow_run is not None:
            return str(flow_ctx.flow_run.id)
    except Exception:  # noqa: BLE001 - outside Prefect there is no run
        pass
    return ""


def open_repo(store: KlosetRepository, *, refresh: bool = False) -> Repository:
    """The store opened for this flow run in this process; `refresh` merges new index files.

    Every task calls this first. The first call per run and process pays the key derivation
    and the index load; later ones are a dict lookup (plus, with `refresh`, one listing).
    """
    run = _run_id()
    if not run:
        return store.open_repository()  # no run to scope a reuse to: never reuse
    key = (run, store.cache_key())
    with _repos_lock:
        repo = _repos.get(key)
        if repo is not None:
            _repos.move_to_end(key)
    if repo is not None:
        if refresh:
            repo.refresh_index()
        return repo
    repo = store.open_repository()
    with _repos_lock:
        repo = _repos.setdefault(key, repo)
        while len(_repos) > _MAX_OPEN:
            _repos.popitem(last=False)
    return repo


def forget_run() -> None:
    """Drop this flow run's opened stores (the flow calls it when it ends)."""
    run = _run_id()
    with _repos_lock:
        for key in [k for k in _repos if k[0] == run]:
            del _repos[key]


def open_or_create(store: KlosetRepository, create: bool) -> Repository:
    """Open the store; with `create`, a missing one is created first (a first run). Without
    it, StoreNotFound goes up with its one-line fix."""
    try:
        return open_repo(store)
    except StoreNotFound:
        if not create:
            raise
        store.create_repository()
        return open_repo(store)


@contextmanager
def store_session(
    store: KlosetRepository,
    operation: str,
    *,
    exclusive: bool = False,
    create: bool = False,
    required: bool = True,
) -> Iterator[Repository]:
    """Open (or, with `create`, first create) the store and hold a lock for a whole flow run.

    The flow holds the lock, not the tasks: tasks come and go on many workers, the lock must
    cover the run from its first read to its last write (a prune waits for it). `required`
    False lets restores and checks read a store they cannot write a lock into.
    """
    repo = open_or_create(store, create)
    try:
        with store_lock(repo, exclusive, operation, required=required):
            yield repo
    finally:
        forget_run()


def backup_spool_root(repo: Repository, spool_dir: str | None) -> str:
    """Where a backup's run directory goes: `spool_dir`, else the engine's default.

    The default is inside a local store (uploading is then a rename) or ``KLOSET_SPOOL`` /
    ``~/.cache/kloset/spool`` for remote stores. Workers on several machines need a directory
    they all see (pass `spool_dir`), because `upload` reads what `chunk` sealed.
    """
    if spool_dir:
        os.makedirs(spool_dir, exist_ok=True)
        return spool_dir
    from kloset.repository import default_spool_dir

    return default_spool_dir(repo.storage)


def restore_spool_root(spool_dir: str | None) -> str:
    """Where a restore keeps its plan: `spool_dir`, ``KLOSET_SPOOL`` or the temp directory."""
    root = spool_dir or os.environ.get("KLOSET_SPOOL") or tempfile.gettempdir()
    os.makedirs(root, exist_ok=True)
    return root


def koofr_tags(*values: KlosetRepository | LocationParam) -> set[str]:
    """``{"koofr"}`` when any of the values talks to Koofr, so a Prefect tag concurrency limit
    (``prefect concurrency-limit create koofr 4``) caps how many tasks hit the API at once."""
    return {"koofr"} if any(_touches(v) for v in values) else set()


def _touches(value: KlosetRepository | LocationParam) -> bool:
    if isinstance(value, KlosetRepository):
        return value.touches_koofr()
    return block_locations.touches_koofr(value)
