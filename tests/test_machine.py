"""The transition table on its own: what may move where, and that nothing else may."""

from __future__ import annotations

import pytest
from transitions import MachineError

from reindex_fsm.machine import (
    ACTIVE,
    NEXT_TRIGGER,
    SWAP_TRIGGER,
    TERMINAL,
    TRANSITIONS,
    UNFINISHED,
    State,
    build_machine,
    retry_state,
)


class Model:
    """Records the callbacks the machine calls; every guard says yes unless told."""

    def __init__(self, failed_from=None, written=False, pauses=False):
        self.calls = []
        self.failed_from = failed_from
        self.written = written
        self.pauses = pauses

    def __getattr__(self, name):
        if name.startswith("step_") or name == "persist":
            return lambda e: self.calls.append(name)
        raise AttributeError(name)

    def nothing_written(self, e):
        return not self.written

    def failed_from_is_dest(self, e):
        return retry_state(self.failed_from) == State(e.transition.dest)

    def pauses_before_swap(self, e):
        return self.pauses


def allowed() -> set[tuple[State, str]]:
    out = set()
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        out |= {(State(s), t["trigger"]) for s in sources}
    return out


def test_happy_path_calls_step_then_persist():
    m = Model()
    build_machine(m, State.PLANNED)
    for state in (State.PLANNED, State.TARGET_CREATED, State.REINDEXING, State.VERIFYING):
        assert m.state is state
        m.trigger(NEXT_TRIGGER[state])
    assert m.state is State.SWAPPED
    assert m.calls == [
        "step_create_target",
        "persist",
        "step_start_copy",
        "persist",
        "step_wait_copy",
        "persist",
        "step_verify",
        "step_swap",
        "persist",
    ]


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("trigger", sorted({t["trigger"] for t in TRANSITIONS}))
def test_only_listed_transitions_exist(state, trigger):
    m = Model(failed_from=State.REINDEXING)
    build_machine(m, state)
    if (state, trigger) in allowed():
        m.trigger(trigger)
    else:
        with pytest.raises(MachineError):
            m.trigger(trigger)
        assert m.state is state


def test_no_auto_transitions_and_terminal_states_are_dead_ends():
    m = Model()
    build_machine(m, State.SWAPPED)
    assert not hasattr(m, "to_PLANNED")
    for state in TERMINAL:  # only a SWAPPED run can move on: undo
        leaving = {trigger for s, trigger in allowed() if s is state}
        assert leaving == ({"undo"} if state is State.SWAPPED else set())


def test_undo_calls_its_step_then_persist_and_ends_undone():
    m = Model()
    build_machine(m, State.SWAPPED)
    assert m.trigger("undo")
    assert m.state is State.UNDONE
    assert m.calls == ["step_undo", "persist"]


def test_failing_step_does_not_move_the_state():
    class Boom(Model):
        def step_swap(self, e):
            raise RuntimeError("engine said no")

    m = Boom()
    build_machine(m, State.VERIFYING)
    with pytest.raises(RuntimeError):
        m.verified()
    assert m.state is State.VERIFYING
    assert "persist" not in m.calls


@pytest.mark.parametrize("origin", ACTIVE)
def test_retry_returns_to_the_state_that_failed(origin):
    m = Model(failed_from=origin)
    build_machine(m, State.FAILED)
    assert m.retry()
    assert m.state is origin


def test_cancel_needs_nothing_written():
    m = Model(written=True)
    build_machine(m, State.ABORTING)
    assert not m.cancel()
    assert m.state is State.ABORTING
    m.written = False
    assert m.cancel()
    assert m.state is State.CANCELLED


@pytest.mark.parametrize("origin", [State.VERIFYING, State.VERIFIED, State.FAILED, State.ABORTING])
def test_a_swap_found_made_is_recorded_from_where_the_run_is(origin):
    m = Model()
    build_machine(m, origin)
    assert m.trigger("record_swap")
    assert m.state is State.SWAPPED
    assert m.calls == ["step_record_swap", "persist"]


@pytest.mark.parametrize("origin", [State.PLANNED, State.TARGET_CREATED, State.REINDEXING])
def test_no_swap_is_recorded_before_verification(origin):
    m = Model()
    build_machine(m, origin)
    with pytest.raises(MachineError):
        m.trigger("record_swap")


# -- the gate before the swap (--pause-before-swap) ---------------------------------------------


def test_a_run_that_pauses_stops_verified_and_the_swap_trigger_moves_it_on():
    m = Model(pauses=True)
    build_machine(m, State.PLANNED)
    while m.state in NEXT_TRIGGER:
        m.trigger(NEXT_TRIGGER[m.state])
    assert m.state is State.VERIFIED
    assert m.calls[-3:] == ["step_verify", "step_hold", "persist"]
    assert State.VERIFIED not in NEXT_TRIGGER  # nothing moves it on by itself
    m.calls.clear()
    assert m.trigger(SWAP_TRIGGER[State.VERIFIED])
    assert m.state is State.SWAPPED
    assert m.calls == ["step_recheck", "step_swap", "persist"]


def test_the_gate_holds_the_alias_and_is_left_only_by_swap_fail_abort_or_a_swap_found():
    assert State.VERIFIED in UNFINISHED and State.VERIFIED not in TERMINAL
    leaving = {
        (trigger, State(t["dest"]))
        for t in TRANSITIONS
        for trigger in [t["trigger"]]
        if State.VERIFIED in (t["source"] if isinstance(t["source"], list) else [t["source"]])
    }
    assert leaving == {
        ("swap", State.SWAPPED),
        ("fail", State.FAILED),
        ("roll_back", State.ROLLED_BACK),
        ("request_abort", State.ABORTING),
        ("record_swap", State.SWAPPED),
    }


def test_a_swap_that_fails_at_the_gate_is_retried_from_the_verification():
    m = Model(failed_from=State.VERIFIED)
    build_machine(m, State.VERIFIED)
    assert m.fail()
    assert m.state is State.FAILED
    assert m.retry()
    assert m.state is State.VERIFYING  # verified again, then (pausing) the gate again


def test_a_failing_recheck_does_not_move_the_run():
    class Boom(Model):
        def step_recheck(self, e):
            raise RuntimeError("target changed")

    m = Boom()
    build_machine(m, State.VERIFIED)
    with pytest.raises(RuntimeError):
        m.swap()
    assert m.state is State.VERIFIED
    assert m.calls == []


def test_abort_from_the_gate_rolls_back():
    m = Model(written=True)
    build_machine(m, State.VERIFIED)
    assert m.request_abort()
    assert not m.cancel()  # the target was written: a rollback, not a cancel
    assert m.roll_back()
    assert m.state is State.ROLLED_BACK
