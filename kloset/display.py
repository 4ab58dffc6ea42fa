"""How numbers and times are shown, in one place: sizes, ratios and timestamps.

The CLI, the web viewer, the Prefect summaries and the blocks all format through here, so a
size or a time reads the same wherever a user meets it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float) -> str:
    """IEC sizes (1 KiB = 1024 B), three significant digits: what users compare with `du -h`."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")
_SIZE_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size(text: str) -> int:
    """`500`, `64K`, `1.5MiB`, `2g` → bytes: human_size's inverse, binary like restic's
    (K = KiB = 1024; a trailing `B` or `iB` is optional, case does not matter)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"bad size {text!r} (a number with K, M, G or T, e.g. 100M)")
    number, unit = match.groups()
    unit = unit.lower()
    for suffix in ("ib", "b"):
        if unit.endswith(suffix) and unit[: -len(suffix)] in _SIZE_UNITS:
            unit = unit[: -len(suffix)]
            break
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit {match.group(2)!r} in {text!r} (use K, M, G or T)")
    return int(float(number) * 1024 ** _SIZE_UNITS[unit])


def ratio(numerator: int | float, denominator: int | float) -> float:
    """A ratio rounded to two decimals that is 0.0 (not a crash) for an empty denominator."""
    return round(float(numerator) / float(denominator), 2) if denominator else 0.0


def iso_time(time_ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds (``2024-05-01T02:00:00.123456789Z``): exact for JSON
    consumers, readable by people."""
    secs, frac = divmod(time_ns, 1_000_000_000)
    try:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    except (OverflowError, OSError, ValueError):
        return str(time_ns)
    return f"{base}.{frac:09d}Z"


def dedup_ratio(stats: Mapping[str, Any]) -> float:
    """A backup's dedup ratio, from its snapshot stats: the snapshot's logical size over the new
    plaintext it stored (before compression, which `bytes_added` includes), so a first backup
    of unique data is 1.00x, never below; 0.0 when nothing new was stored."""
    return ratio(int(stats.get("bytes", 0)), int(stats.get("bytes_new", 0)))
