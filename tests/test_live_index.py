"""Once the alias is on the run's own target, that target is live: whatever the run's
stored state, abort and rollback never delete it nor move the alias back, and undo finds
every write made to it since the swap (on the fake: the kills are crash points)."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import EngineError, ExitCode, ReindexFsmError, UndoRefused
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions

from .conftest import ALIAS, SOURCE, TARGET, db_rows, make_config
from .test_cli import invoke


class Killed(BaseException):
    """Stands for SIGKILL at a crash point."""


def _kill(name: str) -> None:
    raise Killed(name)


def killed_after_the_swap_request(fake, state_db, options: RunOptions | None = None) -> str:
    """A start killed right after its ``_aliases`` request, before SWAPPED is stored."""
    dying = make_config(fake, state_db, crash=lambda: Crashpoints("swap.engine_done", _kill))
    with pytest.raises(Killed):
        api.start(dying, ALIAS, options or RunOptions(verify=True))
    (rec,) = make_config(fake, state_db).repo().list()
    assert rec.state is State.VERIFYING
    assert ALIAS in fake.indices[TARGET].aliases  # the swap was made
    return rec.id


def assert_live_and_swapped(cfg, fake, run_id: str) -> None:
    rec = cfg.repo().get(run_id)
    assert rec.state is State.SWAPPED
    assert set(fake.indices[TARGET].aliases) == {ALIAS, "documents-public"}
    assert fake.indices[SOURCE].aliases == {}
    assert not fake.write_blocked(SOURCE)  # the swap's bookkeeping is done
    assert cfg.repo().active_run_for(ALIAS) is None


def test_abort_after_an_unrecorded_swap_keeps_the_write_made_through_the_alias(fake, state_db):
    run_id = killed_after_the_swap_request(fake, state_db)
    fake.write(ALIAS, "late", {"title": "acknowledged after the swap"})  # lands on the target
    cfg = make_config(fake, state_db)

    result = invoke(cfg, "abort", run_id)

    assert result.exit_code == ExitCode.USAGE, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "was not rolled back" in errors[0]
    assert f"reindex-fsm undo {run_id}" in errors[0]
    assert fake.indices[TARGET].docs["late"] == {"title": "acknowledged after the swap"}
    assert_live_and_swapped(cfg, fake, run_id)
    (last,) = cfg.repo().events(run_id)[-1:]
    assert (last.from_state, last.to_state, last.trigger) == ("ABORTING", "SWAPPED", "record_swap")
    # and undo sees the write: refused without --force
    rows = db_rows(state_db)
    with pytest.raises(UndoRefused, match="written to since the swap"):
        api.undo(cfg, run_id)
    assert db_rows(state_db) == rows and ALIAS in fake.indices[TARGET].aliases


@pytest.mark.parametrize("sticky", [False, True], ids=["fault-once", "fault-twice"])
def test_a_failure_after_the_swap_with_rollback_on_failure_never_deletes_the_target(
    fake, state_db, sticky
):
    """The swap's request is made, then lifting the write block fails: the run fails
    after its swap. --rollback-on-failure must not delete the live target."""
    fake.fail_on("remove_write_block")
    if sticky:
        fake.fail_on("remove_write_block", nth=2)
    cfg = make_config(fake, state_db)
    options = RunOptions(verify=True, rollback_on_failure=True)
    original_write = fake.write
    try:
        outcome = api.start(cfg, ALIAS, options)
    except ReindexFsmError as exc:  # the bookkeeping failed again: the run stays FAILED
        assert sticky, exc
        assert isinstance(exc, EngineError) and "remove_write_block" in exc.one_line()
        rec = cfg.repo().get(cfg.repo().list()[0].id)
        assert rec.state is State.FAILED and TARGET in fake.indices
        assert ALIAS in fake.indices[TARGET].aliases
        original_write(ALIAS, "late", {"title": "written while FAILED"})
        outcome = api.resume(cfg, rec.id)
    else:
        assert not sticky
    assert outcome.exit_code == ExitCode.OK
    assert TARGET in fake.indices and len(fake.indices[TARGET].docs) >= 2500
    if sticky:
        assert "late" in fake.indices[TARGET].docs
    assert_live_and_swapped(cfg, fake, outcome.record.id)
    triggers = [(e.from_state, e.to_state) for e in cfg.repo().events(outcome.record.id)]
    assert ("VERIFYING", "FAILED") in triggers and triggers[-1] == ("FAILED", "SWAPPED")
    assert ("FAILED", "ROLLED_BACK") not in triggers


def test_resume_of_a_failed_run_whose_swap_was_made_records_it(fake, state_db):
    """Without --rollback-on-failure, a run failed after its swap is finished by resume,
    even with the old source deleted meanwhile (it is not needed any more)."""
    fake.fail_on("remove_write_block")
    cfg = make_config(fake, state_db)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.FAILED and ALIAS in fake.indices[TARGET].aliases
    fake.delete_index(SOURCE)
    outcome = api.resume(cfg, rec.id)
    assert outcome.record.state is State.SWAPPED and outcome.exit_code == ExitCode.OK
    assert ALIAS in fake.indices[TARGET].aliases


def test_undo_finds_a_write_made_after_a_resumed_swap(fake, state_db):
    run_id = killed_after_the_swap_request(fake, state_db)
    cfg = make_config(fake, state_db)
    assert api.resume(cfg, run_id).record.state is State.SWAPPED
    fake.write(ALIAS, "late", {"title": "after the resume"})
    with pytest.raises(UndoRefused, match="writes made since then"):
        api.undo(cfg, run_id)
    assert ALIAS in fake.indices[TARGET].aliases and cfg.repo().get(run_id).state is State.SWAPPED


def test_undo_finds_a_write_made_between_the_swap_and_its_resume(fake, state_db):
    run_id = killed_after_the_swap_request(fake, state_db)
    fake.write(ALIAS, "doc-00001", {"title": "changed in place before the resume"})
    cfg = make_config(fake, state_db)
    assert api.resume(cfg, run_id).record.state is State.SWAPPED
    with pytest.raises(UndoRefused, match="written to since the swap"):
        api.undo(cfg, run_id)


def test_undo_of_a_resumed_swap_without_writes_moves_the_alias_back(fake, state_db):
    run_id = killed_after_the_swap_request(fake, state_db)
    cfg = make_config(fake, state_db)
    assert api.resume(cfg, run_id).record.state is State.SWAPPED
    assert api.undo(cfg, run_id).state is State.UNDONE
    assert ALIAS in fake.indices[SOURCE].aliases and fake.indices[TARGET].aliases == {}


@pytest.mark.parametrize(
    "change",
    ["update in place", "delete and add", "delete"],
)
def test_undo_finds_changes_a_count_does_not_show(cfg, fake, change):
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED
    if change == "update in place":
        fake.write(ALIAS, "doc-00001", {"title": "changed"})
    elif change == "delete and add":
        fake.write(ALIAS, "doc-00001", None)
        fake.write(ALIAS, "new", {"title": "new"})
    else:  # the count does show this one
        fake.write(ALIAS, "doc-00001", None)
    with pytest.raises(UndoRefused, match="written to since the swap"):
        api.undo(cfg, rec.id)
    assert api.undo(cfg, rec.id, force=True).state is State.UNDONE
    detail = cfg.repo().events(rec.id)[-1].detail
    assert detail["max_seq_no_now"] != detail["max_seq_no_at_swap"] and "warning" in detail


def test_the_marks_are_stored_before_the_swap_request(fake, state_db):
    """A kill between storing the marks and the ``_aliases`` request: nothing swapped;
    the resume verifies, stores them again, swaps; undo then works."""
    dying = make_config(fake, state_db, crash=lambda: Crashpoints("swap.recorded", _kill))
    with pytest.raises(Killed):
        api.start(dying, ALIAS, RunOptions(verify=True))
    cfg = make_config(fake, state_db)
    (rec,) = cfg.repo().list()
    assert rec.state is State.VERIFYING and rec.swap_record["before_swap"]["count"] == 2500
    assert ALIAS in fake.indices[SOURCE].aliases
    rec = api.resume(cfg, rec.id).record
    assert rec.state is State.SWAPPED and "swapped_at" in rec.swap_record
    assert api.undo(cfg, rec.id).state is State.UNDONE
