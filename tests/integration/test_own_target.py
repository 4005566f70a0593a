"""The run swaps only onto its own, complete target.

Reproduces, on the real engine, a target deleted while a throttled ``_reindex`` copies into
it: the engine re-creates it on the copy's next bulk request with dynamic mappings and one
shard. The run must notice (the target's ``index.uuid`` is recorded when the run creates it
and checked at every poll), cancel its task, fail with one clear reason, and leave the
alias on the source."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from reindex_fsm.errors import ExitCode

from .conftest import (
    alias_snapshot,
    cli_argv,
    cli_env,
    cli_json,
    content_digest,
    reindex_tasks_under,
)
from .conftest import wait_for as shared_wait_for

pytestmark = pytest.mark.integration

N_DOCS = 5000
RPS = 500  # one slice: a 1000-document batch every ~2 s, the whole copy ~10 s
WAIT_S = 90.0


def wait_for(what: str, probe: Any) -> Any:
    return shared_wait_for(what, probe, timeout=WAIT_S, every=0.1)


def test_target_deleted_during_a_throttled_copy_fails_the_run_and_never_swaps(
    engine, engine_url, tmp_path, names, make_source
):
    make_source(N_DOCS)
    source_before = content_digest(engine, names.source)
    aliases_before = alias_snapshot(engine, names.prefix)
    planned_shards = engine.get_index(names.source).settings["index.number_of_shards"]
    assert planned_shards != "1"
    state_db = ("--state-db", str(tmp_path / "state.db"))
    start = subprocess.Popen(
        cli_argv(
            "start",
            "--alias",
            names.alias,
            "--target-index",
            names.target,
            "--requests-per-second",
            str(RPS),
            "--slices",
            "1",
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

        def first_batch_copied() -> bool:
            assert start.poll() is None, start.communicate()
            tasks = reindex_tasks_under(engine, names.target)
            return bool(tasks) and tasks[0].created > 0

        wait_for("the copy's first batch", first_batch_copied)
        engine.delete_index(names.target)  # someone else's DELETE, mid-copy
        out, err = start.communicate(timeout=WAIT_S)
    finally:
        if start.poll() is None:
            start.kill()
            start.communicate()

    printed = json.loads(out)
    assert start.returncode == ExitCode.RUN_FAILED, (start.returncode, printed, err)
    assert printed["state"] == "FAILED", printed
    assert f"target {names.target} was deleted during the copy" in printed["error"], printed
    # the alias never moved, the source holds what it held, no copy of ours still runs
    assert alias_snapshot(engine, names.prefix) == aliases_before
    assert content_digest(engine, names.source) == source_before
    assert reindex_tasks_under(engine, names.prefix) == []
    # whatever the engine re-created under the target's name is not the run's: left alone
    if engine.index_exists(names.target):
        made = engine.get_index(names.target)
        assert "reindex_fsm" not in (made.mappings.get("_meta") or {})
        assert made.settings["index.number_of_shards"] == "1"
    code, shown = cli_json("show", printed["run_id"], *state_db)
    assert code == 0 and shown["state"] == "FAILED", shown
    assert shown["failed_from"] == "REINDEXING", shown
