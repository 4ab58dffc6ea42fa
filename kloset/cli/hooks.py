"""Options that other installed packages add to `kloset source|destination|store import`.

The CLI knows nothing of what is installed beside it. A package that wants to act on an
imported remote declares an entry point in the group ``kloset.remote_import``: its name NAME
becomes an option ``--NAME VALUE`` of every `import` command, and once the remote is saved the
entry point is loaded and called as ``hook(remote, VALUE)``, returning a line to print.
prefect-kloset's ``--prefect-block`` is such a hook, so the engine never imports the layers
above it, and a hook's dependencies are imported only when its option is used.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated, Any

import typer

from koofrfs.rclone import KoofrRemote

GROUP = "kloset.remote_import"


class HookError(Exception):
    """A hook could not be loaded or failed; the message is one line for the user."""


@functools.cache
def installed() -> tuple[EntryPoint, ...]:
    """The hooks of every installed distribution, by name."""
    return tuple(sorted(entry_points(group=GROUP), key=lambda ep: ep.name))


def _help(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else ep.value
    return f"After saving, also hand the remote to {dist}'s {ep.name} hook, under this name."


def with_hook_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with one ``--NAME`` option per installed hook.

    `command` takes a keyword ``hooks``: {entry point: value} for the options given.
    """
    names = {f"hook_{i}": ep for i, ep in enumerate(installed())}

    def wrapper(**kwargs: Any) -> None:
        chosen = {ep: kwargs.pop(param) for param, ep in names.items()}
        command(**kwargs, hooks={ep: value for ep, value in chosen.items() if value})

    base = inspect.signature(command, eval_str=True)
    params = [p for p in base.parameters.values() if p.name != "hooks"]
    params += [
        inspect.Parameter(
            param,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None, typer.Option(f"--{ep.name}", metavar="NAME", help=_help(ep))
            ],
        )
        for param, ep in names.items()
    ]
    wrapper.__signature__ = base.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__name__, wrapper.__doc__ = command.__name__, command.__doc__
    return wrapper


def run(ep: EntryPoint, remote: KoofrRemote, value: str) -> str:
    """Load and call one hook; what it returns is printed."""
    try:
        hook = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin is one line, not a traceback
        raise HookError(f"--{ep.name}: cannot load {ep.value} ({exc})") from exc
    try:
        return str(hook(remote, value) or "")
    except Exception as exc:  # noqa: BLE001 - whatever the plugin raised
        text = str(exc).strip().splitlines()
        raise HookError(f"--{ep.name} {value}: {text[0] if text else type(exc).__name__}") from exc
