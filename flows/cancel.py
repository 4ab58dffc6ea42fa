"""How a flow tells a cancel from a failure, and ends a cancelled run promptly.

A cancel from the UI or `prefect flow-run cancel` reaches a deployment's flow-run process as
SIGTERM, which Prefect turns into a `TerminationSignal` raised in the flow's main thread; the
runner sets the intent ``cancel`` on its control channel first. The flow's own `except` block
then stops its batches, releases the lock and publishes what was stored, and re-raises.

The runner marks the run Cancelled only some seconds after the process exited (it checks every
3 s, then starts a Python subprocess to look for ``on_cancellation`` hooks). The flow has done
all its cleanup by then, so it reports Cancelled itself, as Prefect's engine does for runs it
supervises alone; the runner's later proposal finds the run already Cancelled.
"""

from __future__ import annotations

from prefect.exceptions import TerminationSignal

CANCELLED = "CANCELLED"
INTERRUPTED = "INTERRUPTED"
FAILED = "FAILED"


def ended_by(exc: BaseException) -> str:
    """``CANCELLED`` (a Prefect cancel), ``INTERRUPTED`` (another signal) or ``FAILED``."""
    if not isinstance(exc, TerminationSignal | KeyboardInterrupt):
        return FAILED
    try:
        from prefect._internal.control_listener import get_intent

        intent = get_intent()
    except Exception:  # noqa: BLE001 - a Prefect without a control channel: a signal is all
        intent = None
    return CANCELLED if intent == "cancel" else INTERRUPTED


def confirm_cancelled(message: str) -> None:
    """Move this flow run to Cancelled now that its cleanup is done (best effort: the runner
    still finalises the run if this fails)."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.context import FlowRunContext
        from prefect.states import Cancelled

        ctx = FlowRunContext.get()
        if ctx is None or ctx.flow_run is None:
            return
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(ctx.flow_run.id, Cancelled(message=message), force=True)
    except Exception:  # noqa: BLE001 - never hide the cancel itself
        return
