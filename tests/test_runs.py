"""Runs on the fake engine: every transition, failure path and rollback, with the exact
sequence of engine calls."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import opaque_id_for
from reindex_fsm.errors import (
    EngineError,
    EngineUnreachable,
    ExitCode,
    RunFinished,
    SwappedNotRolledBack,
    TargetRefused,
)
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, N_DOCS, SOURCE, STORES, TARGET


def preflight_calls(flavor: str = "opensearch") -> list[str]:
    return [
        "get_alias",  # documents -> documents-v1
        "get_index_aliases",
        "cluster_health",
        "index_status",  # open? primary store size
        "get_index",  # _source enabled? final replicas
        "data_node_disks",
        "disk_watermarks",  # the cluster's own, not a fixed 85 %
        # privileges: OpenSearch asks whether the security plugin is there
        "plugins" if flavor == "opensearch" else "check_privileges",
    ]


PLAN_CALLS = [
    "info",
    *preflight_calls(),
    "get_alias",  # documents -> documents-v1
    "get_index_aliases",  # every alias of documents-v1
    "index_exists",  # is the target name free?
    "get_alias",
    "get_index",  # source settings and mappings
    "count",  # source snapshot
    "ism_explain",  # is there an ISM plugin, and a policy on the source? (no plugin here)
    "index_status",  # the source's primary store size: the copy's scroll batch size
    "index_templates",  # the templates matching the target's name (none)
    "get_lease",  # the engine lease on the alias: free
    "put_lease",  # taken (op_type=create)
]


# The engine calls of an abort during REINDEXING.
ABORT_CALLS = [
    "info",  # the run's own cluster? (its UUID)
    "get_lease",  # the run's own lease (left by the Ctrl-C): taken back at once
    "put_lease",
    "put_lease",  # verified before each transition (-> ABORTING) and irreversible write
    "index_exists",  # wrote anything? (else CANCELLED)
    "get_alias",  # the alias on the run's own target? (then the swap was made: no rollback)
    "get_alias",  # ...asked again by the rollback itself
    "list_reindex_tasks",
    "get_task",
    "put_lease",
    "cancel_task",
    "get_task",
    "get_alias",  # where each alias of the plan is, before the delete
    "get_alias",
    "index_exists",
    "get_index",  # the target is this run's
    "get_index_aliases",  # ...and carries no alias (not live)
    "put_lease",
    "delete_index",
    "get_alias",  # and after it: none went with the deleted target
    "get_alias",
    "index_exists",  # the source is still the run's (its index.uuid)
    "get_index",
    "put_lease",
    "delete_task_result",  # the cancelled copy's stored result
    "index_exists",  # the block comes off the run's own source only
    "get_index",
    "index_exists",
    "put_lease",
    "remove_write_block",  # the source takes writes again
    "put_lease",  # -> ROLLED_BACK
    "delete_lease",  # the run is finished
]


def run_calls(polls: int) -> list[str]:
    return [
        "index_exists",
        "index_templates",  # any template matching the target's name now? (none)
        "put_lease",  # the lease verified (a conditional renewal) before each write that
        "create_index",  # cannot be taken back, and before each transition is stored
        "get_index",  # the target's uuid, stored with the plan: its identity
        "get_index_aliases",  # ...and it is the planned one: no alias a template added
        "put_lease",  # -> TARGET_CREATED
        "get_index",  # was the source write-blocked already?
        "put_lease",  # the block's intent (a checkpoint with an event)
        "put_lease",
        "add_write_block",  # --write-policy block: from just before the copy
        "refresh",  # every acknowledged write visible to the copy
        "count",  # the count verification compares with
        "list_reindex_tasks",
        "get_index",  # never copy into a target that is not this run's
        "put_lease",
        "start_reindex",
        "put_lease",  # -> REINDEXING
        *["get_index", "get_task"] * polls,  # each poll: still the index this run created?
        "get_index",  # and once the copy is done
        "put_lease",  # -> VERIFYING
        "index_exists",  # swapped before a crash? then verification is done
        "get_index_aliases",
        "get_index",  # the target is still the run's: its settings are put back
        "index_exists",  # is the run's write block still on? (else: block, copy again)
        "get_index",
        "put_lease",
        "put_settings",  # final replicas and refresh interval back (the planned count)
        "cluster_health",  # how many data nodes
        "cluster_health",  # wait for the health they allow
        "refresh",
        "count",
        "get_index_aliases",
        "get_index_aliases",
        "get_index",  # the target is this run's, with the planned mappings and settings
        "refresh",  # the target's marks, stored before the swap, for undo's check
        "count",
        "max_seq_nos",
        "put_lease",
        "update_aliases",
        "put_lease",
        "delete_task_result",  # the copy's stored result
        "index_exists",
        "put_lease",
        "remove_write_block",  # ... until the swap
        "put_lease",  # -> SWAPPED
        "delete_lease",  # released: the run is finished
    ]


def events(cfg, run_id):
    return [(e.from_state, e.to_state, e.trigger) for e in cfg.repo().events(run_id)]


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_full_run_swaps_with_exact_engine_calls(cfg, fake):
    before = fake.snapshot()[SOURCE]
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    rec = outcome.record
    assert rec.state is State.SWAPPED and outcome.exit_code == ExitCode.OK
    assert fake.call_names() == PLAN_CALLS + run_calls(polls=3)
    assert rec.target_index == TARGET
    assert rec.source_count == rec.target_count == N_DOCS
    # documents and aliases moved, with their properties; source untouched otherwise
    assert fake.indices[TARGET].docs == before["docs"]
    assert fake.indices[TARGET].aliases == before["aliases"]
    assert fake.indices[SOURCE].aliases == {}
    assert fake.indices[SOURCE].docs == before["docs"]
    assert events(cfg, rec.id) == [
        (None, "PLANNED", "plan"),
        ("PLANNED", "TARGET_CREATED", "create_target"),
        ("TARGET_CREATED", "TARGET_CREATED", "write_block"),
        ("TARGET_CREATED", "REINDEXING", "start_copy"),
        ("REINDEXING", "VERIFYING", "copy_done"),
        ("VERIFYING", "SWAPPED", "verified"),
    ]
    assert cfg.repo().active_run_for(ALIAS) is None  # lock released


def test_reindex_request_carries_run_id_and_create_op(cfg, fake):
    rec = api.start(cfg, ALIAS, RunOptions()).record
    (task,) = fake.tasks.values()
    assert task.request.opaque_id == opaque_id_for(rec.id)
    assert task.request.op_type == "create" and task.request.conflicts == "abort"
    assert rec.task_id == task.task_id


def test_target_settings_and_mappings_copied_with_overrides(cfg, fake):
    opts = RunOptions(
        settings_overrides={"index.number_of_shards": 5, "index.refresh_interval": None},
        mappings_override={"properties": {"tags": {"type": "text"}}},
    )
    rec = api.start(cfg, ALIAS, opts).record
    target = fake.indices[TARGET]
    assert target.settings["index.number_of_shards"] == 5
    assert "index.refresh_interval" not in target.settings
    assert target.settings["index.analysis.analyzer.folded.filter"] == ["lowercase", "asciifolding"]
    created = rec.plan["settings"]
    assert not any(
        k.startswith(("index.uuid", "index.creation_date", "index.version", "index.provided_name"))
        for k in created
    )
    props = target.mappings["properties"]
    assert props["tags"] == {"type": "text"}
    assert props["title"]["fields"] == {"raw": {"type": "keyword"}}
    assert target.mappings["dynamic_templates"][0]["strings"]["mapping"] == {"type": "keyword"}
    assert target.mappings["_meta"]["reindex_fsm"]["run_id"] == rec.id


def test_swap_is_one_atomic_request_with_must_exist(cfg, fake):
    rec = api.start(cfg, ALIAS, RunOptions()).record
    actions = rec.plan["alias_actions"]
    assert [next(iter(a)) for a in actions] == ["remove", "remove", "add", "add"]
    assert all(a["remove"]["must_exist"] for a in actions[:2])
    public = next(a["add"] for a in actions[2:] if a["add"]["alias"] == "documents-public")
    assert public["filter"] == {"term": {"tags": "t1"}} and public["index_routing"] == "1"
    assert fake.call_names().count("update_aliases") == 1


def test_must_exist_left_out_on_old_opensearch(cfg, fake):
    from reindex_fsm.engine.base import EngineInfo

    fake.set_info(EngineInfo("opensearch", "2.11.0"))
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED
    assert not any("must_exist" in a.get("remove", {}) for a in rec.plan["alias_actions"])


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_verification_failure_rolls_back(cfg, fake):
    original_refresh = fake.refresh

    def lossy_refresh(index):
        original_refresh(index)
        if index == TARGET:
            for doc_id in list(fake.indices[TARGET].docs)[:10]:
                del fake.indices[TARGET].docs[doc_id]

    fake.refresh = lossy_refresh
    before = fake.snapshot()
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True, rollback_on_failure=True))
    rec = outcome.record
    assert rec.state is State.ROLLED_BACK
    assert outcome.exit_code == ExitCode.VERIFICATION_FAILED
    assert "2490" in rec.error and str(N_DOCS) in rec.error
    assert fake.snapshot() == before  # alias untouched, target gone
    assert events(cfg, rec.id)[-2:] == [
        ("VERIFYING", "FAILED", "fail"),
        ("FAILED", "ROLLED_BACK", "roll_back"),
    ]
    assert fake.call_names(mutating_only=True) == [
        "put_lease",  # taken
        "put_lease",  # verified before create_index ...
        "create_index",
        "put_lease",  # ... and before each transition: -> TARGET_CREATED
        "put_lease",  # the block's intent
        "put_lease",
        "add_write_block",
        "put_lease",
        "start_reindex",
        "put_lease",  # -> REINDEXING
        "put_lease",  # -> VERIFYING
        "put_lease",
        "put_settings",
        "put_lease",  # -> FAILED
        "put_lease",
        "delete_index",
        "put_lease",
        "delete_task_result",  # the finished copy's stored result
        "put_lease",
        "remove_write_block",
        "put_lease",  # -> ROLLED_BACK
        "delete_lease",  # released: ROLLED_BACK is the end
    ]


def test_failure_without_rollback_keeps_target_and_alias(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    rec = outcome.record
    assert rec.state is State.FAILED and outcome.exit_code == ExitCode.RUN_FAILED
    assert rec.failed_from is State.REINDEXING
    assert "injected bulk failure" in rec.error
    assert TARGET in fake.indices  # kept for inspection
    assert ALIAS in fake.indices[SOURCE].aliases
    assert cfg.repo().active_run_for(ALIAS).id == rec.id  # a human decides: alias stays locked


def test_failed_run_can_be_aborted(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions()).record
    outcome = api.abort(cfg, rec.id)
    assert outcome.record.state is State.ROLLED_BACK
    assert TARGET not in fake.indices and ALIAS in fake.indices[SOURCE].aliases
    assert cfg.repo().active_run_for(ALIAS) is None


def test_failed_run_retried_by_resume(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True, keep_block_on_failure=True)).record
    fake.task_script = TaskScript()
    outcome = api.resume(cfg, rec.id)
    assert outcome.record.state is State.SWAPPED
    assert outcome.record.error is None
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    # the retry copied again idempotently
    second = list(fake.tasks.values())[-1]
    assert second.request.conflicts == "proceed" and second.request.op_type == "create"


def test_failed_run_with_rollback_pending_rolls_back_on_resume(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    fake.fail_on("delete_index", error=EngineUnreachable(fake.url, "connection refused"))
    with pytest.raises(EngineUnreachable):
        api.start(cfg, ALIAS, RunOptions(rollback_on_failure=True))
    (rec,) = cfg.repo().list()
    assert rec.state is State.FAILED
    outcome = api.resume(cfg, rec.id)
    assert outcome.record.state is State.ROLLED_BACK
    assert TARGET not in fake.indices


def test_vanished_task_is_copied_again_and_verified(cfg, fake):
    fake.task_script = TaskScript(docs_per_poll=1000, vanish_after_polls=1)
    original = fake.start_reindex

    def start_reindex(request):  # the first task vanishes after one poll, the second behaves
        task_id = original(request)
        fake.task_script = TaskScript()
        return task_id

    fake.start_reindex = start_reindex
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED
    assert rec.copy_attempts == 2
    first_task, second_task = fake.tasks.values()
    assert first_task.vanished and second_task.request.conflicts == "proceed"
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    triggers = [t for _, _, t in events(cfg, rec.id)]
    assert "copy_restarted" in triggers


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_abort_during_reindexing_cancels_and_rolls_back(cfg, fake):
    fake.task_script = TaskScript(stall=True)
    fake.fail_on("get_task", nth=2, error=KeyboardInterrupt())  # the operator hits Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        api.start(cfg, ALIAS, RunOptions())
    (rec,) = cfg.repo().list()
    assert rec.state is State.REINDEXING
    before_abort = len(fake.calls)
    outcome = api.abort(cfg, rec.id)
    assert outcome.record.state is State.ROLLED_BACK and outcome.exit_code == ExitCode.OK
    assert [c.method for c in fake.calls[before_abort:]] == ABORT_CALLS
    assert TARGET not in fake.indices and ALIAS in fake.indices[SOURCE].aliases


def test_abort_of_planned_run_cancels(cfg, fake):
    fake.fail_on("create_index", error=EngineUnreachable(fake.url, "connection refused"))
    with pytest.raises(EngineUnreachable):
        api.start(cfg, ALIAS, RunOptions())
    (rec,) = cfg.repo().list()
    assert rec.state is State.PLANNED
    assert api.abort(cfg, rec.id).record.state is State.CANCELLED


def test_unreachable_engine_mid_run_leaves_state_and_resume_finishes(cfg, fake):
    fake.fail_on("get_task", nth=2, error=EngineUnreachable(fake.url, "connection refused"))
    with pytest.raises(EngineUnreachable):
        api.start(cfg, ALIAS, RunOptions(verify=True))
    (rec,) = cfg.repo().list()
    assert rec.state is State.REINDEXING and rec.task_id
    assert rec.progress["created"] == 1000
    outcome = api.resume(cfg, rec.id)
    assert outcome.record.state is State.SWAPPED
    assert len(fake.tasks) == 1  # the running task was followed, not restarted


def test_engine_refusal_at_create_ends_the_run_cancelled_with_reason(cfg, fake):
    """A 400 on the create is the engine refusing the planned settings or mappings: an
    option error (exit 2), not a failure to roll back (tests/test_refused_input.py)."""
    fake.fail_on(
        "create_index", error=EngineError("illegal_argument_exception: bad analyzer", status=400)
    )
    with pytest.raises(TargetRefused) as refused:
        api.start(cfg, ALIAS, RunOptions(rollback_on_failure=True))
    assert refused.value.exit_code == ExitCode.USAGE
    (run,) = cfg.repo().list()
    assert run.state is State.CANCELLED
    assert "bad analyzer" in run.error and "bad analyzer" in refused.value.one_line()


def test_foreign_index_at_target_name_when_creating(cfg, fake):
    """Someone created the target name between plan and create: never delete it."""
    p = api.plan(cfg, ALIAS, RunOptions())
    fake.add_index(p.target_index, {"x": {"y": 1}})
    outcome = api.start(cfg, ALIAS, RunOptions(rollback_on_failure=True), planned=p)
    assert outcome.record.state is State.ROLLED_BACK
    assert "outside reindex-fsm" in outcome.record.error
    assert fake.indices[p.target_index].docs == {"x": {"y": 1}}  # left alone


def test_resume_of_finished_run_is_refused(cfg):
    rec = api.start(cfg, ALIAS, RunOptions()).record
    with pytest.raises(RunFinished):
        api.resume(cfg, rec.id)


def test_swap_already_done_is_recognised_on_resume(cfg, fake):
    # the first refresh is the source's, under the write block; the second the target's
    fake.fail_on("refresh", nth=2, error=EngineUnreachable(fake.url, "timeout"))
    with pytest.raises(EngineUnreachable):
        api.start(cfg, ALIAS, RunOptions())
    (rec,) = cfg.repo().list()
    assert rec.state is State.VERIFYING
    fake.update_aliases(rec.plan["alias_actions"])  # as if the swap ran, then the process died
    n = len(fake.calls)
    assert api.resume(cfg, rec.id).record.state is State.SWAPPED
    assert "update_aliases" not in [c.method for c in fake.calls[n:]]


def test_abort_after_unrecorded_swap_records_it_and_keeps_the_live_target(cfg, fake):
    fake.fail_on("refresh", nth=2, error=EngineUnreachable(fake.url, "timeout"))
    with pytest.raises(EngineUnreachable):
        api.start(cfg, ALIAS, RunOptions())
    (rec,) = cfg.repo().list()
    fake.update_aliases(rec.plan["alias_actions"])  # the swap, made by hand here
    with pytest.raises(SwappedNotRolledBack, match="was not rolled back"):
        api.abort(cfg, rec.id)
    assert cfg.repo().get(rec.id).state is State.SWAPPED
    assert set(fake.indices[TARGET].aliases) == {ALIAS, "documents-public"}
    assert fake.indices[SOURCE].aliases == {}
    assert cfg.repo().active_run_for(ALIAS) is None


def test_polling_backs_off_without_real_time(cfg, fake):
    fake.task_script = TaskScript(docs_per_poll=100)
    api.start(cfg, ALIAS, RunOptions())
    sleeps = cfg.sleep.__self__.sleeps
    assert len(sleeps) == N_DOCS // 100 - 1
    assert sleeps[0] == 0.5 and max(sleeps) == 2.0
    assert sleeps == sorted(sleeps)


def test_bulk_load_tuning_during_copy_and_restored_before_verify(cfg, fake):
    seen = {}
    original = fake.start_reindex

    def start_reindex(request):
        seen.update(fake.indices[request.dest].settings)
        return original(request)

    fake.start_reindex = start_reindex
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert seen["index.number_of_replicas"] == "0" and seen["index.refresh_interval"] == "-1"
    final = fake.indices[TARGET].settings
    assert final["index.number_of_replicas"] == "1" and final["index.refresh_interval"] == "5s"
    verified = next(e for e in cfg.repo().events(rec.id) if e.trigger == "verified")
    assert verified.detail["restored"] == {
        "index.number_of_replicas": "1",
        "index.refresh_interval": "5s",
    }


def test_bulk_load_tuning_resets_unset_refresh_to_default_and_can_be_off(cfg, fake):
    del fake.indices[SOURCE].settings["index.refresh_interval"]
    api.start(cfg, ALIAS, RunOptions(settings_overrides={"index.number_of_replicas": 2}))
    final = fake.indices[TARGET].settings
    assert "index.refresh_interval" not in final and final["index.number_of_replicas"] == 2
    fake.add_index("other-v1", {"a": {"x": 1}}, aliases={"other": {}})
    rec = api.start(cfg, "other", RunOptions(bulk_tuning=False)).record
    assert rec.plan["copy_settings"] == {}
    assert "put_settings" not in fake.call_names()[-8:]


# -- abort racing a process that is still driving the run ------------------------------------
def _other_process(cfg, fake):
    from .conftest import make_config

    return make_config(fake, cfg.state_db)


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_abort_from_another_process_while_copying(cfg, fake):
    fake.task_script = TaskScript(docs_per_poll=100)
    aborted = {}

    def sleep_then_abort(seconds):  # between two polls, an operator aborts elsewhere
        if not aborted:
            (rec,) = cfg.repo().list()
            aborted["outcome"] = api.abort(_other_process(cfg, fake), rec.id)

    cfg.sleep = sleep_then_abort
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    assert aborted["outcome"].record.state is State.ROLLED_BACK
    assert aborted["outcome"].exit_code == ExitCode.OK
    assert outcome.record.state is State.ROLLED_BACK  # the driver reports the abort...
    assert outcome.exit_code == ExitCode.ROLLED_BACK  # ...as not a success
    assert [to for _, to, _ in events(cfg, outcome.record.id)][-2:] == [
        "ABORTING",
        "ROLLED_BACK",
    ]  # never FAILED
    assert TARGET not in fake.indices and ALIAS in fake.indices[SOURCE].aliases


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_driver_waits_for_an_abort_in_progress_and_resume_finishes_it(cfg, fake):
    class Died(BaseException):
        pass

    def die(name):
        raise Died(name)

    fake.task_script = TaskScript(docs_per_poll=100)

    def sleep_then_half_abort(seconds):
        if not fake.calls or fake.calls[-1].method != "get_task":
            return cfg.clock.sleep(seconds)
        (rec,) = cfg.repo().list()
        if rec.state is State.REINDEXING:
            other = _other_process(cfg, fake)
            other.crash = lambda: Crashpoints("commit.ABORTING", die)
            with pytest.raises(Died):  # the aborting process dies right after its intent
                api.abort(other, rec.id)
        cfg.clock.sleep(seconds)

    from reindex_fsm.crashpoints import Crashpoints

    cfg.sleep = sleep_then_half_abort
    outcome = api.start(cfg, ALIAS, RunOptions())
    assert outcome.record.state is State.ABORTING  # waited, bounded, then reported it
    assert ALIAS in fake.indices[SOURCE].aliases
    resumed = api.resume(_other_process(cfg, fake), outcome.record.id)
    assert resumed.record.state is State.ROLLED_BACK
    assert TARGET not in fake.indices


@pytest.mark.parametrize("state_db", STORES, indirect=True)
def test_swap_racing_a_rollback_cannot_take_the_alias_away(cfg, fake):
    fake.fail_on("refresh", error=EngineUnreachable(fake.url, "timeout"))
    before = fake.snapshot()
    with pytest.raises(EngineUnreachable):
        api.start(cfg, ALIAS, RunOptions())
    (rec,) = cfg.repo().list()
    original_delete = fake.delete_index

    def delete_after_a_racing_swap(index):
        fake.update_aliases(rec.plan["alias_actions"])  # the driver's swap lands just now
        original_delete(index)  # ...and the aliases go with the deleted target

    fake.delete_index = delete_after_a_racing_swap
    assert api.abort(cfg, rec.id).record.state is State.ROLLED_BACK
    assert fake.snapshot() == before


def test_copy_never_writes_into_a_target_that_is_gone(cfg, fake):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.FAILED
    fake.task_script = TaskScript()
    fake.delete_index(TARGET)  # someone cleaned up by hand
    n_tasks = len(fake.tasks)
    outcome = api.resume(cfg, rec.id)
    assert outcome.record.state is State.FAILED
    assert f"target {TARGET} was deleted: not copying into it" in outcome.record.error
    assert len(fake.tasks) == n_tasks and TARGET not in fake.indices
    assert ALIAS in fake.indices[SOURCE].aliases
