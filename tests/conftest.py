"""Suite-wide setup: isolate every test run from the user's home, Prefect profile and config."""

from __future__ import annotations

import importlib.util
import os
import tempfile

_SANDBOX = tempfile.mkdtemp(prefix="kloset-tests-")
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
