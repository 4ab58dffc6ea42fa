"""httpx without its command-line tool: koofrfs never runs it, and importing it costs every run.

``import httpx`` also imports ``httpx._main`` (the ``httpx`` console tool) whenever click,
pygments and rich are installed, as they are next to kloset: ~35% of an unchanged Koofr backup's
samples under py-spy, more than its requests. A stand-in module takes its place before httpx is
first imported; ``httpx.main`` still works, loading the real tool when it is called.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_NAME = "httpx._main"


def install() -> None:
    """Put the stand-in in place, unless httpx (or its tool) is already imported."""
    if "httpx" in sys.modules or _NAME in sys.modules:
        return
    stub = types.ModuleType(_NAME, "Stand-in for httpx's command-line tool (see koofrfs).")

    def main(*args: Any, **kwargs: Any) -> Any:
        if sys.modules.get(_NAME) is stub:
            del sys.modules[_NAME]
        return importlib.import_module(_NAME).main(*args, **kwargs)

    stub.main = main  # type: ignore[attr-defined]
    sys.modules[_NAME] = stub
