"""``koofr-emulator`` console script: serve a directory as a Koofr account until interrupted."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType

from .emulator import KoofrEmulator
from .faults import FaultRule
from .mounts import PRESETS
from .sample import seed_sample_data


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals; other names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError("rate must be within [0, 1]")
    return rate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="koofr-emulator", description="Local emulator of the Koofr REST API."
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--root", help="data directory (default: a new temporary directory)")
    p.add_argument("--user", default="test@example.com", help="account email")
    p.add_argument("--password", default="test-password", help="application password")
    p.add_argument("--space-total-mib", type=int, default=10240, help="quota in MiB")
    p.add_argument(
        "--mounts",
        choices=sorted(PRESETS),
        default="personal",
        help="account layout: one primary mount, or a Business account with shares, a team "
        "and connected clouds (default personal)",
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument(
        "--fault-429-rate",
        type=_rate,
        default=0.0,
        help="fraction of requests answered 429 + Retry-After",
    )
    p.add_argument(
        "--fault-5xx-rate", type=_rate, default=0.0, help="fraction of requests answered 500"
    )
    p.add_argument(
        "--fault-drop-rate",
        type=_rate,
        default=0.0,
        help="fraction of requests whose connection is dropped",
    )
    p.add_argument(
        "--fault-path",
        default=None,
        help="regex limiting faults to matching Koofr paths / URL paths",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed for fault rates")
    p.add_argument(
        "--seed-sample-data",
        action="store_true",
        help="fill the mount with a small sample tree first",
    )
    p.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"koofr-emulator: refusing to listen on non-loopback host {args.host!r} "
            "(pass --allow-remote to override)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    root = args.root or tempfile.mkdtemp(prefix="koofr-emulator-")
    emu = KoofrEmulator(
        root,
        user=args.user,
        password=args.password,
        host=args.host,
        port=args.port,
        space_total_mib=args.space_total_mib,
        latency=args.latency,
        seed=args.seed,
        mounts=args.mounts,
    )
    for kind, status, rate in (
        ("status", 429, args.fault_429_rate),
        ("status", 500, args.fault_5xx_rate),
        ("drop", 0, args.fault_drop_rate),
    ):
        if rate > 0:
            emu.add_fault(
                FaultRule(
                    kind=kind,
                    status=status or 429,
                    rate=rate,
                    path_regex=args.fault_path,
                    retry_after=1.0 if status == 429 else None,
                )
            )
    if args.seed_sample_data:
        seed_sample_data(emu)
    emu.start()
    print(f"Koofr emulator listening on {emu.url}", flush=True)
    print(
        f"  root:     {emu.root}\n  user:     {emu.user}\n  password: {emu.password}\n"
        f"  mounts:   {', '.join(f'{v.spec.name} = {v.id}' for v in emu.views)}\n"
        f"  rclone:   type = koofr, provider = other, endpoint = {emu.url}, "
        "user = <user>, password = $(rclone obscure <password>)",
        flush=True,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
