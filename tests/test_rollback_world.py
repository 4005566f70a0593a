"""Abort and rollback when someone else changed the cluster during the run (on the fake;
the same cases run on the real engine in tests/integration/test_abort_when_others_moved.py):
no alias is put where nobody wants it, nothing the run does not own is touched, and every
unfinished run can be finished."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.errors import ExitCode, SourceGone, UndoRefused
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, NOW, SOURCE, TARGET, db_rows
from .test_cli import invoke


def failed_copy(cfg, fake, **options) -> str:
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions(**options)).record
    assert rec.state is State.FAILED and TARGET in fake.indices
    fake.task_script = TaskScript()
    return rec.id


def rollback_detail(cfg, run_id: str) -> dict:
    last = cfg.repo().events(run_id)[-1]
    assert last.to_state == "ROLLED_BACK"
    return last.detail


def test_abort_leaves_aliases_someone_moved_or_removed(cfg, fake):
    run_id = failed_copy(cfg, fake)
    fake.add_index("documents-other")
    fake.update_aliases(
        [
            {"remove": {"index": SOURCE, "alias": ALIAS}},
            {"add": {"index": "documents-other", "alias": ALIAS, "is_write_index": True}},
            {"remove": {"index": SOURCE, "alias": "documents-public"}},
        ]
    )
    result = invoke(cfg, "abort", run_id)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "warning: not put back on the source" in result.stderr
    assert fake.get_alias(ALIAS) == {"documents-other": {ALIAS: {"is_write_index": True}}}
    assert fake.get_alias("documents-public") == {}
    assert fake.indices[SOURCE].aliases == {} and TARGET not in fake.indices
    assert not fake.write_blocked(SOURCE)
    left = rollback_detail(cfg, run_id)["aliases_left"]
    assert left == {
        ALIAS: "on documents-other (moved by someone else)",
        "documents-public": "on no index (removed by someone else)",
    }
    assert cfg.repo().active_run_for(ALIAS) is None


def test_source_deleted_resume_refused_abort_finishes(cfg, fake, state_db):
    run_id = failed_copy(cfg, fake)
    fake.delete_index(SOURCE)
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(SourceGone, match="no longer exists") as refused:
        api.resume(cfg, run_id)
    assert refused.value.exit_code == ExitCode.RUN_FAILED
    assert f"reindex-fsm abort {run_id}" in refused.value.one_line()
    assert fake.snapshot() == before and db_rows(state_db)["runs"] == rows["runs"]
    outcome = api.abort(cfg, run_id)
    assert outcome.record.state is State.ROLLED_BACK and outcome.exit_code == ExitCode.OK
    assert TARGET not in fake.indices and SOURCE not in fake.indices
    assert fake.get_alias(ALIAS) == {}
    assert "no longer exists" in rollback_detail(cfg, run_id)["aliases_left"][ALIAS]
    assert cfg.repo().active_run_for(ALIAS) is None


@pytest.mark.parametrize("legacy", [False, True], ids=["uuid", "planned-before-uuids"])
def test_a_source_made_again_is_not_touched(cfg, fake, legacy):
    run_id = failed_copy(cfg, fake, keep_block_on_failure=True)  # the block held at abort
    if legacy:  # a run planned before the source's uuid was stored
        rec = cfg.repo().get(run_id)
        cfg.repo().checkpoint(run_id, rec.state, plan={**rec.plan, "source_uuid": None})
    fake.delete_index(SOURCE)
    fake.add_index(SOURCE, {"x": {"title": "new"}}, aliases={"someone-elses": {}})
    fake.indices[SOURCE].settings["index.creation_date"] = str(int(NOW.timestamp() * 1000) + 1)
    fake.add_write_block(SOURCE)
    with pytest.raises(SourceGone, match="created again"):
        api.resume(cfg, run_id)
    assert api.abort(cfg, run_id).record.state is State.ROLLED_BACK
    new = fake.indices[SOURCE]
    assert new.aliases == {"someone-elses": {}} and fake.write_blocked(SOURCE)
    assert new.docs == {"x": {"title": "new"}} and TARGET not in fake.indices
    detail = rollback_detail(cfg, run_id)
    assert "created again" in detail["aliases_left"][ALIAS]
    write_block = next(e for e in cfg.repo().events(run_id) if e.to_state == "ROLLED_BACK")
    assert "none lifted" in write_block.detail["write_block"]


def test_a_target_someone_put_an_alias_on_is_not_deleted(cfg, fake):
    run_id = failed_copy(cfg, fake)
    fake.update_aliases([{"add": {"index": TARGET, "alias": "pinned"}}])
    assert api.abort(cfg, run_id).record.state is State.ROLLED_BACK
    assert TARGET in fake.indices and fake.indices[TARGET].aliases == {"pinned": {}}
    assert "in use, left" in rollback_detail(cfg, run_id)["target"]
    assert ALIAS in fake.indices[SOURCE].aliases


def test_undo_never_moves_the_alias_to_an_index_made_again_under_the_previous_name(
    cfg, fake, state_db
):
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED
    fake.delete_index(SOURCE)
    fake.add_index(SOURCE, {"x": {"title": "someone else's"}})
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(UndoRefused, match="previous index documents-v1 was deleted and created"):
        api.undo(cfg, rec.id)
    assert fake.snapshot() == before and db_rows(state_db) == rows
