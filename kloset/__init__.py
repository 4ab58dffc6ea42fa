"""Kloset: a content-addressed, deduplicated, compressed and encrypted snapshot store.

The engine is a library first; the CLI, the web UI and the Prefect tasks all call it.
It never imports Prefect.
"""

__version__ = "0.1.0"
