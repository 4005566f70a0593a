"""``abort`` after someone else changed the world during the run, on the real engine: it
puts no alias where nobody wants it, touches nothing it does not own, and always ends
the run (lock released).

Each run is started through the library with a crash-point action that does what the
other actor does, at an exact moment (right after the copy started); abort, resume,
history and show are then run through the CLI."""

from __future__ import annotations

import contextlib
import json

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import EngineError, ExitCode, UndoRefused
from reindex_fsm.machine import State

from .conftest import (
    SMALL_DOCS,
    cli_json,
    make_config,
    options,
    raw,
    reindex_tasks_under,
    run_cli,
)

pytestmark = pytest.mark.integration

RPS = 20  # after its first batch the copy waits, until the test lets it go


def unthrottle(engine, prefix: str) -> None:
    for task in reindex_tasks_under(engine, prefix):
        with contextlib.suppress(EngineError):
            engine.rethrottle(task.task_id, float("inf"))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_finished_and_unlocked(db: str, run_id: str, state: str) -> dict:
    code, shown = cli_json("show", run_id, "--state-db", db)
    assert code == ExitCode.OK and shown["state"] == state, shown
    code, runs = cli_json("history", "--state-db", db)
    assert code == ExitCode.OK and [r["state"] for r in runs] == [state]
    return shown


def test_abort_after_someone_moved_the_alias_leaves_it_where_they_put_it(
    engine, engine_url, tmp_path, names, make_source
):
    make_source()
    other = names("other")
    engine.create_index(other, {"index.number_of_shards": 1, "index.number_of_replicas": 0}, {})

    def someone_moves_the_alias(_point: str) -> None:
        engine.update_aliases(
            [
                {"remove": {"index": names.source, "alias": names.alias}},
                {"add": {"index": other, "alias": names.alias, "is_write_index": True}},
            ]
        )

    moving = lambda: Crashpoints(at="commit.REINDEXING", action=someone_moves_the_alias)  # noqa: E731
    cfg = make_config(tmp_path, engine_url, crash=moving)
    failed = api.start(cfg, names.alias, options(target_index=names.target)).record
    assert failed.state is State.FAILED and "someone moved it" in failed.error, failed.error
    db = str(tmp_path / "state.db")

    result = run_cli("abort", failed.id, "--state-db", db, "--engine-url", engine_url)

    assert result.returncode == ExitCode.OK, result.stderr
    assert "moved by someone else" in result.stderr and other in result.stderr
    assert sorted(engine.get_alias(names.alias)) == [other]  # one index: theirs
    assert engine.get_index_aliases(names.source) == {}  # not put back on the source
    assert not engine.index_exists(names.target)  # the run's own target: deleted
    source_settings = engine.get_index(names.source).settings
    assert source_settings.get("index.blocks.write") != "true"  # the run's block lifted
    shown = assert_finished_and_unlocked(db, failed.id, "ROLLED_BACK")
    rollback = shown["events"][-1]["detail"]
    assert other in rollback["aliases_left"][names.alias]
    # the alias is free: a new start plans (on the index the alias is on now)
    code, planned = cli_json(
        "start", "--alias", names.alias, "--dry-run", "--state-db", db, "--engine-url", engine_url
    )
    assert code == ExitCode.OK and planned["source_index"] == other, planned


@pytest.fixture
def failed_after_source_deleted(engine, engine_url, tmp_path, names, make_source):
    """A run whose source was deleted while it copied: it failed, the target is there."""
    make_source(SMALL_DOCS)

    def someone_deletes_the_source(_point: str) -> None:
        engine.delete_index(names.source)
        unthrottle(engine, names.prefix)

    deleting = lambda: Crashpoints(at="commit.REINDEXING", action=someone_deletes_the_source)  # noqa: E731
    cfg = make_config(tmp_path, engine_url, crash=deleting)
    opts = options(target_index=names.target, requests_per_second=RPS)
    rec = api.start(cfg, names.alias, opts).record
    assert rec.state is State.FAILED, (rec.state, rec.error)
    assert engine.index_exists(names.target) and not engine.index_exists(names.source)
    return rec, str(tmp_path / "state.db")


def test_source_deleted_mid_copy_resume_says_so_and_abort_finishes_the_run(
    engine, engine_url, names, failed_after_source_deleted
):
    rec, db = failed_after_source_deleted
    resumed = run_cli("resume", rec.id, "--state-db", db, "--engine-url", engine_url)
    assert resumed.returncode == ExitCode.RUN_FAILED, resumed.stderr
    (line,) = error_lines(resumed.stderr)
    assert f"source index {names.source} no longer exists" in line
    assert f"reindex-fsm abort {rec.id}" in line
    assert engine.index_exists(names.target)  # resume changed nothing

    result = run_cli("abort", rec.id, "--state-db", db, "--engine-url", engine_url)

    assert result.returncode == ExitCode.OK, result.stderr
    assert not engine.index_exists(names.target)
    assert engine.get_alias(names.alias) == {}  # went with its index; nothing added
    assert not engine.index_exists(names.source)
    assert_finished_and_unlocked(db, rec.id, "ROLLED_BACK")
    # the lock is gone: a new start gets as far as finding no alias (exit 2, not 7)
    started = run_cli(
        "start", "--alias", names.alias, "--dry-run", "--state-db", db, "--engine-url", engine_url
    )
    assert started.returncode == ExitCode.USAGE, started.stderr
    assert "does not exist" in started.stderr


def test_source_made_again_under_its_name_is_not_the_run_s_to_touch(
    engine, engine_url, names, failed_after_source_deleted
):
    rec, db = failed_after_source_deleted
    # someone creates an empty index of the old name, write-blocked
    engine.create_index(
        names.source, {"index.number_of_shards": 1, "index.number_of_replicas": 0}, {}
    )
    engine.add_write_block(names.source)
    resumed = run_cli("resume", rec.id, "--state-db", db, "--engine-url", engine_url, "--json")
    assert resumed.returncode == ExitCode.RUN_FAILED, resumed.stderr
    assert "created again" in json.loads(resumed.stdout)["error"]

    result = run_cli("abort", rec.id, "--state-db", db, "--engine-url", engine_url)

    assert result.returncode == ExitCode.OK, result.stderr
    assert "created again" in result.stderr  # the alias is not restored, and it says why
    assert engine.get_alias(names.alias) == {}  # not attached to the new, empty index
    assert engine.get_index_aliases(names.source) == {}
    assert engine.get_index(names.source).settings.get("index.blocks.write") == "true"
    assert not engine.index_exists(names.target)
    assert_finished_and_unlocked(db, rec.id, "ROLLED_BACK")


def test_undo_finds_an_update_in_place_through_the_alias(engine, cfg, names, make_source):
    """The swap's marks on a real engine: a document updated in place through the alias
    (same count) is found by undo; an untouched target is not reported as changed (the
    primaries' max_seq_no does not move by itself after the swap: replicas back, refresh)."""
    make_source(300)
    rec = api.start(cfg, names.alias, options(target_index=names.target)).record
    assert rec.state is State.SWAPPED
    assert rec.swap_record["before_swap"]["max_seq_no"], rec.swap_record
    engine.refresh(names.target)
    assert engine.max_seq_nos(names.target) == rec.swap_record["before_swap"]["max_seq_no"]

    (hit,) = engine.search(names.alias, {"size": 1, "query": {"match_all": {}}})["hits"]["hits"]
    raw(engine, "PUT", f"/{names.alias}/_doc/{hit['_id']}", {**hit["_source"], "title": "new"})
    assert engine.count(names.target) == 300
    with pytest.raises(UndoRefused, match="written to since the swap"):
        api.undo(cfg, rec.id)
    assert list(engine.get_alias(names.alias)) == [names.target]

    again = api.start(cfg, names.alias, options(target_index=names("second"))).record
    assert again.state is State.SWAPPED
    assert api.undo(cfg, again.id).state is State.UNDONE  # nothing written: no refusal
    assert list(engine.get_alias(names.alias)) == [names.target]
