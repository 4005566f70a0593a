"""Crash convergence on the fake: die at every checkpoint boundary, rebuild everything
from the database, resume; the end must equal an uninterrupted run's.

The boundaries are the crash points production code passes (after every engine call
that changes something, and after every commit), listed by running the scenario once
uninterrupted; each is then a test case. The fake cluster outlives the "process".
"""

from __future__ import annotations

from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, TARGET, make_cluster, make_config
from .test_write_policy import with_since_field


class SimulatedCrash(BaseException):
    """Process death: nothing in the tool may catch it."""


def _die(name: str) -> None:
    raise SimulatedCrash(name)


def _lossy(fake: FakeEngine) -> None:
    """Make verification fail: the target loses documents when refreshed."""
    original = fake.refresh

    def refresh(index: str) -> None:
        original(index)
        if index == TARGET:
            for doc_id in list(fake.indices[TARGET].docs)[:3]:
                del fake.indices[TARGET].docs[doc_id]

    fake.refresh = refresh  # type: ignore[method-assign]


SCENARIOS: dict[str, dict[str, Any]] = {
    "swap": {"options": RunOptions(verify=True), "end": State.SWAPPED, "lossy": False},
    "verify-fails-rollback": {
        "options": RunOptions(verify=True, rollback_on_failure=True),
        "end": State.ROLLED_BACK,
        "lossy": True,
    },
    # no writer (the fake's time does not move on a crash), so every catch-up pass is
    # empty: the crash points of the passes, the final block and the deletion check
    # a composable template adding a setting, a field and the live alias to the target's
    # name: the run's own template is put, the target created, the template deleted
    "templates": {"options": RunOptions(verify=True), "end": State.SWAPPED, "lossy": False},
    "catch-up": {
        "options": RunOptions(verify=True, write_policy="catch-up", since_field="updated_at"),
        "end": State.SWAPPED,
        "lossy": False,
    },
}


def _cluster(scenario: str) -> FakeEngine:
    fake = make_cluster(n_docs=1200)
    fake.task_script = TaskScript(docs_per_poll=500)
    if scenario == "catch-up":
        with_since_field(fake)
    if SCENARIOS[scenario]["lossy"]:
        _lossy(fake)
    if scenario == "templates":
        fake.add_composable_template(
            "documents-template",
            {
                "index_patterns": ["documents-*"],
                "priority": 100,
                "template": {
                    "settings": {"index.max_result_window": 123},
                    "mappings": {"properties": {"from_template": {"type": "keyword"}}},
                    "aliases": {"documents": {}},
                },
            },
        )
    return fake


def _outcome(fake: FakeEngine, state: State) -> dict[str, Any]:
    snap = fake.snapshot()
    for index in snap.values():  # run IDs are random: compare everything else
        meta = index["mappings"].get("_meta", {}).get("reindex_fsm")
        if meta:
            meta["run_id"] = "<run>"
    return {"state": state, "indices": snap, "templates": dict(fake.composable_templates)}


def _uninterrupted(scenario: str, tmp: str) -> tuple[list[str], dict[str, Any]]:
    fake = _cluster(scenario)
    points = Crashpoints()
    cfg = make_config(fake, f"sqlite:///{tmp}/clean.db", crash=lambda: points)
    rec = api.start(cfg, ALIAS, SCENARIOS[scenario]["options"]).record
    return points.seen, _outcome(fake, rec.state)


def _points(scenario: str) -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        seen, _ = _uninterrupted(scenario, tmp)
    return seen


# The catch-up scenario's boundaries double the count: they run with the slow tests (the
# full suite), the unit suite keeps the swap and rollback scenarios.
CASES = [
    pytest.param(
        scenario,
        k,
        id=f"{scenario}-{k:02d}-{name}",
        marks=[pytest.mark.slow] if scenario == "catch-up" else [],
    )
    for scenario in SCENARIOS
    for k, name in enumerate(_points(scenario), start=1)
]


def _crash_then_resume(scenario: str, tmp_path: Any, crash_at: list[int]) -> dict[str, Any]:
    fake = _cluster(scenario)
    db = f"sqlite:///{tmp_path}/state.db"
    first = make_config(fake, db, crash=lambda: Crashpoints(crash_at[0], _die))
    with pytest.raises(SimulatedCrash):
        api.start(first, ALIAS, SCENARIOS[scenario]["options"])
    for k in [*crash_at[1:], None]:
        # a new process: new Config, new repository, same database file, same cluster
        again = make_config(fake, db, crash=(lambda k=k: Crashpoints(k, _die)) if k else None)
        (rec,) = again.repo().list()
        if rec.finished:  # died after the last commit: nothing left to resume
            break
        if k is None:
            rec = api.resume(again, rec.id).record
        else:
            with pytest.raises(SimulatedCrash):
                api.resume(again, rec.id)
    assert again.repo().active_run_for(ALIAS) is None
    return _outcome(fake, rec.state)


def test_there_are_enough_boundaries():
    seen = _points("swap")
    for state in ("PLANNED", "TARGET_CREATED", "REINDEXING", "VERIFYING", "SWAPPED"):
        assert f"commit.{state}" in seen
    assert {"create_target.engine_done", "start_copy.engine_done", "swap.engine_done"} <= set(seen)
    assert "rollback.engine_done" in _points("verify-fails-rollback")
    assert {"write_policy.blocked", "write_policy.released"} <= set(seen)
    assert {"create_target.template_put", "create_target.template_deleted"} <= set(
        _points("templates")
    )
    catch_up = set(_points("catch-up"))
    assert {"catch_up.pass_started", "write_policy.blocked"} <= catch_up


@pytest.mark.parametrize(("scenario", "crash_at"), CASES)
def test_crash_at_boundary_converges(scenario, crash_at, tmp_path):
    _, expected = _uninterrupted(scenario, str(tmp_path))
    assert expected["state"] is SCENARIOS[scenario]["end"]
    got = _crash_then_resume(scenario, tmp_path, [crash_at])
    assert got == expected
    if expected["state"] is State.SWAPPED:
        assert got["indices"][TARGET]["docs"] == got["indices"][SOURCE]["docs"]


@pytest.mark.parametrize("crash_at", [(2, 3), (4, 1), (6, 2), (9, 2), (11, 1)], ids=str)
def test_two_crashes_in_a_row_converge(crash_at, tmp_path):
    _, expected = _uninterrupted("swap", str(tmp_path))
    assert _crash_then_resume("swap", tmp_path, list(crash_at)) == expected
