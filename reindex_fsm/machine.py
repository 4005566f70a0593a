"""The run's state machine: states, the transition table and the guards. No I/O here.

The table names its callbacks by string; the model that drives a run
(:class:`reindex_fsm.runner.RunDriver`) supplies them. Every transition's
``before`` list ends with ``persist``, so the engine work of a step happens, and
is stored with the new state in one compare-and-set transaction, *before* the
in-memory state moves: if either raises, the machine stays where it was (see the
callback order table in the transitions README).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a machine is built: start-up of the CLI does not need it
    from transitions import Machine


class State(StrEnum):
    PLANNED = "PLANNED"
    TARGET_CREATED = "TARGET_CREATED"
    REINDEXING = "REINDEXING"
    VERIFYING = "VERIFYING"
    VERIFIED = "VERIFIED"  # --pause-before-swap: verified, waiting at the gate for `swap`
    SWAPPED = "SWAPPED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"
    ABORTING = "ABORTING"
    CANCELLED = "CANCELLED"
    UNDONE = "UNDONE"  # the aliases were moved back to the previous index after SWAPPED

    def __str__(self) -> str:
        return self.value


# States a run can move forward from; FAILED waits for a human (resume retries, abort cleans up).
ACTIVE: tuple[State, ...] = (
    State.PLANNED,
    State.TARGET_CREATED,
    State.REINDEXING,
    State.VERIFYING,
)
# Waits at the gate before the swap (--pause-before-swap): verified, the alias lock held, the
# write block as the policy says. Nothing moves it on by itself: `swap` does (SWAP_TRIGGER),
# after checking again what may have changed meanwhile; `abort` cleans up.
GATED: tuple[State, ...] = (State.VERIFIED,)
# Finished for good: the alias lock is released on entering one of these.
TERMINAL: frozenset[State] = frozenset(
    {State.SWAPPED, State.ROLLED_BACK, State.CANCELLED, State.UNDONE}
)
# Holds the alias: active, VERIFIED and FAILED runs.
UNFINISHED: frozenset[State] = frozenset(set(State) - TERMINAL)

# The forward trigger to fire from each active state.
NEXT_TRIGGER: dict[State, str] = {
    State.PLANNED: "create_target",
    State.TARGET_CREATED: "start_copy",
    State.REINDEXING: "copy_done",
    State.VERIFYING: "verified",
}
# What `swap RUN_ID` fires (and a resume of a run whose swap was asked for).
SWAP_TRIGGER: dict[State, str] = {State.VERIFIED: "swap"}
# A FAILED run is retried from the state it failed in, but a swap refused at the gate (the
# world changed while the run waited): from the verification, which pauses there again.
RETRIED_FROM: dict[State, State] = {State.VERIFIED: State.VERIFYING}


def retry_state(failed_from: State | None) -> State | None:
    """The state a resume of a run that failed in ``failed_from`` goes back to."""
    return None if failed_from is None else RETRIED_FROM.get(failed_from, failed_from)


def _t(trigger: str, source: Any, dest: State, *before: str, **kw: Any) -> dict[str, Any]:
    return {
        "trigger": trigger,
        "source": source,
        "dest": dest,
        "before": [*before, "persist"],
        **kw,
    }


TRANSITIONS: list[dict[str, Any]] = [
    _t("create_target", State.PLANNED, State.TARGET_CREATED, "step_create_target"),
    _t("start_copy", State.TARGET_CREATED, State.REINDEXING, "step_start_copy"),
    _t("copy_done", State.REINDEXING, State.VERIFYING, "step_wait_copy"),
    # --pause-before-swap: verified, then the gate (the first "verified" whose condition holds
    # is taken); the catch-up policy's block comes off for the wait (step_hold)
    _t(
        "verified",
        State.VERIFYING,
        State.VERIFIED,
        "step_verify",
        "step_hold",
        conditions="pauses_before_swap",
    ),
    _t("verified", State.VERIFYING, State.SWAPPED, "step_verify", "step_swap"),
    # swap RUN_ID: what may have changed while the run waited is checked again (and the
    # catch-up policy's final pass made) before the same swap step
    _t("swap", State.VERIFIED, State.SWAPPED, "step_recheck", "step_swap"),
    # A step failed for good: keep everything for a human to look at.
    _t("fail", [*ACTIVE, *GATED], State.FAILED),
    # Undo what the run wrote (cancel its task, delete its target); alias and source untouched.
    _t(
        "roll_back",
        [*ACTIVE, *GATED, State.FAILED, State.ABORTING],
        State.ROLLED_BACK,
        "step_rollback",
    ),
    # abort, first stored as intent: from here on every compare-and-set of a process still
    # driving the run fails, so it can neither record a failure nor start or swap anything.
    _t("request_abort", [*ACTIVE, *GATED, State.FAILED], State.ABORTING),
    # The operator aborted a run that had written nothing.
    _t(
        "cancel",
        State.ABORTING,
        State.CANCELLED,
        "step_release_block",
        conditions="nothing_written",
    ),
    # The alias is found on the run's own target (a swap made before a crash, or a run that
    # failed after its swap): the target is live, so the run is swapped whatever its stored
    # state. The swap's bookkeeping is finished (its record, task results, write block);
    # never a rollback then.
    _t(
        "record_swap",
        [State.VERIFYING, *GATED, State.FAILED, State.ABORTING],
        State.SWAPPED,
        "step_record_swap",
    ),
    # resume of a FAILED run (without rollback): go back to the step that failed
    # (retry_state: the verification for a swap refused at the gate).
    *[_t("retry", State.FAILED, s, conditions="failed_from_is_dest") for s in ACTIVE],
    # undo RUN_ID: every alias the swap moved goes back to the previous index, atomically.
    # The alias lock is taken again for it (repository.lock_for_undo) and released on UNDONE.
    _t("undo", State.SWAPPED, State.UNDONE, "step_undo"),
]


def build_machine(model: Any, initial: State) -> Machine:
    """Attach the run machine to ``model``, starting in ``initial`` (the stored state)."""
    from transitions import Machine

    return Machine(
        model=model,
        states=State,
        transitions=TRANSITIONS,
        initial=initial,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
        model_override=False,
    )
