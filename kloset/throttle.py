"""Bandwidth limits (`--limit-upload`, `--limit-download`, in KiB/s), like restic's and rclone's
`--bwlimit`: one token bucket per direction for the whole process.

Every byte that crosses the network on kloset's side goes through one of three places, and
each of them takes its bytes from these buckets: `Storage` (packs, index files, snapshots of a
remote store), `FsspecSource.open` (files read from a remote source) and `FsspecDestination`
(files written to a remote target). Local disk is never limited. A read takes its bytes once
they have arrived and a write before it is sent, so the rate is kept on average over a few
seconds; a single object (at most a pack, ~16 MiB) goes out at the link's own speed.
Limits are per process: parallel Prefect or Dask workers each get the full limit.
"""

from __future__ import annotations

import threading
import time
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
