"""Prefect automations of prefect-kloset, shipped as YAML files next to this module.

* ``backup-failed.yaml``: a backup failed (``kloset.backup.failed``);
* ``backup-overdue.yaml``: no backup of a source into a store completed for 26 h (proactive);
* ``check-failed.yaml``: a check found damage (``kloset.check.failed``).

Each notifies through a Prefect notification block (Slack, e-mail, a custom webhook...).
Install or update them with one command (`automations.install`)::

    python -m automations install --notify-block slack-webhook/ops
"""

from __future__ import annotations

from pathlib import Path

FILES = Path(__file__).resolve().parent

__all__ = ["FILES"]
