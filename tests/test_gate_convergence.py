"""Crash convergence through the gate, on the fake: ``start --pause-before-swap`` and then
``swap``, killed at every crash point either passes (listed by running both once
uninterrupted); then each way an operator ends it from there, in new processes:

* ``swap``: resume until the run waits at the gate (a start killed before it), then swap;
* ``resume``: resume to the end (a swap that was asked for is carried on; a run that
  reaches the gate again is then swapped);
* ``abort``: rolled back, the alias and the source as before (unless the kill came after
  the alias moved: then the swap is recorded, never undone by an abort).

The swap and resume ends must equal the uninterrupted run's (every index, its documents,
settings, aliases and blocks); the abort end must leave the source as it was.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest

from reindex_fsm import api, gate
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import SwappedNotRolledBack
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.views import approved
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, TARGET, make_cluster, make_config
from .test_write_policy import with_since_field

SCENARIOS = {
    "block": RunOptions(verify=True, pause_before_swap=True),
    "catch-up": RunOptions(
        verify=True, pause_before_swap=True, write_policy="catch-up", since_field="updated_at"
    ),
}


class Killed(BaseException):
    """The process died at a crash point: nothing in the tool may catch it."""


def _die(name: str) -> None:
    raise Killed(name)


def _cluster(scenario: str) -> FakeEngine:
    fake = make_cluster(n_docs=120)
    fake.task_script = TaskScript(docs_per_poll=50)
    if scenario == "catch-up":
        with_since_field(fake)
    return fake


def _snapshot(fake: FakeEngine) -> dict[str, Any]:
    snap = fake.snapshot()
    for index in snap.values():  # run IDs are random: compare everything else
        meta = index["mappings"].get("_meta", {}).get("reindex_fsm")
        if meta:
            meta["run_id"] = "<run>"
    return snap


class Counter:
    """Crash points numbered across the processes of one schedule (start, then swap)."""

    def __init__(self, at: int | None) -> None:
        self.at, self.n = at, 0

    def hit(self, name: str) -> None:
        self.n += 1
        if self.n == self.at:
            _die(name)

    def points(self) -> Crashpoints:
        return _Counted(self)


class _Counted(Crashpoints):
    def __init__(self, counter: Counter) -> None:
        super().__init__(None)
        self.counter = counter

    def __call__(self, name: str) -> None:
        self.seen.append(name)
        self.counter.hit(name)


def _schedule(fake: FakeEngine, db: str, scenario: str, at: int | None) -> str | None:
    """start, then swap, killed at the ``at``-th crash point of the two; the run's ID
    (None: killed before it was stored)."""
    counter = Counter(at)
    cfg = lambda: make_config(fake, db, crash=counter.points)  # noqa: E731
    with contextlib.suppress(Killed):
        api.start(cfg(), ALIAS, SCENARIOS[scenario])
    runs = cfg().repo().list()
    if not runs:
        return None
    (run,) = runs
    if run.state is State.VERIFIED and counter.n < (at or 10**9):
        with contextlib.suppress(Killed):
            gate.swap(cfg(), run.id)
    return run.id


def _points(scenario: str, tmp: str) -> int:
    fake = _cluster(scenario)
    counter = Counter(None)
    db = f"sqlite:///{tmp}/count.db"
    cfg = lambda: make_config(fake, db, crash=counter.points)  # noqa: E731
    record = api.start(cfg(), ALIAS, SCENARIOS[scenario]).record
    assert gate.swap(cfg(), record.id).record.state is State.SWAPPED
    return counter.n


_EXPECTED: dict[str, dict[str, Any]] = {}  # per scenario, once per test process


def _uninterrupted(scenario: str, tmp: Any) -> dict[str, Any]:
    if scenario in _EXPECTED:
        return copy.deepcopy(_EXPECTED[scenario])
    fake = _cluster(scenario)
    run_id = _schedule(fake, f"sqlite:///{tmp}/clean.db", scenario, None)
    assert run_id is not None
    _EXPECTED[scenario] = _snapshot(fake)
    return copy.deepcopy(_EXPECTED[scenario])


def _finish(fake: FakeEngine, db: str, run_id: str, how: str) -> State:
    """End the run as an operator would, each command in a new process."""
    for _ in range(4):
        cfg = make_config(fake, db)
        record = cfg.repo().get(run_id)
        if record.finished:
            return record.state
        if how == "abort":
            try:
                return api.abort(cfg, run_id).record.state
            except SwappedNotRolledBack:  # killed after the alias moved: recorded SWAPPED
                return cfg.repo().get(run_id).state
        if record.state is State.VERIFIED and (how == "swap" or not approved(record)):
            gate.swap(cfg, run_id)
        else:
            api.resume(cfg, run_id)
    return make_config(fake, db).repo().get(run_id).state


def _cases() -> list[Any]:
    import tempfile

    out = []
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            n = _points(scenario, tmp)
        for k in range(1, n + 1):
            for how in ("swap", "resume", "abort"):
                # the catch-up scenario's cases, and the block scenario's resume cases, run
                # with the slow tests (the full suite): the unit suite keeps swap and abort
                slow = scenario == "catch-up" or how == "resume"
                marks = [pytest.mark.slow] if slow else []
                out.append(
                    pytest.param(scenario, k, how, id=f"{scenario}-{k:02d}-{how}", marks=marks)
                )
    return out


@pytest.mark.parametrize(("scenario", "at", "how"), _cases())
def test_a_kill_anywhere_through_the_gate_converges(scenario, at, how, tmp_path):
    expected = _uninterrupted(scenario, tmp_path)
    fake = _cluster(scenario)
    before = copy.deepcopy(_snapshot(fake))
    db = f"sqlite:///{tmp_path}/state.db"
    run_id = _schedule(fake, db, scenario, at)
    if run_id is None:  # killed before the run was stored: nothing written
        assert _snapshot(fake) == before
        return
    end = _finish(fake, db, run_id, how)
    assert make_config(fake, db).repo().active_run_for(ALIAS) is None
    if how != "abort" or end is State.SWAPPED:
        assert end is State.SWAPPED
        assert _snapshot(fake) == expected
        assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
        return
    assert end in (State.ROLLED_BACK, State.CANCELLED)
    got = _snapshot(fake)
    assert got == before, "abort left the cluster changed"
