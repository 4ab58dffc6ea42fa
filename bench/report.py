"""Turning measurements into docs/BENCHMARKS.md: medians, the side-by-side table, the targets.

Generated sections sit between HTML-comment markers, so a script rewrites only its own part of
a hand-written page (`update_doc`, shared by `run.py`, `koofr.py` and `scale.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from corpus import ChangeSet, Verification
from measure import MIB, Measurement, first_line

BEGIN_MARK = "<!-- BEGIN GENERATED RESULTS (bench/run.py --out) -->"
END_MARK = "<!-- END GENERATED RESULTS -->"
MEASURED = ("first", "incremental", "unchanged", "restore")
PHASE_LABEL = {
    "first": "first backup",
    "incremental": "incremental backup",
    "unchanged": "unchanged re-run",
    "restore": "restore",
}


@dataclass
class ToolRun:
    """Everything measured for one tool in one repetition."""

    tool: str
    phases: dict[str, Measurement]
    store_first: int
    store_final: int
    cache_final: int
    tree_digest: str
    verification: Verification


@dataclass
class Summary:
    """Per tool: median wall/CPU times and worst-case memory over the repetitions."""

    tool: str
    wall: dict[str, float]
    wall_range: dict[str, tuple[float, float]]
    user: dict[str, float]
    sys: dict[str, float]
    maxrss_mib: dict[str, float]
    tree_pss_mib: dict[str, float]
    store_first: int
    store_final: int
    cache_final: int
    verified: bool
    mtime_diff: int
    runs: int
    background: dict[str, float]


def summarize(runs: list[ToolRun]) -> Summary:
    """Median times (robust to one noisy run), maximum memory (the budget is a maximum)."""
    tool = runs[0].tool
    wall, rng, user, sys_, rss, pss, bg = {}, {}, {}, {}, {}, {}, {}
    for ph in MEASURED:
        walls = [r.phases[ph].wall_s for r in runs]
        wall[ph] = statistics.median(walls)
        rng[ph] = (min(walls), max(walls))
        user[ph] = statistics.median(r.phases[ph].user_s for r in runs)
        sys_[ph] = statistics.median(r.phases[ph].sys_s for r in runs)
        rss[ph] = max(r.phases[ph].maxrss_kib for r in runs) / 1024
        pss[ph] = max(r.phases[ph].tree_pss_kib for r in runs) / 1024
        bg[ph] = max(r.phases[ph].background_cores for r in runs)
    return Summary(
        tool=tool,
        wall=wall,
        wall_range=rng,
        user=user,
        sys=sys_,
        maxrss_mib=rss,
        tree_pss_mib=pss,
        store_first=int(statistics.median(r.store_first for r in runs)),
        store_final=int(statistics.median(r.store_final for r in runs)),
        cache_final=int(statistics.median(r.cache_final for r in runs)),
        verified=all(r.verification.ok for r in runs),
        mtime_diff=max(r.verification.mtime_diff for r in runs),
        runs=len(runs),
        background=bg,
    )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def render_table(summaries: list[Summary]) -> str:
    """Markdown table: one row per measure, one column per tool, then kloset/other ratios."""
    by = {s.tool: s for s in summaries}
    tools = [s.tool for s in summaries]
    others = [t for t in tools if t != "kloset"] if "kloset" in by else []
    head = ["measure", *tools] + [f"kloset/{o}" for o in others]
    rows: list[list[str]] = []

    def row(label: str, values: dict[str, float], fmt: str, ratios: bool = True) -> None:
        cells = [label] + [fmt.format(values[t]) for t in tools]
        cells += [_ratio(values["kloset"], values[o]) if ratios else "" for o in others]
        rows.append(cells)

    for ph in MEASURED:
        row(f"{PHASE_LABEL[ph]}: wall time (s)", {t: by[t].wall[ph] for t in tools}, "{:.2f}")
    for ph in MEASURED:
        row(f"{PHASE_LABEL[ph]}: user CPU (s)", {t: by[t].user[ph] for t in tools}, "{:.2f}")
    for ph in MEASURED:
        row(f"{PHASE_LABEL[ph]}: system CPU (s)", {t: by[t].sys[ph] for t in tools}, "{:.2f}")
    for ph in MEASURED:
        row(
            f"{PHASE_LABEL[ph]}: peak RSS, largest process (MiB)",
            {t: by[t].maxrss_mib[ph] for t in tools},
            "{:.0f}",
        )
    for ph in MEASURED:
        row(
            f"{PHASE_LABEL[ph]}: peak PSS, whole process tree (MiB)",
            {t: by[t].tree_pss_mib[ph] for t in tools},
            "{:.0f}",
        )
    row(
        "store size after first backup (MiB)", {t: by[t].store_first / MIB for t in tools}, "{:.1f}"
    )
    row("store size after incremental (MiB)", {t: by[t].store_final / MIB for t in tools}, "{:.1f}")
    row(
        "added by incremental (MiB)",
        {t: (by[t].store_final - by[t].store_first) / MIB for t in tools},
        "{:.2f}",
    )
    row(
        "local cache outside the store (MiB)", {t: by[t].cache_final / MIB for t in tools}, "{:.1f}"
    )
    for ph in MEASURED:
        row(
            f"{PHASE_LABEL[ph]}: CPU used by other processes meanwhile (cores, max)",
            {t: by[t].background[ph] for t in tools},
            "{:.2f}",
            ratios=False,
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    verified = [
        f"{s.tool}: {'identical' if s.verified else 'MISMATCH'}"
        + (f" ({s.mtime_diff} file mtimes differ)" if s.mtime_diff else "")
        for s in summaries
    ]
    lines.append("")
    lines.append(
        "Restore verified against the backed-up tree (paths, types, sizes, SHA-1 of "
        "content, link targets): " + "; ".join(verified) + "."
    )
    return "\n".join(lines)


# Issue 10's targets: kloset/restic wall-time ratios, and the memory budget.
TARGET_RATIOS = {"first": 0.5, "unchanged": 0.5, "restore": 0.8}
MEMORY_BUDGET_MIB = 512


def render_targets(summaries: list[Summary]) -> str:
    """The issue's targets, checked against the medians of this run."""
    by = {s.tool: s for s in summaries}
    if "kloset" not in by:
        return ""
    k = by["kloset"]
    out = []
    if "restic" in by:
        r = by["restic"]
        for ph, limit in TARGET_RATIOS.items():
            kw, rw = k.wall[ph], r.wall[ph]
            met = rw > 0 and kw / rw <= limit
            out.append(
                f"- {PHASE_LABEL[ph]} <= {limit}x restic: **{'met' if met else 'NOT met'}** "
                f"({kw:.2f} s vs {rw:.2f} s, ratio {_ratio(kw, rw)})"
            )
    worst_rss = max(k.maxrss_mib.values())
    worst_pss = max(k.tree_pss_mib.values())
    ok = worst_rss < MEMORY_BUDGET_MIB and worst_pss < MEMORY_BUDGET_MIB
    out.append(
        f"- peak memory < {MEMORY_BUDGET_MIB} MiB: **{'met' if ok else 'NOT met'}** (largest "
        f"process {worst_rss:.0f} MiB, whole tree {worst_pss:.0f} MiB PSS)"
    )
    return "\n".join(out)


def machine_info(work: Path) -> dict[str, str]:
    """What the numbers depend on, recorded next to them."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / MIB:.1f} GiB"
    fstype = first_line(["stat", "-f", "-c", "%T", str(work)])
    return {
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": mem,
        "kernel": platform.release(),
        "filesystem": f"{fstype} (work dir {work})",
        "python": platform.python_version(),
    }


def render_section(
    summaries: list[Summary],
    changes: ChangeSet,
    corpus_desc: dict[str, object],
    versions: dict[str, str],
    machine: dict[str, str],
    args: argparse.Namespace,
    notes: list[str],
) -> str:
    """The generated part of docs/BENCHMARKS.md, between the markers."""
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Results of {date}",
        "",
        f"Command: `python bench/run.py {' '.join(args.argv)}`".rstrip(),
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} RAM, "
        f"Linux {machine['kernel']}, {machine['filesystem']}, Python {machine['python']}.",
        "",
        "Tools: " + "; ".join(f"{versions[s.tool]}" for s in summaries) + ".",
        "",
        f"Corpus: {corpus_desc['desc']} -- {corpus_desc['files']} files, {corpus_desc['dirs']} "
        f"directories, {corpus_desc['bytes'] / MIB:.0f} MiB.",
        "",
        f"Change set (seed {args.seed}): {changes.modified} files modified "
        f"({changes.appended} appended to, {changes.overwritten} overwritten in place; "
        f"{changes.modified_bytes / MIB:.1f} MiB of files to re-read), {changes.added} added "
        f"({changes.added_bytes / MIB:.1f} MiB), {changes.deleted} deleted; "
        f"{changes.bytes_written / MIB:.2f} MiB of new bytes in total.",
        "",
        f"Repetitions: {summaries[0].runs} (times are medians, memory is the maximum).",
        "",
        render_table(summaries),
        "",
    ]
    targets = render_targets(summaries)
    if targets:
        lines += ["Targets (issue 10):", "", targets, ""]
    if summaries[0].runs > 1:
        lines.append(
            "Wall-time ranges (min-max): "
            + "; ".join(
                f"{s.tool} "
                + ", ".join(
                    f"{PHASE_LABEL[p]} {s.wall_range[p][0]:.2f}-{s.wall_range[p][1]:.2f}"
                    for p in MEASURED
                )
                for s in summaries
            )
            + "."
        )
        lines.append("")
    for n in notes:
        lines.append(f"Note: {n}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update_doc(path: Path, section: str, begin: str = BEGIN_MARK, end: str = END_MARK) -> None:
    """Replace the text between `begin` and `end`, leaving the hand-written rest alone; a page
    without the markers gets them appended (a new page starts with a title)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _m: f"{begin}\n{section}{end}", text, count=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")
