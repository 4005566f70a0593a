"""Schedules the stateful invariant test (tests/test_invariants.py) found breaking an
invariant on the code of the day, each written again, shrunk by hand, as a few lines of
the library API on the fake engine. Each docstring names the invariant and the schedule.

They fail until the product is fixed; none is marked xfail. The lost-lease cases share
one cause (no check that the process still holds the run before an engine write or a
commit): fixing the mechanism should make all of them pass.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from reindex_fsm import api, lease
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import LockHeld, SwappedNotRolledBack, UndoRefused
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.store import open_store
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, NOW, SOURCE, TARGET, make_config
from .test_write_policy import with_since_field


class Killed(BaseException):
    """SIGKILL at a crash point."""


def kill_at(point: str) -> Any:
    def die(name: str) -> None:
        raise Killed(name)

    return lambda: Crashpoints(point, die)


def on_alias(fake: FakeEngine, alias: str = ALIAS) -> set[str]:
    return {name for name, idx in fake.indices.items() if alias in idx.aliases}


def move_alias(fake: FakeEngine, to: str) -> None:
    """Someone else copies the alias's index to ``to`` and moves the alias there."""
    (current,) = on_alias(fake)
    fake.add_index(to, fake.indices[current].docs)
    fake.indices[to].aliases[ALIAS] = fake.indices[current].aliases.pop(ALIAS)


def steal_lease(fake: FakeEngine) -> None:
    """Another process (another run, alive) overwrites the alias's lease document."""
    doc = {
        "alias": ALIAS,
        "run_id": "intruder",
        "owner": "someone@elsewhere:1",
        "state_db": "sqlite:///elsewhere.db",
        "acquired_at": NOW.isoformat(),
        "heartbeat_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(seconds=60)).isoformat(),
    }
    fake.leases[ALIAS] = (doc, next(fake._seq_nos))


def writes(fake: FakeEngine) -> list[str]:
    """The engine calls that changed something, the lease's own aside."""
    return [m for m in fake.call_names(mutating_only=True) if "lease" not in m]


class EveryPoint(Crashpoints):
    """Calls ``action`` at every crash point (it decides when to act)."""

    def __call__(self, name: str) -> None:
        self.seen.append(name)
        self.action(name)


def events(state_db: str, run_id: str) -> list[tuple[str | None, str, str]]:
    return [(e.from_state, e.to_state, e.trigger) for e in open_store(state_db).events(run_id)]


# -- abort and rollback never add an alias the run does not own --------------------------


def test_abort_leaves_an_alias_someone_moved_where_it_is(fake: FakeEngine, cfg: Any) -> None:
    """Invariant: abort/rollback never adds an alias the run does not own (and the alias
    is on exactly one index). Schedule: fault_once(add_write_block), start (FAILED in
    TARGET_CREATED), move_alias, abort: the alias is put back on the source as well."""
    fake.fail_on("add_write_block")
    run = api.start(cfg, ALIAS, RunOptions()).record
    assert run.state is State.FAILED
    move_alias(fake, "manual-1")
    api.abort(cfg, run.id)
    assert on_alias(fake) == {"manual-1"}


# -- every unfinished run can be finished -------------------------------------------------


def test_abort_ends_a_run_whose_source_was_deleted(fake: FakeEngine, cfg: Any) -> None:
    """Invariant (end of schedule): an unfinished run can be finished: abort ends it
    ROLLED_BACK or CANCELLED and frees the alias. Schedule: fault_once(add_write_block),
    start (FAILED), delete the source, abort: IndexNotFound, the run stays FAILED, the
    alias locked for good."""
    fake.fail_on("add_write_block")
    run = api.start(cfg, ALIAS, RunOptions()).record
    assert run.state is State.FAILED
    del fake.indices[SOURCE]
    outcome = api.abort(cfg, run.id)
    assert outcome.record.state in (State.ROLLED_BACK, State.CANCELLED)
    assert cfg.repo().active_run_for(ALIAS) is None


# -- a process that lost its lease writes nothing more ------------------------------------


def test_a_process_whose_lease_was_taken_writes_nothing_more(
    fake: FakeEngine, state_db: str
) -> None:
    """Invariant: at most one process drives a run; one whose lease was taken over writes
    nothing more. Schedule: start, paused at its first checkpoint of the copy step
    (copy_attempts, before the task is started) while another holder overwrites the lease:
    it starts the copy and stores REINDEXING and VERIFYING without the lease."""
    at_steal: list[tuple[int, list[str]]] = []

    def steal(_name: str) -> None:
        steal_lease(fake)
        run_id = open_store(state_db).list(limit=1)[0].id
        at_steal.append((len(events(state_db, run_id)), writes(fake)))

    cfg = make_config(fake, state_db, crash=lambda: Crashpoints("checkpoint.progress", steal))
    with pytest.raises(LockHeld):
        api.start(cfg, ALIAS, RunOptions())
    (run,) = open_store(state_db).list()
    assert (len(events(state_db, run.id)), writes(fake)) == at_steal[0]


# -- the run writes only to what it owns ----------------------------------------------------


def test_a_target_deleted_during_the_copy_fails_the_run(fake: FakeEngine, state_db: str) -> None:
    """Invariant: the alias is on one index holding every document (the run swaps only onto
    its own, complete target). Schedule: start, paused right after the reindex task
    started while someone deletes the target; the engine re-creates it (dynamic mappings,
    no _meta) for the task's next batches: the run swaps onto that index and loses the
    documents copied before the deletion."""
    fake.auto_create_missing_dest = True
    fake.task_script = TaskScript(docs_per_poll=1000)

    def delete_target(_name: str) -> None:
        fake.advance(fake.list_reindex_tasks()[0].task_id)  # a first batch is copied
        del fake.indices[TARGET]

    cfg = make_config(
        fake, state_db, crash=lambda: Crashpoints("start_copy.engine_done", delete_target)
    )
    outcome = api.start(cfg, ALIAS, RunOptions())
    assert outcome.record.state is not State.SWAPPED
    assert on_alias(fake) == {SOURCE}


# -- undo never drops an acknowledged write ---------------------------------------------------


def test_undo_notices_an_update_made_through_the_alias(fake: FakeEngine, cfg: Any) -> None:
    """Invariant: the alias's index holds every acknowledged write. Schedule: start
    (SWAPPED), a client updates a document through the alias, undo without --force: the
    count did not change, so undo moves the alias back and the update is gone from it."""
    run = api.start(cfg, ALIAS, RunOptions()).record
    assert run.state is State.SWAPPED
    fake.write(ALIAS, "doc-00001", {"title": "updated after the swap"})
    with pytest.raises(UndoRefused):
        api.undo(cfg, run.id)
    assert on_alias(fake) == {TARGET}


# -- once the alias is on the target, the run is swapped whatever its stored state ---------


def test_abort_after_an_unrecorded_swap_keeps_the_live_target(
    fake: FakeEngine, state_db: str
) -> None:
    """Invariant: the alias's index holds every acknowledged write. Schedule: start killed
    right after the swap's _aliases request (SWAPPED not stored), a client writes through
    the alias (onto the target), abort: ROLLED_BACK, alias back on the source, the target
    and the write deleted."""
    with pytest.raises(Killed):
        api.start(make_config(fake, state_db, kill_at("swap.engine_done")), ALIAS, RunOptions())
    fake.write(ALIAS, "new-doc", {"title": "written after the swap"})
    (run,) = open_store(state_db).list()
    with pytest.raises(SwappedNotRolledBack):  # the swap was made: recorded, not rolled back
        api.abort(make_config(fake, state_db), run.id)
    (live,) = on_alias(fake)
    assert "new-doc" in fake.indices[live].docs
    assert open_store(state_db).get(run.id).state is State.SWAPPED


def test_undo_after_a_resumed_unrecorded_swap_notices_new_writes(
    fake: FakeEngine, state_db: str
) -> None:
    """Invariant: the alias's index holds every acknowledged write. Schedule: start killed
    right after the swap's _aliases request, resume (SWAPPED, no target_count stored), a
    client writes a new document through the alias, undo without --force: the change is
    not noticed and the alias goes back to the source without the write."""
    with pytest.raises(Killed):
        api.start(make_config(fake, state_db, kill_at("swap.engine_done")), ALIAS, RunOptions())
    (run,) = open_store(state_db).list()
    cfg = make_config(fake, state_db)
    assert api.resume(cfg, run.id).record.state is State.SWAPPED
    fake.write(ALIAS, "new-doc", {"title": "written after the swap"})
    with pytest.raises(UndoRefused):
        api.undo(cfg, run.id)
    assert on_alias(fake) == {TARGET}


# -- a resume makes progress once the cause is gone ------------------------------------------


def test_a_catch_up_pass_that_failed_once_is_run_again_on_resume(
    fake: FakeEngine, cfg: Any
) -> None:
    """Invariant (end of schedule): with the faults gone, a resume reaches the goal.
    Schedule: start with --write-policy catch-up, the first catch-up pass's task reports a
    bulk failure (FAILED), resume: the stored, failed pass is replayed as failed, every
    time."""
    with_since_field(fake)
    fake.next_task_scripts[:] = [TaskScript(), TaskScript(fail_after_polls=0)]
    opts = RunOptions(write_policy="catch-up", since_field="updated_at")
    run = api.start(cfg, ALIAS, opts).record
    assert run.state is State.FAILED and "catch-up pass" in (run.error or "")
    for _ in range(2):  # the first resume may still find the old failure; not every one
        if api.resume(cfg, run.id).record.state is not State.FAILED:
            break
    assert cfg.repo().get(run.id).state is State.SWAPPED


# -- after an abort nothing keeps running -----------------------------------------------------


def test_an_abort_during_a_catch_up_pass_stops_the_driving_process(
    fake: FakeEngine, state_db: str
) -> None:
    """Invariant: a process whose run was taken over (here by an abort from another shell,
    which takes the lease) writes nothing more. Schedule: start with catch-up, paused just
    after it recorded its first catch-up pass, abort from another process (ROLLED_BACK,
    target deleted), the first process goes on: it starts the pass's _reindex task into
    the deleted target."""
    with_since_field(fake)
    at_abort: list[list[str]] = []

    def abort_elsewhere(name: str) -> None:
        run = open_store(state_db).list(limit=1)[0]
        if at_abort or not (run.write_policy or {}).get("passes"):
            return
        outcome = api.abort(make_config(fake, state_db), run.id)
        assert outcome.record.state is State.ROLLED_BACK
        at_abort.append(writes(fake))

    cfg = make_config(fake, state_db, crash=lambda: EveryPoint(action=abort_elsewhere))
    api.start(cfg, ALIAS, RunOptions(write_policy="catch-up", since_field="updated_at"))
    assert at_abort, "the schedule did not reach a catch-up pass"
    assert writes(fake) == at_abort[0]
    assert not fake.list_reindex_tasks()


# -- exactly one process drives a run ----------------------------------------------------------


def _second_process(monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, state_db: str) -> Any:
    """A crash-point action: another process (its own lease owner) resumes the run while
    this one is paused; what the first process wrote until then is returned in ``seen``."""
    owner = ["process-1"]
    monkeypatch.setattr(lease, "default_owner", lambda: owner[0])
    seen: list[list[str]] = []
    refused: list[LockHeld] = []

    def resume_elsewhere(_name: str) -> None:
        owner[0] = "process-2"
        run = open_store(state_db).list(limit=1)[0]
        try:
            api.resume(make_config(fake, state_db), run.id)
        except LockHeld as exc:  # refused: the first process drives on
            refused.append(exc)
        seen.append(writes(fake))

    resume_elsewhere.seen = seen  # type: ignore[attr-defined]
    resume_elsewhere.refused = refused  # type: ignore[attr-defined]
    return resume_elsewhere


def test_a_resume_while_the_first_process_runs_starts_no_second_copy(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, state_db: str
) -> None:
    """Invariant: at most one process drives a run. Schedule: start, paused just before it
    starts the copy (its copy_attempts checkpoint); another process resumes the run and
    swaps it; the first goes on and starts a second _reindex into the now live target."""
    second = _second_process(monkeypatch, fake, state_db)
    cfg = make_config(fake, state_db, crash=lambda: Crashpoints("checkpoint.progress", second))
    outcome = api.start(cfg, ALIAS, RunOptions())
    if second.refused:  # the second process was refused (the first drives): it wrote nothing
        (refusal,) = second.refused
        assert "being driven by another process" in str(refusal)
        assert outcome.record.state is State.SWAPPED
        assert fake.call_names().count("start_reindex") == 1
    else:  # the second took the run over: the first writes nothing more
        assert writes(fake) == second.seen[0]


def test_a_resume_while_the_first_process_runs_leaves_no_write_block(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEngine, state_db: str
) -> None:
    """Invariant: a write block on the source only while an unfinished run records holding
    it. Schedule: start with catch-up, paused right after it recorded the final pass's
    block, before putting it on; another process resumes and swaps the run (taking the
    block off); the first goes on and puts the block on the old source, for good."""
    with_since_field(fake)
    second = _second_process(monkeypatch, fake, state_db)
    cfg = make_config(fake, state_db, crash=lambda: Crashpoints("checkpoint.write_block", second))
    api.start(cfg, ALIAS, RunOptions(write_policy="catch-up", since_field="updated_at"))
    assert open_store(state_db).list()[0].state is State.SWAPPED
    assert not fake.write_blocked(SOURCE)


def test_a_failure_after_the_swap_does_not_roll_back_the_live_target(
    fake: FakeEngine, state_db: str
) -> None:
    """Invariant: the alias's index holds every acknowledged write. Schedule (shrunk):
    fault_sticky(remove_write_block), a client writing while the tool polls, start with
    --rollback-on-failure: the swap is made, releasing the block fails, the run rolls
    back: alias back on the source, the live target deleted with the write made to it."""
    fake.fail_on("remove_write_block")

    def client_writes(_name: str) -> None:
        fake.write(ALIAS, "new-doc", {"title": "written after the swap"})

    cfg = make_config(fake, state_db, crash=lambda: Crashpoints("swap.engine_done", client_writes))
    api.start(cfg, ALIAS, RunOptions(rollback_on_failure=True))
    (live,) = on_alias(fake)
    assert "new-doc" in fake.indices[live].docs
