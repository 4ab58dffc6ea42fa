"""Install the shipped automations into a Prefect server, wired to one notification block.

The files hold everything but the block (its id differs per server) and the overdue window
(26 h, or ``--overdue-after``). Installing twice replaces the automations of the same names,
so editing a file and installing again is how they are updated.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from automations import FILES

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_PROACTIVE_SECONDS = 10  # the server refuses shorter proactive windows


def parse_duration(text: str) -> float:
    """``26h``, ``90m``, ``10s``, ``1d`` or plain seconds → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 26h, 90m or 600)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < MIN_PROACTIVE_SECONDS:
        raise ValueError(f"the overdue window must be at least {MIN_PROACTIVE_SECONDS} s")
    return seconds


def load(directory: Path = FILES) -> list[dict[str, Any]]:
    """The automation documents of ``*.yaml`` in `directory`, sorted by file name."""
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.yaml"))]


def prepare(
    docs: list[dict[str, Any]], block_id: UUID, overdue_after: float | None = None
) -> list[Any]:
    """Validated `AutomationCore` objects: every notification goes to `block_id`, and a
    proactive trigger waits `overdue_after` seconds (when given)."""
    from prefect.events.schemas.automations import AutomationCore

    ready = []
    for doc in docs:
        doc = {**doc, "trigger": dict(doc["trigger"])}
        doc["actions"] = [
            {**a, "block_document_id": str(block_id)} if a.get("type") == "send-notification"
            else a
            for a in doc["actions"]
        ]  # fmt: skip
        if overdue_after is not None and doc["trigger"].get("posture") == "Proactive":
            doc["trigger"]["within"] = overdue_after
        ready.append(AutomationCore.model_validate(doc))
    return ready


async def resolve_block(client: Any, block: str) -> UUID:
    """The id of a notification block given as ``TYPE/NAME`` (e.g. ``slack-webhook/ops``)
    or as its id."""
    try:
        return UUID(block)
    except ValueError:
        pass
    block_type, sep, name = block.partition("/")
    if not sep or not name:
        raise ValueError(f"--notify-block wants TYPE/NAME, e.g. slack-webhook/ops, not {block!r}")
    from prefect.exceptions import ObjectNotFound

    try:
        document = await client.read_block_document_by_name(
            name, block_type_slug=block_type, include_secrets=False
        )
    except ObjectNotFound:
        raise ValueError(f"no block {block} on this Prefect server: create it first") from None
    return UUID(str(document.id))


async def ainstall(
    block: str, overdue_after: float | None = None, directory: Path = FILES
) -> dict[str, UUID]:
    """Create (or replace) every automation of `directory`; returns {name: id}."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        block_id = await resolve_block(client, block)
        installed: dict[str, UUID] = {}
        for automation in prepare(load(directory), block_id, overdue_after):
            for old in await client.read_automations_by_name(automation.name):
                await client.delete_automation(old.id)
            installed[automation.name] = await client.create_automation(automation)
    return installed


async def aremove(directory: Path = FILES) -> list[str]:
    """Delete the automations named in `directory`; returns the names that existed."""
    from prefect.client.orchestration import get_client

    removed = []
    async with get_client() as client:
        for doc in load(directory):
            found = await client.read_automations_by_name(doc["name"])
            for old in found:
                await client.delete_automation(old.id)
            if found:
                removed.append(doc["name"])
    return removed


def install(block: str, overdue_after: float | None = None) -> dict[str, UUID]:
    """Blocking form of `ainstall`."""
    return asyncio.run(ainstall(block, overdue_after))


def remove() -> list[str]:
    """Blocking form of `aremove`."""
    return asyncio.run(aremove())
