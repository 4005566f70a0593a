"""Operations on the fake engine: transforms, undo, cleanup, rethrottle and task records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode, LockHeld, UndoRefused, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.runner import RunDriver
from reindex_fsm.steps.transforms import load_script
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, SOURCE, TARGET, db_rows, make_config
from .test_cli import invoke


def copying(cfg, options: RunOptions) -> RunDriver:
    """A run planned and stored as start does, driven up to REINDEXING (copy started)."""
    p = api.plan(cfg, ALIAS, options)
    engine = cfg.engine()
    record = cfg.repo().create(
        {
            "id": p.run_id,
            "alias": ALIAS,
            "source_index": p.source_index,
            "target_index": p.target_index,
            "options": options.to_dict(),
            "plan": p.to_dict(),
            "engine_url": engine.url,
            "engine_flavor": "opensearch",
            "engine_version": "2.19.1",
            "source_count": p.source_count,
        }
    )
    driver = RunDriver(api._context(cfg, engine, record))
    driver._fire("create_target")
    driver._fire("start_copy")
    assert driver.record.state is State.REINDEXING
    return driver


# -- transforms ------------------------------------------------------------------------------


def test_pipeline_and_script_reach_the_reindex_body_also_on_a_restarted_copy(cfg, fake):
    fake.pipelines["enrich"] = {"processors": []}
    script = {"source": "ctx._source.n = 1", "lang": "painless"}
    driver = copying(cfg, RunOptions(pipeline="enrich", script=script))
    assert driver.record.plan["reindex"]["dest"]["pipeline"] == "enrich"
    assert driver.record.plan["reindex"]["script"] == script
    fake.vanish_task(driver.record.task_id)  # the copy starts again
    assert driver.drive().state is State.SWAPPED
    assert len(fake.tasks) == 2
    for task in fake.tasks.values():
        assert task.request.pipeline == "enrich" and task.request.script == script
        assert task.request.body()["dest"]["pipeline"] == "enrich"


def test_missing_pipeline_is_refused_before_any_write(cfg, fake, state_db):
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(UsageError, match="pipeline 'nope' does not exist"):
        api.start(cfg, ALIAS, RunOptions(pipeline="nope"))
    assert fake.snapshot() == before and db_rows(state_db) == rows
    assert "create_index" not in fake.call_names()


def test_transforms_are_refused_with_recompute(cfg, fake):
    with pytest.raises(UsageError, match="not to --recompute-embeddings"):
        api.plan(cfg, ALIAS, RunOptions(recompute_embeddings=True, script={"source": "x"}))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("ctx._source.x = 1\n", {"source": "ctx._source.x = 1\n", "lang": "painless"}),
        ('{"source": "ctx._source.x = params.v", "params": {"v": 2}}', None),
    ],
)
def test_load_script(tmp_path: Path, content: str, expected: dict | None) -> None:
    path = tmp_path / "s"
    path.write_text(content)
    assert load_script(str(path)) == (expected or json.loads(content))


@pytest.mark.parametrize("content", ["", "  \n", "{not json", '{"lang": "painless"}', '{"x": 1}'])
def test_bad_script_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "s"
    path.write_text(content)
    with pytest.raises(UsageError, match="--script file"):
        load_script(str(path))


def test_unreadable_script_is_exit_2_and_nothing_stored(cfg, fake, state_db, tmp_path):
    rows = db_rows(state_db)
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--script", str(tmp_path / "no"))
    assert result.exit_code == ExitCode.USAGE
    assert "cannot read --script file" in result.stderr
    assert db_rows(state_db) == rows


# -- undo ----------------------------------------------------------------------------------


def swapped(cfg) -> str:
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED
    return rec.id


def test_undo_moves_every_alias_back_atomically(cfg, fake):
    aliases = dict(fake.indices[SOURCE].aliases)
    run_id = swapped(cfg)
    rec = api.undo(cfg, run_id)
    assert rec.state is State.UNDONE
    assert fake.indices[SOURCE].aliases == aliases
    assert fake.indices[TARGET].aliases == {}
    assert TARGET in fake.indices  # kept for cleanup
    assert fake.call_names(mutating_only=True).count("update_aliases") == 2  # swap, undo
    assert cfg.repo().active_run_for(ALIAS) is None
    with pytest.raises(UndoRefused, match="only a SWAPPED run"):  # UNDONE is final
        api.undo(cfg, run_id)


class Killed(BaseException):
    """Stands for SIGKILL at a crash point."""


@pytest.mark.parametrize("point", ["undo.engine_done", "commit.UNDONE"])
def test_undo_killed_at_any_point_converges_when_run_again(fake, state_db, point):
    aliases = dict(fake.indices[SOURCE].aliases)
    run_id = swapped(make_config(fake, state_db))

    def kill(name: str) -> None:
        raise Killed(name)

    dying = make_config(fake, state_db, crash=lambda: Crashpoints(at=point, action=kill))
    with pytest.raises(Killed):
        api.undo(dying, run_id)
    assert fake.indices[SOURCE].aliases == aliases  # the request was made before the kill
    cfg = make_config(fake, state_db)
    if point == "undo.engine_done":  # the lock is still held: a start names the undo
        with pytest.raises(LockHeld) as held:
            api.start(cfg, ALIAS, RunOptions())
        assert f"reindex-fsm undo {run_id}" in held.value.one_line()
        calls = len(fake.calls)
        assert api.undo(cfg, run_id).state is State.UNDONE
        assert "update_aliases" not in [c.method for c in fake.calls[calls:]]
        assert cfg.repo().events(run_id)[-1].detail["resumed"]
    else:  # stored already: nothing left to do
        with pytest.raises(UndoRefused, match="it is UNDONE"):
            api.undo(cfg, run_id)
    assert cfg.repo().get(run_id).state is State.UNDONE
    assert cfg.repo().active_run_for(ALIAS) is None
    assert fake.indices[SOURCE].aliases == aliases and fake.indices[TARGET].aliases == {}


@pytest.mark.parametrize("why", ["gone", "closed", "moved"])
def test_undo_refused_with_the_reason_and_nothing_changed(cfg, fake, state_db, why):
    run_id = swapped(cfg)
    if why == "gone":
        fake.delete_index(SOURCE)
    elif why == "closed":
        fake.indices[SOURCE].closed = True
    else:
        fake.add_index("documents-other")
        fake.update_aliases(
            [
                {"remove": {"index": TARGET, "alias": ALIAS}},
                {"add": {"index": "documents-other", "alias": ALIAS}},
            ]
        )
    before, rows = fake.snapshot(), db_rows(state_db)
    result = invoke(cfg, "undo", run_id, "--yes")
    assert result.exit_code == ExitCode.UNDO_REFUSED == 14
    expected = {"gone": "no longer exists", "closed": "is closed", "moved": "no longer on"}[why]
    assert expected in result.stderr and result.stderr.startswith("error: ")
    assert fake.snapshot() == before and db_rows(state_db) == rows


def test_undo_refused_while_another_run_holds_the_alias(cfg, fake, state_db):
    run_id = swapped(cfg)
    fake.indices[TARGET].aliases[ALIAS]  # the alias is on the first run's target
    other = copying(cfg, RunOptions())
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(UndoRefused, match=f"run {other.record.id} \\(REINDEXING\\) is active"):
        api.undo(cfg, run_id)
    assert fake.snapshot() == before and db_rows(state_db) == rows


def test_undo_of_a_run_not_swapped_is_refused(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.FAILED
    with pytest.raises(UndoRefused, match="it is FAILED"):
        api.undo(cfg, rec.id)


def test_undo_needs_force_when_the_target_got_writes_after_the_swap(cfg, fake):
    run_id = swapped(cfg)
    fake.bulk([{"_index": TARGET, "_id": "new", "_source": {"title": "late"}}])
    with pytest.raises(UndoRefused, match="writes made since then"):
        api.undo(cfg, run_id)
    assert cfg.repo().active_run_for(ALIAS) is None  # the lock was given back
    rec = api.undo(cfg, run_id, force=True)
    assert rec.state is State.UNDONE
    detail = cfg.repo().events(run_id)[-1].detail
    assert detail["target_count_now"] == detail["target_count_at_swap"] + 1
    assert "warning" in detail


# -- rethrottle ---------------------------------------------------------------------------


def test_rethrottle_changes_the_running_task_and_a_restarted_copy_keeps_it(cfg, fake):
    driver = copying(cfg, RunOptions(requests_per_second=10))
    run_id, first = driver.record.id, driver.record.task_id
    assert fake.tasks[first].rps == 10
    out = api.rethrottle(cfg, run_id, 250.0)  # as from another process
    assert out == {"run_id": run_id, "task_id": first, "requests_per_second": 250.0}
    assert fake.tasks[first].rps == 250.0
    assert cfg.repo().get(run_id).options["requests_per_second"] == 250.0
    fake.vanish_task(first)  # the copy starts again: at the stored rate
    assert driver.drive().state is State.SWAPPED
    (second,) = [t for t in fake.tasks if t != first]
    assert fake.tasks[second].rps == 250.0
    assert [e.trigger for e in cfg.repo().events(run_id)].count("rethrottled") == 1


def test_rethrottle_unlimited_is_stored_as_no_rate(cfg, fake):
    driver = copying(cfg, RunOptions(requests_per_second=10))
    out = api.rethrottle(cfg, driver.record.id, None)
    assert out["requests_per_second"] == "unlimited"
    assert fake.tasks[driver.record.task_id].rps == -1.0
    assert cfg.repo().get(driver.record.id).options["requests_per_second"] is None


def test_rethrottle_refusals(cfg, fake):
    with pytest.raises(Exception) as exc:
        api.rethrottle(cfg, "nope", 5.0)
    assert exc.value.exit_code == ExitCode.RUN_NOT_FOUND
    run_id = swapped(cfg)
    with pytest.raises(UsageError, match="no running copy: it is SWAPPED"):
        api.rethrottle(cfg, run_id, 5.0)


def test_rethrottle_refuses_a_recompute_run(cfg, fake):
    repo = cfg.repo()
    p = api.plan(cfg, ALIAS, RunOptions())
    record = repo.create(
        {
            "id": p.run_id,
            "alias": ALIAS,
            "source_index": SOURCE,
            "target_index": p.target_index,
            "options": RunOptions(recompute_embeddings=True).to_dict(),
            "plan": p.to_dict(),
            "engine_url": fake.url,
            "engine_flavor": "opensearch",
            "engine_version": "2.19.1",
        }
    )
    repo.transition(record.id, State.PLANNED, State.TARGET_CREATED, "create_target")
    repo.transition(record.id, State.TARGET_CREATED, State.REINDEXING, "start_copy")
    with pytest.raises(UsageError, match="no _reindex task to rethrottle"):
        api.rethrottle(cfg, record.id, 5.0)
    assert "rethrottle" not in fake.call_names()


@pytest.mark.parametrize("value", ["0", "-5", "fast", "inf"])
def test_rethrottle_rate_must_be_positive(cfg, value):
    result = invoke(cfg, "rethrottle", "abc", value)
    assert result.exit_code == ExitCode.USAGE and "not a positive number" in result.stderr


def test_rethrottle_minus_one_means_unlimited(cfg, fake):
    driver = copying(cfg, RunOptions(requests_per_second=10))
    result = invoke(cfg, "rethrottle", driver.record.id, "-1", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["requests_per_second"] == "unlimited"


# -- cleanup --------------------------------------------------------------------------------


def test_cleanup_keeps_live_foreign_and_newest_deletes_the_rest(cfg, fake):
    ids = []
    for _ in range(4):  # four runs: each swaps the alias to a newer index
        ids.append(swapped(cfg))
    targets = [cfg.repo().get(i).target_index for i in ids]
    # A foreign index named like ours, with a copied _meta of one of our runs.
    fake.add_index(f"{ALIAS}-20990101000000", mappings=fake.indices[targets[0]].mappings)
    dry = api.cleanup(cfg, ALIAS, keep=1, dry_run=True)
    verdicts = {r.index: r.action for r in dry}
    assert verdicts == {
        targets[3]: "keep",  # live
        targets[2]: "keep",  # newest earlier one (undo target)
        targets[1]: "delete",
        targets[0]: "delete",
        f"{ALIAS}-20990101000000": "keep",  # not the run's target: not ours
    }
    assert SOURCE not in verdicts  # no _meta: never considered
    assert set(fake.indices) >= set(targets)  # dry run deleted nothing
    done = api.cleanup(cfg, ALIAS, keep=1)
    assert sorted(r.index for r in done if r.action == "deleted") == sorted(targets[:2])
    assert targets[0] not in fake.indices and targets[1] not in fake.indices
    assert {targets[2], targets[3], SOURCE, f"{ALIAS}-20990101000000"} <= set(fake.indices)


def test_cleanup_json(cfg, fake):
    swapped(cfg)
    result = invoke(cfg, "cleanup", "--alias", ALIAS, "--keep", "0", "--dry-run", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["dry_run"] is True and [r["action"] for r in data["indices"]] == ["keep"]


# -- task records ---------------------------------------------------------------------------


def test_swap_deletes_the_copy_task_result(cfg, fake):
    run_id = swapped(cfg)
    rec = cfg.repo().get(run_id)
    assert fake.get_task(rec.task_id) is None  # its stored result is gone
    detail = cfg.repo().events(run_id)[-1].detail
    assert detail["task_results"] == {rec.task_id: "deleted"}


def test_a_refused_task_result_deletion_is_recorded_not_a_failure(cfg, fake):
    fake.task_results_deletable = False
    run_id = swapped(cfg)
    rec = cfg.repo().get(run_id)
    assert rec.state is State.SWAPPED
    outcome = cfg.repo().events(run_id)[-1].detail["task_results"][rec.task_id]
    assert outcome.startswith("kept: security_exception")


def test_undo_puts_back_only_the_aliases_still_on_the_target(cfg, fake):
    run_id = swapped(cfg)
    fake.update_aliases([{"remove": {"index": TARGET, "alias": "documents-public"}}])
    assert api.undo(cfg, run_id).state is State.UNDONE
    assert set(fake.indices[SOURCE].aliases) == {ALIAS}
    assert cfg.repo().events(run_id)[-1].detail["not_on_target"] == ["documents-public"]
