"""Worker processes for CPU-bound engine work that never outlive the process that started them.

Chunking a local source is CPU-bound and the Python around FastCDC, BLAKE3, zstd and AES-GCM
holds the GIL, so it runs in processes. They are plain ``python -c`` interpreters that import
only the engine: safe to start from a process that already runs threads (a Prefect flow: no
fork), and they never re-import the parent's ``__main__`` (for a flow run, Prefect itself).
Jobs and replies are pickled over the worker's stdin/stdout pipes.

A worker dies with its parent, however the parent ends (SIGKILL, SIGTERM, an OOM kill, a crashed
Prefect worker): on Linux the kernel kills it (``PR_SET_PDEATHSIG``), and everywhere a watchdog
thread exits it at once when its job pipe reaches EOF or its parent pid changes. Workers ignore
SIGINT: a Ctrl-C reaches the whole process group, and the parent decides what stops.

``PR_SET_PDEATHSIG`` fires when the *thread* that started the child exits, not the process; so
every worker is started by one long-lived spawner thread, never by a short-lived task thread.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any

from kloset.errors import KlosetError

_HEADER = struct.Struct("<Q")
_PARENT_ENV = "KLOSET_WORKER_PARENT"
_PRELOAD_ENV = "KLOSET_WORKER_PRELOAD"
# Tests switch one mechanism off to prove the other works on its own.
NO_PDEATHSIG_ENV = "KLOSET_WORKER_NO_PDEATHSIG"
NO_WATCHDOG_ENV = "KLOSET_WORKER_NO_WATCHDOG"
WATCH_INTERVAL = 0.2  # seconds between parent-pid checks

Report = Callable[[Any], None]


class WorkerDied(KlosetError):
    """A worker process ended without answering (killed, out of memory, or stopped by us)."""


# -- framing -----------------------------------------------------------------------------------


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


# -- the parent side ---------------------------------------------------------------------------

_spawn_q: queue.Queue[tuple[list[str], dict[str, str], Future[subprocess.Popen[bytes]]]] = (
    queue.Queue()
)
WORKER_CODE = "from kloset.workers import serve; serve()"
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _spawner_loop() -> None:
    while True:
        argv, env, fut = _spawn_q.get()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            fut.set_exception(exc)
        else:
            fut.set_result(proc)


def _start_process(preload: str, label: str, pool_size: int = 1) -> subprocess.Popen[bytes]:
    """Start one worker from the spawner thread (see the module docstring for why). `label`
    goes on its command line, so `pgrep -f STORE` finds a store's workers."""
    from kloset import throttle

    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawner_loop, name="kloset-spawner", daemon=True)
            _spawner.start()
    env = dict(os.environ, **{_PARENT_ENV: str(os.getpid()), _PRELOAD_ENV: preload})
    # --limit-upload/--limit-download: the pool's workers share this process's limits.
    for key, value in throttle.worker_env(pool_size).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    fut: Future[subprocess.Popen[bytes]] = Future()
    argv = [sys.executable, "-c", WORKER_CODE, "kloset-worker", label]
    _spawn_q.put((argv, env, fut))
    return fut.result()


class WorkerPool:
    """Up to `size` worker processes; `run` is blocking and safe to call from many threads.

    Workers are started on demand (or ahead with `prestart`) and kept between jobs. `close`
    stops them; `kill` ends them at once, making every `run` in progress raise WorkerDied.
    """

    def __init__(self, size: int, *, preload: str = "", label: str = "") -> None:
        self.size = max(1, int(size))
        self.preload = preload
        self.label = label
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # a prestarted worker became idle
        self._idle: list[subprocess.Popen[bytes]] = []
        self._all: set[subprocess.Popen[bytes]] = set()
        self._starting = 0  # prestarts under way
        self._closed = False

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self.kill()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._all]

    def prestart(self, count: int | None = None) -> None:
        """Have `count` workers (default: `size`) started, in the background, so their
        start-up overlaps the caller's work."""
        with self._lock:
            wanted = min(self.size, count or self.size) - self._starting - len(self._all)
            self._starting += max(0, wanted)

        def start() -> None:
            try:
                proc = self._new()
            except Exception:  # noqa: BLE001 - `run` starts one itself if this failed
                return
            finally:
                with self._lock:
                    self._starting -= 1
                    self._ready.notify_all()
            with self._lock:
                if not self._closed:
                    self._idle.append(proc)
                    self._ready.notify_all()
                    return
            _stop(proc, kill=True)

        for _ in range(max(0, wanted)):
            threading.Thread(target=start, name="kloset-prestart", daemon=True).start()

    def _new(self) -> subprocess.Popen[bytes]:
        proc = _start_process(self.preload, self.label, self.size)
        with self._lock:
            self._all.add(proc)
            if self._closed:
                self._all.discard(proc)
                _stop(proc, kill=True)
                raise WorkerDied("the worker pool was stopped")
        return proc

    def _take(self) -> subprocess.Popen[bytes]:
        with self._lock:
            while True:
                if self._closed:
                    raise WorkerDied("the worker pool was stopped")
                while self._idle:
                    proc = self._idle.pop()
                    if proc.poll() is None:
                        return proc
                    self._all.discard(proc)
                if not self._starting:
                    break
                self._ready.wait(timeout=1.0)  # one being prestarted is sooner than a new one
        return self._new()

    def run(self, func: Callable[..., Any], *args: Any, on_report: Report | None = None) -> Any:
        """`func(report, *args)` in a worker; returns its result or raises its exception.

        `func` must be a module-level function of the engine (pickled by name). What it passes
        to `report` arrives here, in order, as `on_report(obj)` calls.
        """
        with self._slots:
            proc = self._take()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, (func, args))
                while True:
                    kind, value = _receive(proc.stdout)
                    if kind != "report":
                        break
                    if on_report is not None:
                        on_report(value)
            except (EOFError, OSError) as exc:
                _stop(proc, kill=True)
                with self._lock:
                    self._all.discard(proc)
                    stopped = self._closed
                why = "was stopped" if stopped else "died (killed, or out of memory)"
                raise WorkerDied(f"the worker process running {func.__name__} {why}") from exc
            except BaseException:
                # Interrupted mid-conversation: the worker's state is unknown, end it.
                _stop(proc, kill=True)
                with self._lock:
                    self._all.discard(proc)
                raise
            with self._lock:
                if self._closed:
                    self._all.discard(proc)
                    _stop(proc, kill=True)
                else:
                    self._idle.append(proc)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop idle workers (EOF on their pipe) and kill busy ones; wait for all of them."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = self._all - set(idle)
            self._all = set()
        for proc in idle:
            _stop(proc)
        for proc in busy:
            _stop(proc, kill=True)

    def kill(self) -> None:
        """End every worker now: abandon what they do (their half-written files are
        temporaries nobody names), and make every `run` in progress raise WorkerDied."""
        with self._lock:
            self._closed = True
            procs = list(self._all)
            self._all, self._idle = set(), []
        for proc in procs:
            _stop(proc, kill=True)


def _stop(proc: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if kill:
        with contextlib.suppress(OSError):
            proc.kill()
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if pipe is not None:
                pipe.close()
    try:
        proc.wait(timeout=None if kill else 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_shared: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool(size: int, *, preload: str = "", label: str = "") -> WorkerPool:
    """One process-wide pool (Prefect tasks of a flow run share it); grows to `size`."""
    global _shared
    with _shared_lock:
        same = _shared is not None and (_shared.preload, _shared.label) == (preload, label)
        if _shared is None or _shared._closed or not same:
            old, _shared = _shared, WorkerPool(size, preload=preload, label=label)
            if old is not None:
                old.close()
        elif _shared.size < size:
            old, _shared = _shared, WorkerPool(size, preload=preload, label=label)
            old.close()
        return _shared


def shutdown_shared() -> None:
    """Stop the shared pool's workers (they also die on their own when this process ends)."""
    global _shared
    with _shared_lock:
        pool, _shared = _shared, None
    if pool is not None:
        pool.close()


# -- the worker side -------------------------------------------------------------------------


def ping(report: Report, seconds: float = 0.0) -> int:
    """A job that proves a worker runs (and, with `seconds`, keeps it busy); returns its pid."""
    import time

    report(os.getpid())
    time.sleep(seconds)
    return os.getpid()


def cpu_count() -> int:
    """CPUs this process may run on (a container's affinity, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL us when the parent ends; then check it has not ended already.
    Every child process of kloset calls this first (these workers, restore's forked writers)."""
    if sys.platform.startswith("linux") and not os.environ.get(NO_PDEATHSIG_ENV):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _read_exact(fd: int, n: int, parent: int, watch: bool) -> bytes:
    """n bytes from fd; exits the process at EOF or when the parent is gone."""
    parts: list[bytes] = []
    while n:
        if watch:
            ready, _w, _x = select.select([fd], [], [], WATCH_INTERVAL)
            if os.getppid() != parent:
                os._exit(1)
            if not ready:
                continue
        chunk = os.read(fd, n)
        if not chunk:
            if not watch:
                raise EOFError  # (tests: only PR_SET_PDEATHSIG may end this worker)
            os._exit(0)  # EOF: the parent closed the pipe (stop) or died
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _watch(fd: int, parent: int, jobs: queue.Queue[bytes]) -> None:
    """The watchdog: reads jobs for the main thread, exits the process with its parent."""
    watch = not os.environ.get(NO_WATCHDOG_ENV)
    try:
        while True:
            (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, parent, watch))
            jobs.put(_read_exact(fd, size, parent, watch))
    except EOFError:
        return


def serve() -> None:
    """The worker's loop: one job in, its reports and then one reply out, until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = int(os.environ.get(_PARENT_ENV) or os.getppid())
    die_with_parent(parent)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply pipe
    jobs: queue.Queue[bytes] = queue.Queue()
    threading.Thread(
        target=_watch, args=(sys.stdin.fileno(), parent, jobs), name="watchdog", daemon=True
    ).start()
    preload = os.environ.get(_PRELOAD_ENV)
    if preload:
        __import__(preload)  # while the parent still prepares the first job
    lock = threading.Lock()

    def report(obj: Any) -> None:
        with lock:
            _send(out, ("report", obj))

    while True:
        raw = jobs.get()
        try:
            func, args = pickle.loads(raw)  # noqa: S301 - from our parent, over a private pipe
            reply: tuple[str, Any] = ("ok", func(report, *args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
            reply = ("error", sendable(exc))
        try:
            with lock:
                _send(out, reply)
        except (BrokenPipeError, OSError):
            os._exit(1)  # the parent is gone


def sendable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling to the parent, else a KlosetError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - round trip of our own object
    except Exception:  # noqa: BLE001
        return KlosetError(f"{type(exc).__name__}: {exc}")
    return exc
