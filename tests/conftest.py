"""Suite-wide setup: isolate every test run from the user's home, Prefect profile and config.

Everything a run writes goes below one sandbox directory, removed when the session ends: it
is the temp dir of this process (pytest's `tmp_path` included) and, through TMPDIR, of every
process the tests start (servers, workers, chromium, Dask). ``KLOSET_KEEP_TMP=1`` keeps it
for a post-mortem.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile

import pytest

_SANDBOX = tempfile.mkdtemp(prefix="kloset-tests-")
tempfile.tempdir = _SANDBOX
os.environ["TMPDIR"] = _SANDBOX
# Set before anything imports Prefect or reads the kloset config.
os.environ.setdefault("PREFECT_HOME", os.path.join(_SANDBOX, "prefect-home"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("KLOSET_CONFIG_DIR", os.path.join(_SANDBOX, "kloset-config"))
os.environ.setdefault("XDG_CACHE_HOME", os.path.join(_SANDBOX, "cache"))
os.environ.pop("KLOSET_PASSPHRASE", None)

pytest_plugins = (
    ["koofr_emulator.pytest_plugin"]
    if importlib.util.find_spec("koofr_emulator.pytest_plugin") is not None
    else []
)


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("KLOSET_KEEP_TMP", "") not in ("", "0"):
        print(f"\nkloset tests: temporary files kept in {_SANDBOX}", file=sys.stderr)
        return
    shutil.rmtree(_SANDBOX, ignore_errors=True)
