"""How the Prefect-side helper commands talk: a line per thing done, one line per error.

``python -m automations`` and ``python -m blocks.deployments`` share it, so both behave like
the `kloset` CLI: no traceback, a non-zero exit, the error on stderr in one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable


def run_command(prog: str, action: Callable[[], Iterable[str]]) -> int:
    """Print each line `action` yields; an exception becomes ``PROG: error: ...`` and exit 1."""
    try:
        for line in action():
            print(line)
    except Exception as exc:  # noqa: BLE001 - one line on stderr, never a traceback
        text = str(exc).strip().splitlines()
        print(f"{prog}: error: {text[0] if text else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0
