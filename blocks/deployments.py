"""``python -m blocks.deployments link``: make the UI's Run button work with the deployments'
blocks, after ``prefect deploy``.

prefect.yaml refers to blocks by name (``{"$ref": {"block_document_slug": "TYPE/NAME"}}``).
Runs resolve that fine, but the UI's run form only shows a block selected when it is
referenced by id, and its *Quick run* opens that form whenever the flow has required
parameters, even if the deployment gives them values. So, for each Kloset deployment, this
rewrites the block references to ids (still references: no secret is copied, and editing a
block takes effect on the next run) and drops from the deployment's parameter schema the
``required`` entries the deployment has values for. Run it again after every ``prefect
deploy`` (which rewrites both), and after deleting and re-creating a block (new id).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from blocks.commands import run_command

FLOW_PREFIX = "kloset-"  # the flows of this package: kloset-backup, kloset-verify, ...


async def _block_ids(client: Any, value: Any, missing: list[str]) -> Any:
    """`value` with every slug reference replaced by an id reference (recursively)."""
    if isinstance(value, list):
        return [await _block_ids(client, v, missing) for v in value]
    if not isinstance(value, dict):
        return value
    ref = value.get("$ref")
    if isinstance(ref, dict) and set(value) == {"$ref"} and "block_document_slug" in ref:
        from prefect.exceptions import ObjectNotFound

        slug = str(ref["block_document_slug"])
        block_type, _, name = slug.partition("/")
        try:
            doc = await client.read_block_document_by_name(
                name, block_type_slug=block_type, include_secrets=False
            )
        except ObjectNotFound:
            missing.append(slug)
            return value  # still resolved by name at run time, once the block exists
        return {"$ref": {"block_document_id": str(doc.id)}}
    return {k: await _block_ids(client, v, missing) for k, v in value.items()}


def ready_schema(schema: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameter schema without ``required`` entries the deployment gives values for."""
    required = [name for name in schema.get("required", []) if name not in parameters]
    fixed = {k: v for k, v in schema.items() if k != "required"}
    return {**fixed, "required": required} if required else fixed


async def alink(names: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
    """Link the deployments ``FLOW/NAME`` in `names` (default: every Kloset deployment).

    Returns (deployment, blocks not found) for each deployment updated.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    done = []
    async with get_client() as client:
        if names:
            deployments = [await client.read_deployment_by_name(n) for n in names]
        else:
            deployments = await client.read_deployments()
        flows = {f.id: f.name for f in await client.read_flows()}
        for dep in deployments:
            flow_name = flows.get(dep.flow_id, "")
            if not names and not flow_name.startswith(FLOW_PREFIX):
                continue
            missing: list[str] = []
            parameters = await _block_ids(client, dict(dep.parameters), missing)
            schema = ready_schema(dict(dep.parameter_openapi_schema or {}), parameters)
            await client.update_deployment(
                dep.id, DeploymentUpdate(parameters=parameters, parameter_openapi_schema=schema)
            )
            done.append((f"{flow_name}/{dep.name}", missing))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blocks.deployments",
        description="After `prefect deploy`: refer to blocks by id, so the UI's Quick run runs "
        "the deployment as it is and Custom run shows its blocks selected.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    link = verbs.add_parser("link", help="link the Kloset deployments (or the ones named)")
    link.add_argument("deployments", nargs="*", metavar="FLOW/NAME")
    args = parser.parse_args(argv)

    def act() -> Iterator[str]:
        for name, missing in asyncio.run(alink(args.deployments)):
            note = f" (not found, still by name: {', '.join(missing)})" if missing else ""
            yield f"linked {name}{note}"

    return run_command("blocks.deployments", act)


if __name__ == "__main__":
    sys.exit(main())
