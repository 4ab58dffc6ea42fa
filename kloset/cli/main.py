"""Entry point of the `kloset` console script."""

from __future__ import annotations

import importlib
import os
import sys

import typer
from typer._click import exceptions as typer_click

from kloset import interrupts
from kloset.cli.app import app
from kloset.errors import KlosetError

# Each module registers its verbs on the shared apps when imported, under these top-level
# words. Only the modules of the word being run are imported: start-up is paid on every run.
_COMMAND_MODULES = {
    "kloset.cli.cmd_store": ("at",),
    "kloset.cli.cmd_backup": ("at",),
    "kloset.cli.cmd_restore": ("at",),
    "kloset.cli.cmd_lifecycle": ("at",),
    "kloset.cli.cmd_ui": ("at",),
    "kloset.cli.cmd_mount": ("at",),
    "kloset.cli.cmd_archive": ("at",),
    "kloset.cli.cmd_rewrite": ("at",),
    "kloset.cli.remotes_mount": ("source", "destination", "store"),
}


def _load_commands(argv: list[str] | None = None) -> None:
    """Import the verb modules `argv` needs (all of them for `--help`, no arguments or an
    unknown word). One that cannot be imported is a broken install: say so (a verb silently
    missing from `--help` would look like a typo on the user's side)."""
    word = argv[0] if argv else None
    known = {w for words in _COMMAND_MODULES.values() for w in words}
    for name, words in _COMMAND_MODULES.items():
        if word in known and word not in words:
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise SystemExit(
                f"kloset: broken installation: cannot import {name} ({exc}); "
                "reinstall prefect-kloset"
            ) from exc


# Options of `at` that may also stand after the verb (`at S backup SRC --limit-upload 512`).
_HOISTED = ("--passphrase-file", "--limit-upload", "--limit-download")


def _hoist_store_options(argv: list[str]) -> list[str]:
    """Let `--passphrase-file F` (and the bandwidth limits) stand anywhere after `at STORE`,
    not only before STORE.

    click stops parsing group options at the first positional (STORE), so the option is moved
    next to `at`, where the group reads it; every verb sees it through the store context.
    """
    if not argv or argv[0] != "at" or "--" in argv:
        return argv
    rest = list(argv[1:])
    hoisted: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in _HOISTED and i + 1 < len(rest):
            hoisted += rest[i : i + 2]
            del rest[i : i + 2]
            continue
        if arg.startswith(tuple(f"{name}=" for name in _HOISTED)):
            hoisted.append(arg)
            del rest[i]
            continue
        i += 1
    return ["at", *hoisted, *rest]


def _verb(argv: list[str]) -> str:
    """The verb of `kloset at STORE VERB ...` (or the top-level word), for messages."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _HOISTED:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    if len(words) >= 3 and words[0] == "at":
        return words[2]
    return words[0] if words else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every expected failure is one line on stderr and a non-zero exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    _load_commands(args)
    debug = bool(os.environ.get("KLOSET_DEBUG"))
    try:
        args = _hoist_store_options(args)
        interrupts.set_verb(_verb(args))
        # SIGINT/SIGTERM/SIGHUP: stop cleanly, one line, 130/143/129 (kloset.interrupts).
        with interrupts.handled():
            rv = app(args=args, prog_name="kloset", standalone_mode=False)
        return int(rv or 0) if isinstance(rv, int) else 0
    except interrupts.Interrupted as exc:
        interrupts.say()
        return exc.exit_code
    # Typer ≥ 0.20 vendors its own click: its exceptions are the only ones raised.
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("kloset: aborted", file=sys.stderr)
        return 130
    except typer_click.NoArgsIsHelpError as exc:
        exc.show()
        return 0
    except typer_click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "kloset"
        print(f"kloset: error: {_one_line(exc)} (see '{where} --help')", file=sys.stderr)
        return int(exc.exit_code)
    except typer_click.ClickException as exc:
        print(f"kloset: error: {_one_line(exc)}", file=sys.stderr)
        return int(exc.exit_code)
    except KlosetError as exc:
        if debug:
            raise
        print(f"kloset: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kloset: interrupted (the store is consistent; rerun to continue)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the user gets one line, developers KLOSET_DEBUG=1
        if debug:
            raise
        kind = type(exc).__name__
        mod = type(exc).__module__ or ""
        if mod.startswith("koofrfs") or isinstance(exc, OSError | ValueError):
            print(f"kloset: error: {_one_line(exc)}", file=sys.stderr)
        else:
            print(
                f"kloset: internal error ({kind}): {_one_line(exc)} (KLOSET_DEBUG=1 for details)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
