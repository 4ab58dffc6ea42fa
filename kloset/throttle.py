"""Bandwidth limits (`--limit-upload`, `--limit-download`, in KiB/s), like restic's and rclone's
`--bwlimit`: one token bucket per direction for the whole process.

Every byte that crosses the network on kloset's side goes through one of three places, and
each of them takes its bytes from these buckets: `Storage` (packs, index files, snapshots of a
remote store), `FsspecSource.open` (files read from a remote source) and `FsspecDestination`
(files written to a remote target). Local disk is never limited. A read takes its bytes once
they have arrived and a write before it is sent, so the rate is kept on average over a few
seconds; a single object (at most a pack, ~16 MiB) goes out at the link's own speed.
Limits are per process: parallel Prefect or Dask workers each get the full limit. A process
starts with the limits in ``KLOSET_LIMIT_UPLOAD`` / ``KLOSET_LIMIT_DOWNLOAD``, which is how a
flow's `limit_upload` / `limit_download` reach the task processes it starts (`limited`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kloset.errors import KlosetError

BURST_SECONDS = 0.5  # how much unused allowance a bucket saves up


class TokenBucket:
    """`take(n)` blocks until `n` bytes fit the rate; no rate means no waiting at all."""

    def __init__(self, rate: float | None = None) -> None:
        self._lock = threading.Lock()
        self.set_rate(rate)

    def set_rate(self, rate: float | None) -> None:
        """Bytes per second, or None for no limit."""
        with self._lock:
            self.rate = rate if rate and rate > 0 else None
            self._tokens = 0.0
            self._stamp = time.monotonic()

    def take(self, n: int) -> None:
        if self.rate is None or n <= 0:
            return
        with self._lock:
            now = time.monotonic()
            burst = self.rate * BURST_SECONDS
            self._tokens = min(burst, self._tokens + (now - self._stamp) * self.rate) - n
            self._stamp = now
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)  # others queue behind the debt this one left


UPLOAD = TokenBucket()
DOWNLOAD = TokenBucket()


def parse_kib(value: str | int | None, what: str) -> int | None:
    """A KiB/s limit from the command line or a flow parameter (0 or None: unlimited)."""
    if value is None or value == "":
        return None
    try:
        kib = int(value)
    except (TypeError, ValueError):
        raise KlosetError(f"{what} must be a whole number of KiB/s, not {value!r}") from None
    if kib < 0:
        raise KlosetError(f"{what} must not be negative")
    return kib or None


def set_limits(upload_kib: int | None = None, download_kib: int | None = None) -> None:
    """Limit this process's network traffic, in KiB/s (None: unlimited)."""
    UPLOAD.set_rate(upload_kib * 1024 if upload_kib else None)
    DOWNLOAD.set_rate(download_kib * 1024 if download_kib else None)


ENV_UPLOAD = "KLOSET_LIMIT_UPLOAD"
ENV_DOWNLOAD = "KLOSET_LIMIT_DOWNLOAD"


def _env_kib(name: str) -> int | None:
    try:
        return parse_kib(os.environ.get(name), name)
    except KlosetError:
        return None  # the CLI reads the same variables and says what is wrong with them


@contextmanager
def limited(upload_kib: int | None, download_kib: int | None) -> Iterator[None]:
    """These limits for this process and for the processes it starts meanwhile (through the
    environment: Prefect's process runner and a local Dask cluster spawn fresh interpreters);
    the previous limits are back afterwards."""
    upload_kib = parse_kib(upload_kib, "limit_upload")
    download_kib = parse_kib(download_kib, "limit_download")
    saved_env = {k: os.environ.get(k) for k in (ENV_UPLOAD, ENV_DOWNLOAD)}
    saved_rates = (UPLOAD.rate, DOWNLOAD.rate)
    for key, kib in ((ENV_UPLOAD, upload_kib), (ENV_DOWNLOAD, download_kib)):
        if kib:
            os.environ[key] = str(kib)
        else:
            os.environ.pop(key, None)
    set_limits(upload_kib, download_kib)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        UPLOAD.set_rate(saved_rates[0])
        DOWNLOAD.set_rate(saved_rates[1])


def worker_env(workers: int) -> dict[str, str | None]:
    """The limits for `workers` helper processes (`kloset.workers`) that move bytes on this
    process's behalf (a local backup's batches upload their packs themselves): an equal share
    each, so together they keep this process's limit; None removes a variable (no limit)."""
    env: dict[str, str | None] = {}
    for key, bucket in ((ENV_UPLOAD, UPLOAD), (ENV_DOWNLOAD, DOWNLOAD)):
        rate = bucket.rate
        env[key] = str(max(1, int(rate / 1024 / max(1, workers)))) if rate else None
    return env


def current_limits(_report: Any = None) -> tuple[float | None, float | None]:
    """(upload, download) bytes per second in force in this process; also a `kloset.workers`
    job (which gets a report callback first), to ask a worker what it was given."""
    return UPLOAD.rate, DOWNLOAD.rate


set_limits(_env_kib(ENV_UPLOAD), _env_kib(ENV_DOWNLOAD))


class ThrottledReader:
    """A remote file being read, paced by the download bucket (read, readinto, close)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        DOWNLOAD.take(len(data))
        return data  # type: ignore[no-any-return]

    def readinto(self, buf: Any) -> int:
        got = int(self._fh.readinto(buf))
        DOWNLOAD.take(got)
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> ThrottledReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()
