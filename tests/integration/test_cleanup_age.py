"""cleanup --older-than on the real engine: the age is the engine's own index creation
date; with --keep, only what is beyond the newest N and older than the age goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reindex_fsm import api
from reindex_fsm.machine import State

from .conftest import cli_json, options

pytestmark = pytest.mark.integration


def test_cleanup_older_than_reads_the_engine_s_creation_dates(engine, cfg, names, make_source):
    make_source(300)
    runs = [api.start(cfg, names.alias, options()).record for _ in range(3)]
    assert all(r.state is State.SWAPPED for r in runs)
    earlier = runs[0].target_index  # runs[1].target_index is undo's, runs[2]'s is live
    code, dry = cli_json(
        "cleanup", "--alias", names.alias, "--older-than", "30m", "--dry-run",
        "--state-db", cfg.state_db, "--engine-url", cfg.engine_url,
    )  # fmt: skip
    assert code == 0
    rows = {r["index"]: r for r in dry["indices"]}
    assert rows[earlier]["action"] == "keep"  # made seconds ago
    assert rows[earlier]["reason"].startswith("not older than 30m (created ")
    created = datetime.fromisoformat(rows[earlier]["created"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600  # the engine's date
    later = datetime.now(UTC) + timedelta(hours=1)
    cfg.now = lambda: later  # an hour on: they are all older than 30m
    listed = api.cleanup(cfg, names.alias, None, dry_run=True, older_than="30m")
    assert {r.index: r.action for r in listed if r.index == earlier} == {earlier: "delete"}
    done = api.cleanup(cfg, names.alias, 1, older_than="2h")  # none older than 2h
    assert not [r for r in done if r.action == "deleted"]
    done = api.cleanup(cfg, names.alias, None, older_than="30m")
    assert [r.index for r in done if r.action == "deleted"] == [earlier]
    assert not engine.index_exists(earlier)
    assert engine.index_exists(runs[1].target_index) and engine.index_exists(runs[2].target_index)
