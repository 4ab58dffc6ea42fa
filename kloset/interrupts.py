"""Clean interrupts: SIGINT, SIGTERM and SIGHUP stop a command safely and say what was done.

The CLI installs these handlers once, for every verb. The first signal raises `Interrupted`
in the main thread (a BaseException, so no `except Exception` swallows it, and not a
KeyboardInterrupt, which click would turn into a bare Abort): the running operation stops
handing out work, abandons or finishes what is in flight (a backup kills its workers: what they
sealed is in the store and the next run adopts it; threads stop between two files), its store
lock is released while the stack unwinds, and the CLI prints one line and exits 130 (SIGINT),
143 (SIGTERM) or 129 (SIGHUP). Work that does not stop within `GRACE` seconds is abandoned:
the locks are released and the process exits. A second signal exits at once.

What the line says comes from the verb's progress state (`set_status`): e.g.
``interrupted: 1,204 files stored; run the same backup again to resume``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)
GRACE = 5.0  # seconds an interrupted command may take to stop cleanly (KLOSET_INTERRUPT_GRACE)

_status: Callable[[], str] | None = None
_verb = ""
_first: int | None = None
_timer: threading.Timer | None = None
_stop = threading.Event()
_said = threading.Lock()  # the line is printed once, by whoever gets there first


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return exit_code(self.signum)


def exit_code(signum: int) -> int:
    """128 + the signal's number, as shells report a command a signal ended."""
    return 128 + int(signum)


def stopping() -> bool:
    """True once a stop was asked for: loops in threads check this between two items."""
    return _stop.is_set()


def stop_event() -> threading.Event:
    """The event set by the first interrupt (for engine code that takes a `stop` event)."""
    return _stop


def set_status(describe: Callable[[], str] | None) -> None:
    """What the interrupted line says was done, e.g. "1,204 files stored; run ... again"."""
    global _status
    _status = describe


def set_verb(verb: str) -> None:
    """The verb running, for the line's default wording."""
    global _verb
    _verb = verb


_DEFAULTS = {
    "backup": "run the same backup again to resume",
    "restore": "run the same restore again to continue",
    "check": "the store was not changed",
    "prune": "the store is consistent; run prune again to finish",
    "sync": "the target is consistent; run the same sync again to continue",
}


def message() -> str:
    """The one line printed for an interrupt."""
    text = ""
    if _status is not None:
        try:
            text = _status()
        except Exception:  # noqa: BLE001 - a progress state that cannot say is no reason to fail
            text = ""
    return f"interrupted: {text or _DEFAULTS.get(_verb, 'the store is consistent')}"


def _release_locks() -> None:
    """Release every store lock this process holds, waiting at most ~3 s for the store."""
    from kloset.locks import held_locks

    def release() -> None:
        for lock in held_locks():
            lock.release()

    worker = threading.Thread(target=release, daemon=True)
    worker.start()
    worker.join(3.0)


def say() -> None:
    """Print the interrupted line to stderr, once per process."""
    if _said.acquire(blocking=False):
        sys.stderr.write(message() + "\n")
        sys.stderr.flush()


def _exit_now(signum: int, *, release: bool) -> None:
    """The command did not stop within the grace period: abandon it."""
    try:
        if release:
            _release_locks()
        say()
    finally:
        os._exit(exit_code(signum))


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _first, _timer
    if _first is not None:
        os._exit(exit_code(_first))  # the second signal: at once
    _first = signum
    _stop.set()
    grace = _grace()
    _timer = threading.Timer(grace, _exit_now, args=(signum,), kwargs={"release": True})
    _timer.daemon = True
    _timer.start()
    raise Interrupted(signum)


def _grace() -> float:
    try:
        return float(os.environ.get("KLOSET_INTERRUPT_GRACE", "") or GRACE)
    except ValueError:
        return GRACE


@contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for the body (main thread only); restore the old ones after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old: dict[int, Any] = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)
        if _timer is not None:
            _timer.cancel()
