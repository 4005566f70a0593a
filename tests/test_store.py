"""The state database: real Alembic migrations on a temporary database, compare-and-set
transitions, the event history and the per-alias lock."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect

from reindex_fsm.errors import LockHeld, RunNotFound, StaleState, StateStoreError
from reindex_fsm.machine import State
from reindex_fsm.store import _migrations_config, open_store, resolve_state_db

from .conftest import STORES


def new_run(run_id="r1", alias="documents"):
    return {
        "id": run_id,
        "alias": alias,
        "source_index": f"{alias}-v1",
        "target_index": f"{alias}-v2",
        "options": {"verify": True},
        "plan": {},
        "engine_url": "http://localhost:9200",
        "engine_flavor": "opensearch",
        "engine_version": "2.19.1",
        "source_count": 10,
    }


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_migrations_create_the_schema_and_downgrade_cleanly(state_db):
    repo = open_store(state_db)
    insp = inspect(repo.engine)
    assert {"runs", "run_events", "alias_locks", "alembic_version"} <= set(insp.get_table_names())
    cfg = _migrations_config()
    with repo.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(repo.engine).get_table_names()) == {"alembic_version"}
    open_store(state_db)  # upgrades again
    assert "runs" in inspect(repo.engine).get_table_names()


def test_sqlite_file_mode_0600(tmp_path):
    open_store(str(tmp_path / "sub" / "s.db"))
    assert (os.stat(tmp_path / "sub" / "s.db").st_mode & 0o777) == 0o600


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_transition_is_compare_and_set_with_one_event(state_db):
    repo = open_store(state_db)
    repo.create(new_run())
    rec = repo.transition(
        "r1", State.PLANNED, State.TARGET_CREATED, "create_target", {"x": 1}, task_id=None
    )
    assert rec.state is State.TARGET_CREATED
    with pytest.raises(StaleState) as err:
        repo.transition("r1", State.PLANNED, State.TARGET_CREATED, "create_target")
    assert err.value.actual == "TARGET_CREATED"
    events = repo.events("r1")
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "PLANNED"),
        ("PLANNED", "TARGET_CREATED"),
    ]
    assert events[1].detail == {"x": 1}


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_stale_transition_writes_nothing(state_db):
    repo = open_store(state_db)
    repo.create(new_run())
    with pytest.raises(StaleState):
        repo.transition("r1", State.VERIFYING, State.SWAPPED, "verified", task_id="t")
    assert repo.get("r1").task_id is None
    assert len(repo.events("r1")) == 1


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_one_unfinished_run_per_alias_and_release_on_terminal(state_db):
    repo = open_store(state_db)
    repo.create(new_run("r1"))
    with pytest.raises(LockHeld) as err:
        repo.create(new_run("r2"))
    assert err.value.run_id == "r1"
    assert repo.find("r2") is None  # nothing half-written
    repo.create(new_run("r3", alias="other"))  # another alias is free
    repo.transition("r1", State.PLANNED, State.FAILED, "fail")
    with pytest.raises(LockHeld):  # FAILED still holds the alias
        repo.create(new_run("r2"))
    repo.transition("r1", State.FAILED, State.ROLLED_BACK, "roll_back")
    assert repo.get("r1").finished_at is not None
    repo.create(new_run("r2"))
    assert repo.active_run_for("documents").id == "r2"


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_checkpoint_keeps_state_and_rejects_unknown_columns(state_db):
    repo = open_store(state_db)
    repo.create(new_run())
    rec = repo.checkpoint("r1", State.PLANNED, copy_attempts=1, progress={"created": 5})
    assert rec.state is State.PLANNED and rec.progress == {"created": 5}
    with pytest.raises(ValueError):
        repo.checkpoint("r1", State.PLANNED, finished_at=None)
    with pytest.raises(StaleState):
        repo.checkpoint("r1", State.REINDEXING, copy_attempts=2)


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_list_filters_and_order(state_db):
    repo = open_store(state_db)
    times = iter([datetime(2026, 1, d, tzinfo=UTC) for d in range(1, 10)])
    repo.now = lambda: next(times)
    repo.create(new_run("a", alias="x"))
    repo.create(new_run("b", alias="y"))
    repo.transition("a", State.PLANNED, State.CANCELLED, "cancel")
    assert [r.id for r in repo.list()] == ["b", "a"]
    assert [r.id for r in repo.list(alias="x")] == ["a"]
    assert [r.id for r in repo.list(state=State.CANCELLED)] == ["a"]
    assert [r.id for r in repo.list(since=datetime(2026, 1, 2, tzinfo=UTC))] == ["b"]
    assert repo.get("a").created_at.tzinfo is not None


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_unknown_run(state_db):
    with pytest.raises(RunNotFound):
        open_store(state_db).get("nope")


def test_state_db_resolution(monkeypatch):
    monkeypatch.delenv("REINDEX_FSM_STATE_DB", raising=False)
    assert resolve_state_db(None) == "sqlite:///state/reindex_fsm.db"
    assert resolve_state_db("/tmp/x.db") == "sqlite:////tmp/x.db"
    monkeypatch.setenv("REINDEX_FSM_STATE_DB", "postgresql://u@h/db")
    assert resolve_state_db(None) == "postgresql://u@h/db"
    assert resolve_state_db("sqlite:///a.db") == "sqlite:///a.db"


def test_bad_database_url_is_a_clear_error():
    with pytest.raises(StateStoreError):
        open_store("notadb://what")
