"""A faithful local emulator of Koofr's REST API (``/api/v2`` + ``/content/api/v2``).

Wire reference: ``/work/shared/koofr-api.md``; every assumption about the real service that
is not confirmed there lives in :mod:`koofr_emulator.behaviour`.

    from koofr_emulator import KoofrEmulator, FaultRule
    with KoofrEmulator(tmp_path) as emu:
        emu.add_fault(FaultRule(kind="status", status=429, count=1, route="files/list"))
        ...  # point a client at emu.url with emu.user / emu.password
"""

from .emulator import KoofrEmulator
from .faults import FaultRule
from .sample import seed_sample_data

__all__ = ["FaultRule", "KoofrEmulator", "seed_sample_data"]
