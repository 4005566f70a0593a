"""The transition table on its own: what may move where, and that nothing else may."""

from __future__ import annotations

import pytest
from transitions import MachineError

from reindex_fsm.machine import ACTIVE, NEXT_TRIGGER, TERMINAL, TRANSITIONS, State, build_machine


class Model:
    """Records the callbacks the machine calls; every guard says yes unless told."""

    def __init__(self, failed_from=None, written=False):
        self.calls = []
        self.failed_from = failed_from
        self.written = written

    def __getattr__(self, name):
        if name.startswith("step_") or name == "persist":
            return lambda e: self.calls.append(name)
        raise AttributeError(name)

    def nothing_written(self, e):
        return not self.written

    def failed_from_is_dest(self, e):
        return self.failed_from == State(e.transition.dest)


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


@pytest.mark.parametrize("origin", [State.VERIFYING, State.FAILED, State.ABORTING])
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
