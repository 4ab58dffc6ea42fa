"""What does Prefect cost? `backup_flow` vs the `kloset` CLI on the same corpus and machine.

Usage::

    python bench/prefect_overhead.py [--corpus DIR] [--runners thread,process] [--workers N]

Starts a real ``prefect server`` (SQLite, its own PREFECT_HOME under the work directory) and
waits until it is healthy, so server start-up is *not* counted: a deployment's worker talks to
an already running server. Then, for each tool, a fresh store (created untimed, same KDF and
settings), a first backup of the corpus and an incremental one with nothing changed:

* ``cli``: ``kloset at STORE backup CORPUS`` (a child process, the overlapped multi-process
  pipeline);
* ``flow/<runner>``: ``backup_flow(CORPUS, store, task_runner=<runner>)`` in this process
  (flow run + tasks recorded by the server, artifacts, shared lock; ``verify_fraction=0``,
  so the verify task only walks the new snapshot's structure).

The corpus defaults to a one-time copy of this Python's site-packages (~55 k files, ~1 GiB),
which stays hot in the page cache for every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = Path("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages")
PASSPHRASE = "bench-passphrase-not-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A `prefect server` on 127.0.0.1; returns (process, API URL) once /api/health answers."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false")
    log = open(home.parent / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("prefect server did not start; see server.log")
        time.sleep(0.3)


def corpus_dir(work: Path, given: str | None) -> Path:
    """The given corpus, or a frozen copy of site-packages made once under `work`."""
    if given:
        return Path(given).resolve()
    corpus = work / "corpus"
    if not (work / "corpus.done").exists():
        shutil.rmtree(corpus, ignore_errors=True)
        print(f"copying {DEFAULT_SOURCE} -> {corpus} (once)", flush=True)
        shutil.copytree(DEFAULT_SOURCE, corpus, symlinks=True)
        (work / "corpus.done").write_text("ok\n")
    return corpus


def warm(corpus: Path) -> tuple[int, int]:
    """Read every file once so all tools run with a hot page cache; returns (files, bytes)."""
    files = nbytes = 0
    for dirpath, _dirs, names in os.walk(corpus):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    nbytes += len(block)
            files += 1
    return files, nbytes


def new_store(path: Path) -> None:
    from kloset.locations import open_storage
    from kloset.repository import Repository

    shutil.rmtree(path, ignore_errors=True)
    Repository.create(open_storage(str(path)), PASSPHRASE)


def time_cli(store: Path, corpus: Path, workers: int) -> float:
    env = dict(os.environ, KLOSET_PASSPHRASE=PASSPHRASE)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "kloset.cli.main", "at", str(store), "backup", str(corpus),
         "--workers", str(workers), "--json"],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def time_flow(store: Path, corpus: Path, runner: str, workers: int) -> tuple[float, int]:
    """(seconds, task runs) of one `backup_flow` run."""
    from pydantic import SecretStr

    from blocks import KlosetRepository
    from flows import backup_flow

    block = KlosetRepository(location=str(store), passphrase=SecretStr(PASSPHRASE))
    started = time.perf_counter()
    state = backup_flow(str(corpus), block, task_runner=runner, workers=workers,
                        verify_fraction=0.0, return_state=True)
    elapsed = time.perf_counter() - started
    if not state.is_completed():
        raise SystemExit(f"backup_flow failed: {state.message}")
    return elapsed, _task_runs(state.state_details.flow_run_id)


def _task_runs(flow_run_id: object) -> int:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def count() -> int:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return len(runs)

    return asyncio.run(count())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="directory to back up (default: copy of site-packages)")
    parser.add_argument("--work", default=str(HERE / ".work" / "prefect"), help="scratch dir")
    parser.add_argument("--runners", default="thread,process", help="flow task runners to time")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus = corpus_dir(work, args.corpus)
    files, nbytes = warm(corpus)
    print(f"corpus {corpus}: {files} files, {nbytes / 2**20:.0f} MiB; {args.workers} workers")

    home = Path(tempfile.mkdtemp(prefix="prefect-home-", dir=work))
    os.environ.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      PREFECT_LOGGING_LEVEL="WARNING")
    server, url = start_server(home)
    os.environ["PREFECT_API_URL"] = url
    rows: list[tuple[str, float, float, str]] = []
    try:
        store = work / "store-cli"
        new_store(store)
        first = time_cli(store, corpus, args.workers)
        again = time_cli(store, corpus, args.workers)
        rows.append(("cli", first, again, ""))
        print(f"cli: first {first:.1f} s, incremental {again:.1f} s", flush=True)
        for runner in [r for r in args.runners.split(",") if r]:
            store = work / f"store-{runner}"
            new_store(store)
            first_f, tasks1 = time_flow(store, corpus, runner, args.workers)
            again_f, tasks2 = time_flow(store, corpus, runner, args.workers)
            rows.append((f"flow/{runner}", first_f, again_f, f"{tasks1} / {tasks2}"))
            print(f"flow/{runner}: first {first_f:.1f} s ({tasks1} task runs), "
                  f"incremental {again_f:.1f} s ({tasks2} task runs)", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    base_first, base_again = rows[0][1], rows[0][2]
    print("\n| run | first backup | vs CLI | incremental (no change) | vs CLI | task runs |")
    print("|---|---|---|---|---|---|")
    for name, first, again, tasks in rows:
        print(f"| {name} | {first:.1f} s | {first / base_first:.2f}x | {again:.1f} s | "
              f"{again / base_again:.2f}x | {tasks or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
