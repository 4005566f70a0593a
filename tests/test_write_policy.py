"""--write-policy on the fake: the block (when it is on, that it always comes off) and
catch-up (writes made during the copy reach the target; deletions too)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.errors import EngineError, ExitCode, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, N_DOCS, NOW, SOURCE, SOURCE_MAPPINGS, TARGET, db_rows, make_config

STAMP = NOW.isoformat()
CATCH_UP = {"write_policy": "catch-up", "since_field": "updated_at", "verify": True}


def with_since_field(fake: FakeEngine) -> None:
    idx = fake.indices[SOURCE]
    idx.mappings = copy.deepcopy(SOURCE_MAPPINGS)
    idx.mappings["properties"]["updated_at"] = {"type": "date"}
    for doc in idx.docs.values():
        doc["updated_at"] = "2026-11-24T00:00:00.000+00:00"  # a day before the run


class Writer:
    """A client writing through the alias while the run polls its tasks: what it was
    acknowledged and what was refused."""

    def __init__(self, fake: FakeEngine, per_poll: int = 3) -> None:
        self.fake, self.per_poll = fake, per_poll
        self.n = 0
        self.acked: dict[str, dict[str, Any] | None] = {}  # id -> last acknowledged (None: deleted)
        self.refused = 0
        original = fake.get_task

        def get_task(task_id: str):  # type: ignore[no-untyped-def]
            self.write_some()
            return original(task_id)

        fake.get_task = get_task  # type: ignore[method-assign]

    def _write(self, doc_id: str, source: dict[str, Any] | None) -> None:
        try:
            self.fake.write(ALIAS, doc_id, source)
        except EngineError as exc:
            assert exc.status == 403 and "blocked" in exc.message
            self.refused += 1
            return
        self.acked[doc_id] = source

    def write_some(self) -> None:
        for _ in range(self.per_poll):
            self.n += 1
            self._write(f"new-{self.n}", {"title": f"new {self.n}", "updated_at": STAMP})
        # an update and a delete of documents the main copy has already seen
        self._write(f"doc-{self.n:05d}", {"title": f"updated {self.n}", "updated_at": STAMP})
        self._write(f"doc-{self.n + 1000:05d}", None)

    def assert_nothing_lost(self) -> None:
        behind = next(i for i, idx in self.fake.indices.items() if ALIAS in idx.aliases)
        docs = self.fake.indices[behind].docs
        lost = [
            doc_id
            for doc_id, source in self.acked.items()
            if (source is None and doc_id in docs)
            or (source is not None and docs.get(doc_id) != source)
        ]
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"


# -- block -----------------------------------------------------------------------------


def test_block_refuses_writes_during_the_copy_and_lifts_on_swap(cfg, fake):
    fake.task_script = TaskScript(docs_per_poll=500)
    writer = Writer(fake)
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    rec = outcome.record
    assert rec.state is State.SWAPPED
    assert writer.refused > 0 and not writer.acked  # every write came during the block
    assert not fake.write_blocked(SOURCE) and not fake.write_blocked(TARGET)
    assert rec.write_policy["blocked"] is False and rec.write_policy["released_at"]
    fake.write(ALIAS, "after", {"title": "after the swap"})  # goes to the target
    assert "after" in fake.indices[TARGET].docs


def test_count_verified_against_the_source_as_blocked_not_as_planned(cfg, fake):
    """Writes between the plan and the block are in the copy and in the count."""
    planned = api.plan(cfg, ALIAS, RunOptions(verify=True))
    fake.write(ALIAS, "late", {"title": "written after the plan"})
    rec = api.start(cfg, ALIAS, RunOptions(verify=True), planned=planned).record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.source_count == rec.target_count == planned.source_count + 1
    assert "late" in fake.indices[TARGET].docs


def test_abort_lifts_the_block(cfg, fake):
    fake.task_script = TaskScript(stall=True)
    fake.fail_on("get_task", nth=2, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        api.start(cfg, ALIAS, RunOptions())
    (rec,) = cfg.repo().list()
    assert fake.write_blocked(SOURCE) and rec.write_policy["blocked"]
    assert api.abort(cfg, rec.id).record.state is State.ROLLED_BACK
    assert not fake.write_blocked(SOURCE)


def test_keep_block_on_failure_keeps_it_until_resumed_or_aborted(cfg, fake):
    fake.task_script = TaskScript(docs_per_poll=500, fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions(keep_block_on_failure=True)).record
    assert rec.state is State.FAILED
    assert fake.write_blocked(SOURCE)  # asked for: a retry copies from a static source
    assert rec.write_policy["blocked"] is True and "resync" not in rec.write_policy
    fake.task_script = TaskScript(docs_per_poll=500)
    assert api.resume(cfg, rec.id).record.state is State.SWAPPED
    assert not fake.write_blocked(SOURCE)


def test_a_failed_run_releases_the_block_and_resume_copies_what_changed(cfg, fake):
    """The copy fails half way: the block comes off with the failure, writers go on
    (new documents, updates of copied ones, deletes of copied ones); the resume blocks
    again, copies the source again over the target and deletes what was deleted."""
    fake.task_script = TaskScript(docs_per_poll=500, fail_after_polls=2)
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.FAILED and rec.failed_from is State.REINDEXING
    assert not fake.write_blocked(SOURCE)
    wp = rec.write_policy
    assert wp["blocked"] is False and wp["resync"] is True and len(wp["blocked_periods"]) == 1
    copied = sorted(fake.indices[TARGET].docs)
    assert 0 < len(copied) < N_DOCS
    written: dict[str, dict[str, Any] | None] = {
        "new-1": {"title": "new while failed"},
        copied[0]: {"title": "updated while failed"},
        copied[1]: None,  # deleted while failed: it is in the target already
    }
    for doc_id, source in written.items():
        fake.write(ALIAS, doc_id, source)  # acknowledged: the block is off
    fake.task_script = TaskScript(docs_per_poll=500)
    rec = api.resume(cfg, rec.id).record
    assert rec.state is State.SWAPPED, rec.error
    target = fake.indices[TARGET].docs
    assert target == fake.indices[SOURCE].docs
    assert target["new-1"] == written["new-1"] and copied[1] not in target
    assert target[copied[0]] == written[copied[0]]
    wp = rec.write_policy
    assert "resync" not in wp and wp["deleted_from_target"] == 1
    assert len(wp["blocked_periods"]) == 2 and not fake.write_blocked(SOURCE)
    (again,) = wp["passes"]
    assert again["resync"] and again["since"] is None and again["final"]
    resync_request = fake.tasks[again["task_id"]].request
    assert resync_request.op_type == "index" and resync_request.conflicts == "proceed"
    # the failed copy was not started again next to the copy made under the block
    assert [c.args[2] for c in fake.calls if c.method == "start_reindex"] == ["create", "index"]


def test_a_run_failed_before_its_copy_releases_the_block(cfg, fake):
    fake.fail_on("start_reindex", error=EngineError("injected", status=400))
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.FAILED and rec.failed_from is State.TARGET_CREATED
    assert not fake.write_blocked(SOURCE)
    assert rec.write_policy["resync"] is True  # the copy had been asked for: it may have run
    rec = api.resume(cfg, rec.id).record
    assert rec.state is State.SWAPPED, rec.error
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert not fake.write_blocked(SOURCE)


def test_a_failed_verification_releases_the_block_and_resume_verifies_the_changes(cfg, fake):
    """Failed in VERIFYING (the target took an extra document): block off; the source
    changes; resume blocks again, copies again, reconciles, verifies, swaps."""
    original = fake.count
    extra = ["stray"]

    def count(index: str) -> int:
        if index == TARGET and extra:
            extra.pop()
            return original(index) + 1  # the first count of the target is off by one
        return original(index)

    fake.count = count  # type: ignore[method-assign]
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.FAILED and rec.failed_from is State.VERIFYING, rec.error
    assert not fake.write_blocked(SOURCE)
    fake.write(ALIAS, "doc-00007", {"title": "changed while failed"})
    fake.write(ALIAS, "doc-00008", None)
    rec = api.resume(cfg, rec.id).record
    assert rec.state is State.SWAPPED, rec.error
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert rec.source_count == rec.target_count == N_DOCS - 1


def test_a_block_that_was_there_before_the_run_stays(cfg, fake):
    fake.indices[SOURCE].settings["index.blocks.write"] = "true"
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED
    assert rec.write_policy["pre_existing"] is True
    assert fake.write_blocked(SOURCE)
    assert "add_write_block" not in fake.call_names()
    assert "remove_write_block" not in fake.call_names()


def test_rollback_lifts_the_block(cfg, fake):
    fake.task_script = TaskScript(docs_per_poll=500, fail_after_polls=1)
    before = fake.snapshot()
    rec = api.start(cfg, ALIAS, RunOptions(rollback_on_failure=True)).record
    assert rec.state is State.ROLLED_BACK
    assert fake.snapshot() == before


# -- catch-up --------------------------------------------------------------------------


def test_catch_up_copies_writes_made_during_the_copy(cfg, fake):
    with_since_field(fake)
    fake.task_script = TaskScript(docs_per_poll=400)
    writer = Writer(fake)
    rec = api.start(cfg, ALIAS, RunOptions(**CATCH_UP)).record
    assert rec.state is State.SWAPPED, rec.error
    writer.assert_nothing_lost()
    assert len(writer.acked) > 10  # writes went on during the main copy
    passes = rec.write_policy["passes"]
    assert passes[-1]["final"] and not any(p["final"] for p in passes[:-1])
    assert rec.write_policy["deleted_from_target"] > 0  # deletions made during the copy
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert not fake.write_blocked(SOURCE)
    # each pass asks for the documents written since the previous one began, less the margin
    queries = [t.request.body()["source"].get("query") for t in fake.tasks.values()]
    assert queries[0] is None
    assert queries[1] == {"range": {"updated_at": {"gte": "2026-11-25T02:59:00.000+00:00"}}}
    assert all(t.request.op_type == "index" for t in list(fake.tasks.values())[1:])


def test_catch_up_stops_when_the_delta_no_longer_shrinks(cfg, fake):
    with_since_field(fake)
    fake.task_script = TaskScript(docs_per_poll=5000)  # every pass ends at its first poll
    Writer(fake, per_poll=3)  # the same number of writes during every pass
    rec = api.start(cfg, ALIAS, RunOptions(**CATCH_UP)).record
    assert rec.state is State.SWAPPED, rec.error
    passes = rec.write_policy["passes"]
    assert len(passes) <= 3 and passes[-1]["final"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"write_policy": "catch-up"}, "needs --since-field"),
        ({"write_policy": "catch-up", "since_field": "nope"}, "nope is not mapped"),
        ({"write_policy": "catch-up", "since_field": "tags"}, "tags is mapped as keyword"),
        ({"since_field": "updated_at"}, "--since-field needs --write-policy catch-up"),
        (
            {"write_policy": "catch-up", "since_field": "updated_at", "recompute_embeddings": True},
            "not supported with --recompute-embeddings",
        ),
    ],
)
def test_unusable_catch_up_options_are_refused_before_anything_is_written(
    cfg, fake, state_db, options, message
):
    with_since_field(fake)
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(UsageError, match=message) as info:
        api.start(cfg, ALIAS, RunOptions(**options))
    assert info.value.exit_code == ExitCode.USAGE
    assert fake.snapshot() == before and db_rows(state_db) == rows
    assert fake.call_names(mutating_only=True) == []


def test_catch_up_resumes_a_pass_after_a_crash(fake, state_db):
    """Killed while a catch-up pass runs: the resumed run adopts or redoes that pass and
    loses nothing."""
    from reindex_fsm.crashpoints import Crashpoints

    class Died(BaseException):
        pass

    def die(_name: str) -> None:
        raise Died

    with_since_field(fake)
    fake.task_script = TaskScript(docs_per_poll=400)
    writer = Writer(fake)
    first = make_config(fake, state_db, crash=lambda: Crashpoints("catch_up.pass_started#2", die))
    with pytest.raises(Died):
        api.start(first, ALIAS, RunOptions(**CATCH_UP))
    again = make_config(fake, state_db)
    (rec,) = again.repo().list()
    assert rec.state is State.REINDEXING
    rec = api.resume(again, rec.id).record
    assert rec.state is State.SWAPPED, rec.error
    writer.assert_nothing_lost()
    assert not fake.write_blocked(SOURCE)


# -- the CLI -------------------------------------------------------------------------------


def test_cli_warns_that_a_failed_run_still_blocks_writes(fake, state_db):
    from click.testing import CliRunner

    from reindex_fsm.cli import cli

    fake.task_script = TaskScript(docs_per_poll=500, fail_after_polls=1)
    cfg = make_config(fake, state_db)
    args = ["start", "--alias", ALIAS, "--force", "--keep-block-on-failure"]
    result = CliRunner().invoke(cli, args, obj=cfg)
    assert result.exit_code == ExitCode.RUN_FAILED
    assert "ARE BLOCKED until the swap" in result.stderr
    assert "are still BLOCKED by run" in result.stderr and "abort" in result.stderr


def test_cli_a_failed_run_no_longer_blocks_writes(fake, state_db):
    from click.testing import CliRunner

    from reindex_fsm.cli import cli

    fake.task_script = TaskScript(docs_per_poll=500, fail_after_polls=1)
    cfg = make_config(fake, state_db)
    result = CliRunner().invoke(cli, ["start", "--alias", ALIAS, "--force"], obj=cfg)
    assert result.exit_code == ExitCode.RUN_FAILED
    assert "still BLOCKED" not in result.stderr
    assert not fake.write_blocked(SOURCE)


def test_cli_since_field_without_catch_up_is_one_usage_line(fake, state_db):
    from click.testing import CliRunner

    from reindex_fsm.cli import cli

    before = fake.snapshot()
    cfg = make_config(fake, state_db)
    args = ["start", "--alias", ALIAS, "--force", "--since-field", "updated_at"]
    result = CliRunner().invoke(cli, args, obj=cfg)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip().splitlines() == [
        "error: --since-field needs --write-policy catch-up"
    ]
    assert fake.snapshot() == before


def test_copy_set_wins_over_the_tuning_and_final_values_come_back(cfg, fake):
    options = RunOptions(
        verify=True,
        settings_overrides={"index.refresh_interval": "3s"},
        copy_settings_overrides={"index.refresh_interval": "30s"},
    )
    plan = api.plan(cfg, ALIAS, options)
    assert plan.copy_settings == {
        "index.number_of_replicas": "0",
        "index.refresh_interval": "30s",
    }
    rec = api.start(cfg, ALIAS, options, planned=plan).record
    assert rec.state is State.SWAPPED
    settings = fake.indices[TARGET].settings
    assert settings["index.refresh_interval"] == "3s"
    assert settings["index.number_of_replicas"] == "1"


# -- a failed catch-up pass, an abort during one -------------------------------------------


def _fail_task_number(fake: FakeEngine, failing: set[int]) -> list[int]:
    """Make the reindex tasks started as the n-th (1-based, n in ``failing``) fail with a
    bulk failure at their first poll; the others copy 400 documents a poll."""
    started: list[int] = []
    original = fake.start_reindex

    def start_reindex(request):  # type: ignore[no-untyped-def]
        started.append(len(started) + 1)
        fake.task_script = (
            TaskScript(fail_after_polls=0) if started[-1] in failing else TaskScript(400)
        )
        return original(request)

    fake.start_reindex = start_reindex  # type: ignore[method-assign]
    return started


def test_a_catch_up_pass_that_failed_once_is_redone_on_resume(cfg, fake):
    """A transient bulk failure in a catch-up pass fails the run; once the cause is gone,
    resume runs that pass again (not the whole copy) and the run finishes."""
    with_since_field(fake)
    started = _fail_task_number(fake, failing={2})  # the main copy works, pass 1 fails
    writer = Writer(fake)
    rec = api.start(cfg, ALIAS, RunOptions(**CATCH_UP)).record
    assert rec.state is State.FAILED and "catch-up pass 1" in rec.error
    assert rec.write_policy["passes"][-1]["failed"]
    main_copies = [c for c in fake.calls if c.method == "start_reindex" and c.args[2] == "create"]
    rec = api.resume(cfg, rec.id).record
    assert rec.state is State.SWAPPED, rec.error
    again = [c for c in fake.calls if c.method == "start_reindex" and c.args[2] == "create"]
    assert again == main_copies  # the finished main copy was not started again
    passes = rec.write_policy["passes"]
    assert passes[0]["n"] == 1 and passes[0]["attempts"] == 2 and "failed" not in passes[0]
    assert len(started) >= 4  # main, failed pass 1, pass 1 again, the final pass
    writer.assert_nothing_lost()
    assert not fake.write_blocked(SOURCE)


def test_an_abort_during_a_catch_up_pass_leaves_nothing_running(fake, state_db):
    """Another shell aborts while a catch-up pass runs: the rollback cancels the pass and
    deletes its stored result, so the driving process finds the task gone. It must not
    start the pass again: the run is no longer its to drive."""
    with_since_field(fake)
    fake.task_script = TaskScript(docs_per_poll=400)
    Writer(fake)
    driver_cfg, other_shell = make_config(fake, state_db), make_config(fake, state_db)
    aborted: list[Any] = []
    original = fake.get_task

    def get_task(task_id: str):  # type: ignore[no-untyped-def]
        task = fake.tasks.get(task_id)
        in_pass = task is not None and task.request.op_type == "index"
        if in_pass and not aborted:
            aborted.append(None)  # once; the abort polls the task too
            (run,) = other_shell.repo().list()
            aborted[0] = api.abort(other_shell, run.id).record
        return original(task_id)

    fake.get_task = get_task  # type: ignore[method-assign]
    rec = api.start(driver_cfg, ALIAS, RunOptions(**CATCH_UP)).record
    assert aborted and aborted[0].state is State.ROLLED_BACK
    assert rec.state is State.ROLLED_BACK
    assert fake.list_reindex_tasks() == []  # nothing left running
    assert TARGET not in fake.indices
    starts = [i for i, c in enumerate(fake.calls) if c.method == "start_reindex"]
    rollback = next(i for i, c in enumerate(fake.calls) if c.method == "delete_index")
    assert all(i < rollback for i in starts)  # no task started after the abort
    assert not fake.write_blocked(SOURCE)


def test_a_block_lifted_during_the_copy_means_copying_again_under_it(cfg, fake):
    """Someone lifts the block while the copy runs (or a crash came right after the
    failure path took it off): the writes made since are not in the copy. The run puts
    the block back and copies again before it verifies."""
    fake.task_script = TaskScript(docs_per_poll=500)
    original = fake.get_task
    lifted: list[str] = []

    def get_task(task_id: str):  # type: ignore[no-untyped-def]
        if not lifted and "doc-00002" in fake.indices[TARGET].docs:  # copied already
            lifted.append(task_id)
            fake.remove_write_block(SOURCE)
            fake.write(ALIAS, "doc-00001", {"title": "written while it was lifted"})
            fake.write(ALIAS, "doc-00002", None)
        return original(task_id)

    fake.get_task = get_task  # type: ignore[method-assign]
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED, rec.error
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert "doc-00002" not in fake.indices[TARGET].docs
    assert rec.write_policy["passes"][-1]["resync"] and not fake.write_blocked(SOURCE)


def test_a_failed_final_catch_up_pass_lifts_the_block_and_is_redone_under_it(cfg, fake):
    """The final pass (under the block) fails: the block comes off with the failure, the
    writers go on; resume puts the block back, runs the final pass again (its since
    covers what was written meanwhile), reconciles the deletions and swaps."""
    with_since_field(fake)
    fake.task_script = TaskScript(docs_per_poll=400)
    original = fake.start_reindex
    failed: list[str] = []

    def start_reindex(request):  # type: ignore[no-untyped-def]
        final = request.op_type == "index" and request.requests_per_second is None
        fake.task_script = TaskScript(
            fail_after_polls=0 if final and not failed else None, docs_per_poll=400
        )
        if final and not failed:
            failed.append(request.dest)
        return original(request)

    fake.start_reindex = start_reindex  # type: ignore[method-assign]
    writer = Writer(fake)
    options = RunOptions(**CATCH_UP, requests_per_second=100)  # the final pass: unthrottled
    rec = api.start(cfg, ALIAS, options).record
    assert failed and rec.state is State.FAILED, rec.error
    final = rec.write_policy["passes"][-1]
    assert final["final"] and final["failed"] and not fake.write_blocked(SOURCE)
    assert rec.write_policy["resync"] is True
    refused = writer.refused
    writer.write_some()  # writes while the run is FAILED: acknowledged, none refused
    assert writer.refused == refused
    rec = api.resume(cfg, rec.id).record
    assert rec.state is State.SWAPPED, rec.error
    writer.assert_nothing_lost()
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    again = rec.write_policy["passes"][-1]
    assert again["n"] == final["n"] and again["attempts"] == 2 and "failed" not in again
    assert len(rec.write_policy["blocked_periods"]) == 2 and not fake.write_blocked(SOURCE)


def test_a_target_deleted_during_catch_up_is_never_copied_into(cfg, fake):
    with_since_field(fake)
    fake.task_script = TaskScript(docs_per_poll=400)
    original = fake.list_reindex_tasks
    deleted: list[str] = []

    def list_reindex_tasks(opaque_id=None):  # type: ignore[no-untyped-def]
        passes = [t for t in fake.tasks.values() if t.request.op_type == "index"]
        if passes and not deleted:  # the first pass has started: someone deletes the target
            deleted.append(TARGET)
            fake.delete_index(TARGET)
        return original(opaque_id)

    fake.list_reindex_tasks = list_reindex_tasks  # type: ignore[method-assign]
    Writer(fake)
    rec = api.start(cfg, ALIAS, RunOptions(**CATCH_UP)).record
    assert deleted and rec.state is State.FAILED, rec.error
    assert f"target {TARGET} was deleted" in rec.error  # no pass copies into it
    assert original() == [] and TARGET not in fake.indices  # the pass was stopped
    assert list(fake.get_alias(ALIAS)) == [SOURCE]
