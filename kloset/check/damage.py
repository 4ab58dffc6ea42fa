"""Check, damage: trace damaged blobs and trees back to the snapshots and paths that use them,
so the user knows exactly what a damaged pack costs."""

from __future__ import annotations

from typing import Any

from kloset.check.findings import Findings
from kloset.tree import Entry

MAX_PATHS = 1000  # affected paths kept per snapshot; the count is always exact


def trace_damage(found: Findings) -> None:
    if not found.bad_blobs and not found.bad_trees:
        return
    memo: dict[bytes, list[str]] = {}
    for header in found.headers:
        paths = _affected(found, header.root, memo)
        if paths:
            shown = ["/" + p for p in paths]
            found.report.affected[header.hex] = shown[:MAX_PATHS]
            found.report.affected_counts[header.hex] = len(shown)


def _affected(found: Findings, root: bytes, memo: dict[bytes, list[str]]) -> list[str]:
    """Relative paths below tree `root` whose data is damaged ('' = the directory itself)."""
    if root in found.bad_trees:
        return [""]
    stack: list[list[Any]] = [[root, "", *_children(found, root), 0]]
    while stack:
        frame = stack[-1]
        tid, name, entries, acc, pos = frame
        if pos < len(entries):
            frame[4] += 1
            entry: Entry = entries[pos]
            if entry.is_file and any(c in found.bad_blobs for c in entry.chunks):
                acc.append(entry.name)
            elif entry.is_dir and entry.subtree is not None:
                sub = entry.subtree
                if sub in found.bad_trees:
                    acc.append(entry.name + "/")
                elif sub in memo:
                    acc.extend(f"{entry.name}/{p}" for p in memo[sub])
                else:
                    stack.append([sub, entry.name, *_children(found, sub), 0])
            continue
        stack.pop()
        memo[tid] = acc
        if stack:
            stack[-1][3].extend(f"{name}/{p}" for p in acc)
    return memo[root]


def _children(found: Findings, tid: bytes) -> tuple[list[Entry], list[str]]:
    """(entries, ['']) when some page of a large directory is damaged, else (entries, [])."""
    node = found.repo.load_tree(tid)  # known good: walk_trees loaded it
    if node.pages is None:
        return list(node.entries or []), []
    out: list[Entry] = []
    lost = False
    for _f, _c, page_id in node.pages:
        if page_id in found.bad_trees:
            lost = True
        else:
            out.extend(found.repo.load_tree(page_id).entries or [])
    return out, [""] if lost else []
