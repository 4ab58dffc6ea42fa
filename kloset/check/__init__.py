"""Checking a store: is everything the snapshots need there, and is it intact?

The structure check (`structure`) reads CONFIG, the index, the snapshot headers and every tree
reachable from them (each distinct tree once), and lists the packs. Reading data (`data`) then
downloads whole packs, checks each against its name (the unkeyed BLAKE3 of its content) and
opens every blob in it. Damage is reported by object name and traced back to the snapshots and
paths that use it (`damage`), so the user knows exactly what a damaged pack costs.
"""

from kloset.check.report import CheckReport, parse_subset, select_packs
from kloset.check.run import check_store, verify_snapshot

__all__ = ["CheckReport", "check_store", "parse_subset", "select_packs", "verify_snapshot"]
