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

from kloset.display import human_size, iso_time


def plural(n: int, word: str) -> str:
    """`1 file`, `2 files`: summaries are read by people first."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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


def json_line(obj: Any) -> str:
    """`to_json` on one line: a message of a JSON-lines stream (`--json` on long runs)."""
    return json.dumps(_clean(obj), default=_default, ensure_ascii=False, separators=(",", ":"))


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


# -- renderings shared by the verbs (and by anything else that prints what the CLI prints) --------
def entry_row(path: str, e: Any) -> dict[str, Any]:
    """A tree entry as JSON consumers see it."""
    return {
        "name": e.name,
        "path": path,
        "type": e.type,
        "mode": e.mode,
        "mode_string": mode_string(e.type, e.mode),
        "size": e.size,
        "mtime": iso_time(e.mtime_ns),
        "mtime_ns": e.mtime_ns,
        "target": e.target,
        "chunks": len(e.chunks),
    }


def snapshots_table(headers: Sequence[Any], *, long: bool = False) -> str:
    head = ["ID", "DATE", "SIZE", "FILES", "TAGS", "SOURCE"]
    if long:
        head[5:5] = ["HOST", "ERRORS", "RUN"]
    rows = [head]
    for h in headers:
        r = h.to_doc()
        row = [
            h.hex if long else r["short_id"],
            local_time(h.time_ns),
            human_size(r["bytes"]),
            str(r["files"]),
            ",".join(h.tags) or "-",
            display_name(h.source),
        ]
        if long:
            row[5:5] = [h.host or "-", str(r["errors"]), display_name(h.origin.get("run", "-"))]
        rows.append(row)
    return table(rows, right=(2, 3))


def listing_table(entries: Sequence[Any], *, long: bool = False) -> str:
    """`ls -l` style: mode, size, mtime, name (dirs end in /, links show their target)."""
    rows = []
    for e in entries:
        name = display_name(e.name) + ("/" if e.is_dir else "")
        if e.is_symlink:
            name += " -> " + display_name(e.target or "")
        size = str(e.size) if long else (human_size(e.size) if e.is_file else "-")
        when = iso_time(e.mtime_ns) if long else local_time(e.mtime_ns, seconds=False)
        rows.append([mode_string(e.type, e.mode), size, when, name])
    return table(rows, right=(1,), header=False)


def backup_text(s: dict[str, Any]) -> str:
    """The backup summary table; a dry run says what *would* be added."""
    added = "would add" if s.get("dry_run") else "added"
    rows = [
        ("files", f"{s['files']} ({s['files_read']} read)"),
        ("dirs", str(s["dirs"])),
        ("symlinks", str(s["symlinks"])),
        ("size", human_size(s["bytes"])),
        ("read", human_size(s["bytes_read"])),
        (added, f"{human_size(s['bytes_added'])} (after dedup and compression)"),
        ("dedup", f"{s['dedup_ratio']}x" if s["dedup_ratio"] else "everything was already stored"),
        ("errors", str(len(s["errors"]))),
        ("duration", f"{s['duration']:.1f} s"),
    ]
    return table(rows, header=False)


def store_info_rows(s: Any) -> list[tuple[str, str]]:
    return [
        ("store", f"{s.location} ({s.store_id})"),
        ("encryption", "aes-256-gcm" if s.encrypted else "none"),
        ("compression", f"zstd level {s.compression_level}, {s.compression_ratio}x"),
        ("snapshots", str(s.snapshots)),
        ("packs", f"{s.packs} ({human_size(s.pack_bytes)})"),
        ("blobs", f"{s.blobs} ({s.data_blobs} data, {s.tree_blobs} trees)"),
        ("logical size", human_size(s.logical_bytes)),
        ("stored size", human_size(s.pack_bytes)),
        ("dedup ratio", f"{s.dedup_ratio}x (logical / stored)"),
    ]


def snapshot_info_rows(t: Any) -> list[tuple[str, str]]:
    rows = [
        ("snapshot", t.id),
        ("date", local_time(t.time_ns)),
        ("source", display_name(t.source)),
        ("host", t.host or "-"),
        ("tags", ",".join(t.tags) or "-"),
        ("files", f"{t.files} ({plural(t.dirs, 'dir')}, {plural(t.symlinks, 'symlink')})"),
        ("logical size", human_size(t.logical_bytes)),
        ("stored size", f"{human_size(t.stored_bytes)} ({t.chunks} chunks, {t.trees} trees)"),
        ("dedup ratio", f"{t.dedup_ratio}x"),
        ("read at backup", human_size(t.bytes_read)),
        ("added at backup", human_size(t.bytes_added)),
        ("errors", str(t.errors_total)),
    ]
    rows += [(f"origin {k}", display_name(v)) for k, v in sorted(t.origin.items())]
    return rows + [("  error", f"{display_name(p)}: {m}") for p, m in t.errors[:20]]
