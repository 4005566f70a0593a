"""The gate before the swap, as verbs: ``swap RUN_ID`` lets a run that waits in VERIFIED
(``start --pause-before-swap``) through; what ``show`` presents of it is
:func:`reindex_fsm.steps.views.view`. No printing here (that is ``cli/gate.py``)."""

from __future__ import annotations

from typing import Any

from .api import Config, Outcome, holding_lease
from .machine import GATED
from .runner import RunDriver
from .steps import gate, views
from .store import RunRecord


def pending(cfg: Config, run_id: str) -> tuple[RunRecord, dict[str, Any] | None]:
    """The run and what its pause recorded (for the question ``swap`` asks); reads only.
    NotAtTheGate (exit 2) when the run does not wait at the gate."""
    record = cfg.repo(read_only=True).get(run_id)
    if record.state not in GATED:
        raise gate.NotAtTheGate(record.id, record.state.value, record.finished)
    return record, views.view(record)


def swap(cfg: Config, run_id: str, *, force_unlock: bool = False) -> Outcome:
    """Swap a run waiting at the gate: under its engine lease (taken again: the run's own
    from a process that is gone at once, another run's refused, LockHeld), check again what
    may have changed while it waited, then the swap of any run. Ends SWAPPED (exit 0), or
    FAILED / ROLLED_BACK when the check or the swap failed. A run that is not VERIFIED is
    refused before anything is opened on the engine (NotAtTheGate, exit 2)."""
    pending(cfg, run_id)
    return Outcome(holding_lease(cfg, run_id, RunDriver.swap_at_gate, force_unlock=force_unlock))
