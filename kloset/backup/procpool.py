"""Chunk a batch in a worker process, for callers that run batches in threads.

Chunking a local source is CPU-bound, and the Python around FastCDC, BLAKE3, zstd and AES-GCM
holds the GIL: batches chunked in threads of one process (Prefect's thread task runner) run
little faster than one. The CLI forks its workers before it starts any thread; a process that
already runs threads (a Prefect flow) must not fork. `multiprocessing`'s spawn and forkserver
children re-import the parent's `__main__` (for a flow run, Prefect itself: seconds per child),
so the workers here are plain `python -c` interpreters that import only the engine, fed pickled
jobs over a pipe. A worker opens the store from its storage, CONFIG and keys (no key
derivation), keeps it for the next batch, and claims new chunks through the run directory
like any other batch.
"""

from __future__ import annotations

import pickle
import struct
import subprocess
import sys
import threading
from collections import OrderedDict
from typing import IO, Any

from kloset.backup.chunk import ChunkResult, chunk_batch
from kloset.backup.plan import load_plan_cached
from kloset.config import StoreConfig
from kloset.crypto import KeySet
from kloset.errors import KlosetError
from kloset.repository import Repository
from kloset.source import Source
from kloset.storage import Storage

_HEADER = struct.Struct("<Q")
_idle: list[subprocess.Popen[bytes]] = []
_busy: set[subprocess.Popen[bytes]] = set()
_idle_lock = threading.Lock()


# -- the parent side ---------------------------------------------------------------------------


def _send(pipe: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_HEADER.pack(len(data)) + data)
    pipe.flush()


def _receive(pipe: IO[bytes]) -> Any:
    head = pipe.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - our own child, over a private pipe


def _start_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from kloset.backup.procpool import serve; serve()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def chunk_batch_in_process(
    repo: Repository, run_dir: str, batch_no: int, source: Source, processes: int
) -> ChunkResult:
    """`chunk_batch` in a worker process; blocks until it is done. At most `processes`
    workers are kept idle between batches (as many run as callers call at once)."""
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None or worker.poll() is not None:
        worker = _start_worker()
    with _idle_lock:
        _busy.add(worker)
    job = (repo.storage, repo.config.to_bytes(), repo.keys.to_bytes(), source, run_dir, batch_no)
    assert worker.stdin is not None and worker.stdout is not None
    try:
        _send(worker.stdin, job)
        ok, value = _receive(worker.stdout)
    except (EOFError, OSError) as exc:
        worker.kill()
        worker.wait()
        raise KlosetError(
            f"the process chunking batch {batch_no} died (killed, or out of memory)"
        ) from exc
    finally:
        with _idle_lock:
            _busy.discard(worker)
    with _idle_lock:
        keep = len(_idle) < max(1, processes)
        if keep:
            _idle.append(worker)
    if not keep:
        _stop(worker)
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.stdin is not None:
        worker.stdin.close()  # EOF: the worker exits
    worker.wait()


def shutdown() -> None:
    """Stop the idle workers (they also exit on their own when this process ends)."""
    with _idle_lock:
        workers, _idle[:] = list(_idle), []
    for worker in workers:
        _stop(worker)


# -- the worker side -------------------------------------------------------------------------

# In each worker process: the stores it opened, newest last.
_repos: OrderedDict[tuple[str, str], Repository] = OrderedDict()


def _worker_repo(storage: Storage, config: bytes, keys: bytes) -> Repository:
    cfg = StoreConfig.from_bytes(config)
    key = (cfg.store_id, storage.location)
    repo = _repos.get(key)
    if repo is None:
        repo = Repository(storage, cfg, KeySet.from_bytes(keys))
        _repos[key] = repo
        while len(_repos) > 2:
            _repos.popitem(last=False)
    else:
        _repos.move_to_end(key)
        repo.refresh_index()  # batches uploaded since this worker's last one
    return repo


def serve() -> None:
    """The worker's loop: one job in, one `(ok, result or exception)` out, until EOF."""
    from kloset.gcpause import fewer_collections

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the result pipe
    while True:
        try:
            storage, config, keys, source, run_dir, batch_no = _receive(stdin)
        except EOFError:
            return
        try:
            with fewer_collections():
                repo = _worker_repo(storage, config, keys)
                plan = load_plan_cached(run_dir)
                result = chunk_batch(repo, run_dir, batch_no, source=source, plan=plan)
            reply: tuple[bool, Any] = (True, result)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
            plain = exc if _picklable(exc) else KlosetError(f"{type(exc).__name__}: {exc}")
            reply = (False, plain)
        _send(stdout, reply)


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - round trip of our own object
    except Exception:  # noqa: BLE001
        return False
    return True
