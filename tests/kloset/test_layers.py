"""The engine knows nothing of Prefect: no module of `kloset/` imports the layers above it.

Checked on the source (every ``import`` and ``from ... import``, also inside functions), so a
lazy import behind a try/except is caught as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "kloset"
ABOVE = {"prefect", "prefect_dask", "blocks", "flows", "kloset_tasks"}


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_no_engine_module_imports_prefect_or_the_layers_above() -> None:
    modules = sorted(ENGINE.rglob("*.py"))
    assert len(modules) > 30  # the walk found the engine
    offenders = [
        f"{path.relative_to(ENGINE.parent)}:{line}: {name}"
        for path in modules
        for line, name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in ABOVE
    ]
    assert offenders == []


def test_the_engine_reaches_koofr_through_fsspec() -> None:
    """kloset uses koofrfs as any fsspec user would (``fsspec.filesystem("koofr", ...)``) and
    its rclone parsing as a public API: no engine module imports the filesystem class."""
    offenders = [
        f"{path.relative_to(ENGINE.parent)}:{line}: {name}"
        for path in sorted(ENGINE.rglob("*.py"))
        for line, name in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if name in ("koofrfs.filesystem", "koofrfs.base") or name.startswith("koofrfs.api")
    ]
    assert offenders == []
    assert not [p for p in ENGINE.rglob("*.py") if "KoofrFileSystem(" in p.read_text("utf-8")]
