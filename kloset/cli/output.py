"""Formatting for the CLI: sizes, dates, names, plain tables and JSON.

Tables are plain aligned text rather than rich tables: `kloset ... | grep` and `| cut` must
keep working, and rich wraps or truncates columns when stdout is not a terminal.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterable, Sequence
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


def ratio(numerator: int | float, denominator: int | float) -> float:
    """A ratio that is 0.0 (not a crash) for an empty store."""
    return round(float(numerator) / float(denominator), 2) if denominator else 0.0


def local_time(time_ns: int, *, seconds: bool = True) -> str:
    """A timestamp in the machine's local zone: snapshots are listed the way `ls -l` shows files.

    Works for times before 1970 and after 2038, which `time.localtime` handles on 64-bit Linux.
    """
    secs = time_ns // 1_000_000_000
    try:
        tm = time.localtime(secs)
    except (OverflowError, OSError, ValueError):
        return f"@{secs}"
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", tm)


def iso_time(time_ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds, for JSON consumers that need exact times."""
    secs, frac = divmod(time_ns, 1_000_000_000)
    try:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    except (OverflowError, OSError, ValueError):
        return str(time_ns)
    return f"{base}.{frac:09d}Z"


def display_name(name: str) -> str:
    """A name safe to print on one line.

    Names that are not valid UTF-8 on disk arrive surrogate-escaped; printing them raw would
    crash the encoder, and control characters (a newline in a file name) would break the
    one-entry-per-line contract that scripts rely on.
    """
    raw = os.fsencode(name)
    text = raw.decode("utf-8", "backslashreplace")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        text = "".join(c if 32 <= ord(c) != 127 else f"\\x{ord(c):02x}" for c in text)
    return text


def mode_string(entry_type: str, mode: int) -> str:
    """`drwxr-xr-x` style, from the type we recorded (modes from remote sources are synthetic)."""
    kind = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}.get(entry_type, stat.S_IFREG)
    return stat.filemode(kind | stat.S_IMODE(mode))


def table(rows: Sequence[Sequence[str]], *, right: Iterable[int] = (), header: bool = True) -> str:
    """Columns separated by two spaces; `right` lists columns to right-align (numbers)."""
    if not rows:
        return ""
    right_cols = set(right)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            last = i == len(row) - 1
            if i in right_cols and not (header and n == 0):
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell if last else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def to_json(obj: Any) -> str:
    """JSON with bytes as hex; surrogate-escaped names become their backslash form, not invalid
    JSON (lone surrogates are legal in Python's parser but rejected by many others)."""
    return json.dumps(_clean(obj), default=_default, indent=2, ensure_ascii=False)


def _clean(obj: Any) -> Any:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return os.fsencode(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, dict):
        return {str(_clean(k)): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(to_json(obj) + "\n")


def out(line: str = "") -> None:
    """One line on stdout, never crashing on names the terminal encoding cannot show."""
    try:
        sys.stdout.write(line + "\n")
    except UnicodeEncodeError:
        sys.stdout.write(line.encode("utf-8", "backslashreplace").decode("ascii", "replace") + "\n")


def err(line: str) -> None:
    """One line on stderr, prefixed like every other kloset message."""
    sys.stderr.write(f"kloset: {display_name(line)}\n")
