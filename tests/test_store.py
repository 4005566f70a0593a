"""The state database: real Alembic migrations on a temporary database, compare-and-set
transitions, the event history and the per-alias lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from reindex_fsm.config import resolve_state_db
from reindex_fsm.errors import LockHeld, RunNotFound, StaleState, StateStoreError
from reindex_fsm.machine import State
from reindex_fsm.store import _migrations_config, open_store, redact_state_db

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


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_concurrent_transitions_one_wins_the_other_is_stale(state_db):
    """Two connections race PLANNED -> TARGET_CREATED: the second waits for the first's
    transaction and then finds the state changed (PostgreSQL re-checks the WHERE of an UPDATE
    on a row another transaction changed, under its default READ COMMITTED)."""
    first, second = open_store(state_db), open_store(state_db)
    first.create(new_run())
    outcome: list[BaseException | None] = []

    def race() -> None:
        try:
            second.transition("r1", State.PLANNED, State.TARGET_CREATED, "create_target")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with first.engine.begin() as conn:  # the first transition, not committed yet
        first._cas(conn, "r1", State.PLANNED, {"state": State.TARGET_CREATED.value})
        racer = threading.Thread(target=race)
        racer.start()
        racer.join(0.5)
        assert outcome == []  # it cannot have gone through while the first is open
    racer.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], StaleState)
    assert outcome[0].actual == "TARGET_CREATED"
    assert [e.to_state for e in second.events("r1")] == ["PLANNED"]  # no second event


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_concurrent_creates_take_the_alias_lock_once(state_db):
    repos = [open_store(state_db) for _ in range(4)]
    barrier = threading.Barrier(len(repos))
    outcome: dict[str, BaseException | None] = {}

    def create(i: int) -> None:
        barrier.wait()
        try:
            repos[i].create(new_run(f"r{i}"))
            outcome[f"r{i}"] = None
        except BaseException as exc:
            outcome[f"r{i}"] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(repos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [run_id for run_id, exc in outcome.items() if exc is None]
    assert len(winners) == 1, outcome
    assert all(isinstance(e, LockHeld | StateStoreError) for e in outcome.values() if e)
    assert repos[0].active_run_for("documents").id == winners[0]
    assert [r.id for r in repos[0].list()] == winners  # the losers left no row behind


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_json_columns_and_aware_datetimes_round_trip(state_db):
    repo = open_store(state_db)
    repo.create(new_run())
    policy = {"block": {"index": "documents-v1", "by": "r1"}, "passes": [1, 2], "ok": True}
    verification = {"compared": 10, "differ": [], "sample": {"ids": ["a", "é"]}}
    repo.checkpoint("r1", State.PLANNED, write_policy=policy, verification=verification)
    rec = open_store(state_db).get("r1")
    assert rec.write_policy == policy and rec.verification == verification
    assert rec.options == {"verify": True}
    assert rec.created_at.utcoffset().total_seconds() == 0


@pytest.mark.postgres
def test_postgres_store_makes_no_file_and_never_shows_the_password(postgres_server, tmp_path):
    url = make_url(postgres_server)
    wrong = url.set(password="not-the-s3cret").render_as_string(hide_password=False)
    with pytest.raises(StateStoreError) as err:
        open_store(wrong)
    assert "not-the-s3cret" not in str(err.value) and "@" not in str(err.value)
    via_query = url.set(password=None).update_query_dict({"password": "qs-s3cret"})
    shown = redact_state_db(via_query.render_as_string(hide_password=False))
    assert "qs-s3cret" not in shown and shown.startswith("postgresql+psycopg://127.0.0.1:")
    assert "s3cret" not in redact_state_db(wrong)
    assert list(tmp_path.iterdir()) == []  # nothing SQLite-like was created anywhere here


@pytest.mark.postgres
@pytest.mark.slow  # four Python processes
@pytest.mark.parametrize("state_db", ["postgres"], indirect=True)
def test_first_use_by_several_processes_at_once_migrates_once(state_db, tmp_path):
    """Operators sharing a new PostgreSQL database may all start at once: one migrates,
    the others wait for it and find the schema there."""
    code = (
        "import os, sys, time\n"
        "from reindex_fsm.store import open_store\n"
        "print('ready', flush=True)\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
        "open_store(sys.argv[1])\n"
    )
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, state_db, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    assert [p.stdout.readline() for p in procs] == ["ready\n"] * 4  # all imported
    go.touch()  # then all open the new database at once
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    assert results == [(0, "")] * 4
    repo = open_store(state_db)
    repo.create(new_run())
    assert [e.to_state for e in repo.events("r1")] == ["PLANNED"]
