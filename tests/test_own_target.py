"""The run copies into, and swaps onto, only the index it created, as it planned it: its
uuid is stored when it is created, checked at every poll of the copy and, with its
mappings and settings, right before the ``_aliases`` request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, TARGET, make_config


def at(point: str, action: Callable[[], None]) -> Callable[[], Crashpoints]:
    """A crash hook that runs ``action`` (someone else acting on the cluster) at ``point``."""
    return lambda: Crashpoints(point, lambda _name: action())


def start(fake: FakeEngine, state_db: str, point: str, action: Callable[[], None]):
    cfg = make_config(fake, state_db, crash=at(point, action))
    return api.start(cfg, ALIAS, RunOptions(verify=True))


def assert_alias_on_source(fake: FakeEngine, source_docs: dict) -> None:
    assert ALIAS in fake.indices[SOURCE].aliases
    assert not [n for n, i in fake.indices.items() if n != SOURCE and ALIAS in i.aliases]
    assert fake.indices[SOURCE].docs == source_docs


def test_the_target_uuid_is_stored_with_the_plan_when_it_is_created(cfg, fake):
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    assert outcome.record.state is State.SWAPPED
    uuid = fake.indices[TARGET].settings["index.uuid"]
    assert outcome.record.plan["target_uuid"] == uuid
    created = [e for e in cfg.repo().events(outcome.record.id) if e.to_state == "TARGET_CREATED"]
    assert created and created[0].detail == {"target": TARGET}


def test_target_deleted_during_the_copy_and_re_created_by_the_engine_fails_the_run(fake, state_db):
    """What a real engine does: the copy's next bulk request creates the index again,
    with dynamic mappings and one shard."""
    fake.task_script = TaskScript(docs_per_poll=500)
    source_docs = dict(fake.indices[SOURCE].docs)

    def delete_and_auto_create() -> None:
        fake.delete_index(TARGET)
        fake.add_index(TARGET, {"doc-09999": {"title": "x"}}, mappings={"properties": {}})

    outcome = start(fake, state_db, "checkpoint.progress#2", delete_and_auto_create)

    rec = outcome.record
    assert rec.state is State.FAILED and rec.failed_from is State.REINDEXING
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert rec.error.startswith(f"target {TARGET} was deleted during the copy; task ")
    assert "cancelled" in rec.error
    assert "the engine re-created it with default mappings" in rec.error
    assert f"reindex-fsm abort {rec.id}" in rec.error
    (task,) = fake.tasks.values()
    assert task.cancelled and task.completed  # stopped, and awaited
    assert_alias_on_source(fake, source_docs)
    # the index now under that name is not the run's: left as it was
    assert list(fake.indices[TARGET].docs) == ["doc-09999"]
    assert "update_aliases" not in fake.call_names()


def test_target_deleted_during_the_copy_stops_the_copy_before_it_re_creates_it(fake, state_db):
    fake.task_script = TaskScript(docs_per_poll=500)
    source_docs = dict(fake.indices[SOURCE].docs)
    outcome = start(fake, state_db, "checkpoint.progress#2", lambda: fake.delete_index(TARGET))
    rec = outcome.record
    assert rec.state is State.FAILED
    assert f"target {TARGET} was deleted during the copy" in rec.error
    assert "no index of that name now" in rec.error
    (task,) = fake.tasks.values()
    assert task.cancelled  # the fake would raise if the task wrote into a missing index
    assert TARGET not in fake.indices
    assert_alias_on_source(fake, source_docs)


def test_resume_of_the_failed_run_does_not_copy_into_the_re_created_index(fake, state_db):
    fake.task_script = TaskScript(docs_per_poll=500)
    outcome = start(
        fake,
        state_db,
        "checkpoint.progress#2",
        lambda: (fake.delete_index(TARGET), fake.add_index(TARGET, {})),
    )
    assert outcome.record.state is State.FAILED
    n_tasks = len(fake.tasks)
    resumed = api.resume(make_config(fake, state_db), outcome.record.id)
    assert resumed.record.state is State.FAILED
    assert f"target {TARGET} was deleted: not copying into it" in resumed.record.error
    assert len(fake.tasks) == n_tasks and ALIAS in fake.indices[SOURCE].aliases


def _replace_with_a_copy(fake: FakeEngine) -> None:
    """Someone deletes the target and creates an index of the same name, even with the
    same definition and documents (our _meta included): it is another index."""
    old = fake.indices[TARGET]
    fake.delete_index(TARGET)
    fake.add_index(TARGET, old.docs, settings=old.settings | {}, mappings=old.mappings)
    fake.indices[TARGET].settings["index.uuid"] = "uuid-someone-elses"


def test_target_replaced_between_copy_and_verify_is_neither_verified_nor_swapped(fake, state_db):
    source_docs = dict(fake.indices[SOURCE].docs)
    outcome = start(fake, state_db, "commit.VERIFYING", lambda: _replace_with_a_copy(fake))
    rec = outcome.record
    assert rec.state is State.FAILED and rec.failed_from is State.VERIFYING
    assert rec.error.startswith(
        f"target {TARGET} was replaced by another index (uuid uuid-someone-elses): "
        f"not verifying it; the alias stays on {SOURCE}"
    )
    assert_alias_on_source(fake, source_docs)
    assert "update_aliases" not in fake.call_names()
    assert "put_settings" not in fake.call_names()  # nothing written to someone's index


def test_target_replaced_after_verification_right_before_the_swap_is_not_swapped(
    fake, state_db, monkeypatch
):
    from reindex_fsm.steps import verify

    verified = verify.run

    def then_replaced(ctx):
        result = verified(ctx)
        _replace_with_a_copy(fake)
        return result

    monkeypatch.setattr(verify, "run", then_replaced)
    source_docs = dict(fake.indices[SOURCE].docs)
    outcome = api.start(make_config(fake, state_db), ALIAS, RunOptions(verify=True))
    rec = outcome.record
    assert rec.state is State.FAILED and rec.failed_from is State.VERIFYING
    assert outcome.exit_code == ExitCode.RUN_FAILED
    assert rec.error.startswith(
        f"target {TARGET} was replaced by another index (uuid uuid-someone-elses): "
        f"not swapping onto it; the alias stays on {SOURCE}"
    )
    assert_alias_on_source(fake, source_docs)
    assert "update_aliases" not in fake.call_names()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda idx: idx.mappings["properties"]["comments"].update(type="object"),
            "properties.comments.type planned 'nested', is 'object'",
        ),
        (
            lambda idx: idx.mappings["properties"].pop("title"),
            "properties.title.type planned 'text', is None",
        ),
        (
            lambda idx: idx.settings.update({"index.number_of_shards": "1"}),
            "index.number_of_shards planned '3', is '1'",
        ),
        (
            lambda idx: idx.settings.update(
                {"index.analysis.analyzer.folded.filter": ["lowercase"]}
            ),
            "index.analysis.analyzer.folded.filter planned ['lowercase', 'asciifolding']",
        ),
    ],
)
def test_target_whose_definition_changed_before_the_swap_is_not_swapped(
    fake, state_db, change, named
):
    source_docs = dict(fake.indices[SOURCE].docs)
    outcome = start(fake, state_db, "commit.VERIFYING", lambda: change(fake.indices[TARGET]))
    rec = outcome.record
    assert rec.state is State.FAILED and rec.failed_from is State.VERIFYING, rec.error
    assert f"target {TARGET} no longer has the planned definition (" in rec.error
    assert named in rec.error
    assert_alias_on_source(fake, source_docs)
    assert "update_aliases" not in fake.call_names()


def test_operational_settings_and_dynamic_fields_added_on_the_target_do_not_stop_the_swap(
    fake, state_db
):
    def tune() -> None:
        target = fake.indices[TARGET]
        target.mappings["properties"]["extra"] = {"type": "keyword"}  # dynamic mapping
        target.settings["index.routing.allocation.include._tier"] = "data_hot"

    outcome = start(fake, state_db, "commit.VERIFYING", tune)
    assert outcome.record.state is State.SWAPPED, outcome.record.error
    swap = [e for e in api.show(make_config(fake, state_db), outcome.record.id)[1]]
    assert swap[-1].detail["target"] == f"{TARGET} is this run's, with the planned definition"


def test_target_with_another_runs_meta_before_the_swap_is_not_swapped(fake, state_db):
    def retag() -> None:
        fake.indices[TARGET].mappings["_meta"]["reindex_fsm"]["run_id"] = "someone-else"

    outcome = start(fake, state_db, "commit.VERIFYING", retag)
    assert outcome.record.state is State.FAILED
    assert f"target {TARGET} is not this run's: its _meta names run someone-else" in (
        outcome.record.error
    )
    assert ALIAS in fake.indices[SOURCE].aliases
