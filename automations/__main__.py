"""``python -m automations install --notify-block TYPE/NAME [--overdue-after 26h]`` | ``remove``.

Talks to the Prefect server of the current profile (``PREFECT_API_URL``); errors are one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from automations.install import install, parse_duration, remove
from blocks.commands import run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m automations",
        description="Install prefect-kloset's automations (backup failed, backup overdue, "
        "check found damage) into the current Prefect server.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("install", help="create or replace the automations")
    add.add_argument(
        "--notify-block",
        required=True,
        metavar="TYPE/NAME",
        help="notification block to send to, e.g. slack-webhook/ops, custom-webhook/ops, "
        "sendgrid-email/ops (or its id)",
    )
    add.add_argument(
        "--overdue-after",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="alert when no backup completed for this long (default 26h; e.g. 50h, 90m)",
    )
    verbs.add_parser("remove", help="delete the automations")
    args = parser.parse_args(argv)

    def act() -> Iterator[str]:
        if args.verb == "install":
            for name, automation_id in install(args.notify_block, args.overdue_after).items():
                yield f"installed automation {name} ({automation_id})"
        else:
            yield from (f"removed automation {name}" for name in remove())

    return run_command("automations", act)


if __name__ == "__main__":
    sys.exit(main())
