"""``abort`` of a run that is copying: its reindex task is cancelled, its target deleted,
the aliases untouched; the ``start`` process driving it exits too.

Two tests pin bugs found here, deterministically: abort racing the process that drives
the run (fixed by storing the abort as intent first, ABORTING), and a resume that then
swapped onto an auto-created index (fixed: the copy never writes into a missing target)."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State

from .conftest import (
    alias_snapshot,
    cli_argv,
    cli_env,
    cli_json,
    make_config,
    options,
    reindex_tasks_under,
)
from .conftest import wait_for as shared_wait_for

pytestmark = pytest.mark.integration

# More than one 1000-document batch at 20 documents/s: after its first batch the copy
# waits ~50 s before the next one, so the run stays in REINDEXING while the test acts.
N_DOCS = 3000
RPS = 20
WAIT_S = 60.0


def wait_for(what: str, probe: Any, timeout: float = WAIT_S, every: float = 0.2) -> Any:
    return shared_wait_for(what, probe, timeout=timeout, every=every)


def test_abort_during_reindexing_cancels_the_copy_and_rolls_back(
    engine, engine_url, tmp_path, names, make_source
):
    make_source(N_DOCS)
    aliases_before = alias_snapshot(engine, names.prefix)
    db = str(tmp_path / "state.db")
    state_db = ("--state-db", db)
    start = subprocess.Popen(
        cli_argv(
            "start",
            "--alias",
            names.alias,
            "--target-index",
            names.target,
            "--requests-per-second",
            str(RPS),
            "--force",
            "--json",
            *state_db,
            "--engine-url",
            engine_url,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:

        def run_id() -> str | None:
            code, runs = cli_json("history", *state_db)
            assert start.poll() is None, start.communicate()
            return runs[0]["run_id"] if code == 0 and runs else None

        rid = wait_for("the run to be stored", run_id)

        def reindexing() -> dict[str, Any] | None:
            code, shown = cli_json("show", rid, *state_db)
            assert code == 0, shown
            assert shown["state"] in ("PLANNED", "TARGET_CREATED", "REINDEXING"), shown
            # its first batch copied: the copy now waits, and the start process only polls
            copied = (shown["progress"] or {}).get("created", 0)
            return shown if shown["state"] == "REINDEXING" and copied > 0 else None

        shown = wait_for("REINDEXING with a first batch copied", reindexing)
        task_id = shown["task_id"]
        assert task_id
        task = engine.get_task(task_id)
        assert task is not None and not task.completed, task
        assert engine.index_exists(names.target)

        # The start process keeps polling while abort runs: abort stores its intent
        # (ABORTING) first, so the start cannot record a failure in between.
        code, aborted = cli_json("abort", rid, *state_db, "--engine-url", engine_url)

        assert code == ExitCode.OK, aborted
        assert aborted["state"] == "ROLLED_BACK"
        # the task: cancelled and awaited (the rollback's event says so, below), its stored
        # result then deleted (GET _tasks/<id> is a 404), and no copy of ours runs
        assert engine.get_task(task_id) is None
        assert reindex_tasks_under(engine, names.prefix) == []
        # the target gone, the aliases as they were
        assert not engine.index_exists(names.target)
        assert alias_snapshot(engine, names.prefix) == aliases_before
        assert engine.count(names.alias) == N_DOCS

        # the start process notices (task cancelled, state moved) and exits by itself
        out, err = start.communicate(timeout=WAIT_S)
    finally:
        if start.poll() is None:
            start.kill()
            start.communicate()
    assert start.returncode == ExitCode.ROLLED_BACK, err
    printed = json.loads(out)
    assert printed["run_id"] == rid and printed["state"] == "ROLLED_BACK", printed

    code, final = cli_json("show", rid, *state_db)
    assert code == 0 and final["state"] == "ROLLED_BACK"
    assert [(e["from"], e["to"]) for e in final["events"]][-2:] == [
        ("REINDEXING", "ABORTING"),
        ("ABORTING", "ROLLED_BACK"),
    ]
    rollback = final["events"][-1]["detail"]
    assert rollback[f"task {task_id}"] == "cancelled"
    assert rollback["task_results"][task_id] == "deleted"
    assert final["progress"]["created"] < N_DOCS
    # nothing is left to abort
    code, again = cli_json("abort", rid, *state_db, "--engine-url", engine_url)
    assert code == ExitCode.USAGE, again


def test_abort_racing_the_start_that_sees_its_task_cancelled(
    engine, engine_url, tmp_path, names, make_source
):
    """Deterministic version of the race: abort waits, right after cancelling the task,
    until the driving ``start`` has seen the cancellation (as a poll landing there does)."""
    make_source(N_DOCS)
    aliases_before = alias_snapshot(engine, names.prefix)
    watch_cfg = make_config(tmp_path, engine_url)  # its own database connections
    run: dict[str, str] = {}

    def start_saw_the_cancel(_point: str) -> None:
        wait_for(
            "the start to record FAILED",
            lambda: watch_cfg.repo().get(run["id"]).state is not State.REINDEXING,
            timeout=15,
            every=0.05,
        )

    start_cfg = make_config(tmp_path, engine_url)
    abort_cfg = make_config(
        tmp_path,
        engine_url,
        crash=lambda: Crashpoints(at="rollback.cancel_sent", action=start_saw_the_cancel),
    )
    # Opened (and migrated) here, one after the other: Alembic's upgrade is not thread-safe.
    for cfg in (watch_cfg, start_cfg, abort_cfg):
        cfg.repo()
    started: dict[str, Any] = {}
    quick = options(target_index=names.target, requests_per_second=RPS, poll_interval_s=0.05)
    driver = threading.Thread(
        target=lambda: started.update(outcome=api.start(start_cfg, names.alias, quick)),
        daemon=True,
    )
    driver.start()
    try:
        record = wait_for(
            "REINDEXING",
            lambda: next((r for r in api.history(watch_cfg) if r.state is State.REINDEXING), None),
        )
        run["id"] = record.id
        outcome = api.abort(abort_cfg, record.id)
    finally:
        driver.join(timeout=WAIT_S)
    if driver.is_alive() or "outcome" not in started:
        pytest.fail("the start thread did not end with an outcome")
    # the target is deleted and the aliases untouched in any case ...
    assert not engine.index_exists(names.target)
    assert alias_snapshot(engine, names.prefix) == aliases_before
    # ... but the run should say so, and abort should succeed
    assert outcome.record.state is State.ROLLED_BACK, (outcome.record.state, outcome.record.error)
    assert outcome.exit_code == ExitCode.OK


def test_resume_of_a_failed_copy_whose_target_is_gone_does_not_swap_onto_an_auto_created_index(
    engine, engine_url, tmp_path, names, make_source
):
    n_docs = make_source()

    def cancel_own_copy(_point: str) -> None:
        (task,) = reindex_tasks_under(engine, names.prefix)
        engine.cancel_task(task.task_id)
        wait_for("the cancel", lambda: engine.get_task(task.task_id).completed, every=0.05)

    # throttled so that the copy is still running when it is cancelled
    opts = options(verify=True, target_index=names.target, requests_per_second=RPS)
    cancelling = lambda: Crashpoints(at="commit.REINDEXING", action=cancel_own_copy)  # noqa: E731
    crashing = make_config(tmp_path, engine_url, crash=cancelling)
    failed = api.start(crashing, names.alias, opts).record
    if failed.state is not State.FAILED or failed.failed_from is not State.REINDEXING:
        pytest.fail(f"setup: expected FAILED from REINDEXING, got {failed.state}: {failed.error}")
    engine.delete_index(names.target)  # what the abort race leaves behind

    def unthrottle(_point: str) -> None:  # the retry copies at full speed
        for task in reindex_tasks_under(engine, names.prefix):
            engine.rethrottle(task.task_id, float("inf"))

    resuming = lambda: Crashpoints(at="start_copy.engine_done", action=unthrottle)  # noqa: E731
    rec = api.resume(make_config(tmp_path, engine_url, crash=resuming), failed.id).record

    on_alias = list(engine.get_alias(names.alias))
    if rec.state is State.SWAPPED:
        assert on_alias == [names.target]
        definition = engine.get_index(names.target)
        assert definition.mappings.get("_meta", {}).get("reindex_fsm", {}).get("run_id") == rec.id
        assert definition.mappings["properties"]["comments"]["type"] == "nested"
        assert definition.settings["index.number_of_shards"] == "3"
        assert engine.count(names.alias) == n_docs
    else:
        assert on_alias == [names.source]
