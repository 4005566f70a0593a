"""Lifecycle policies follow the alias (steps/lifecycle.py), on the fake engine.

Elasticsearch ILM: the source's ``index.lifecycle.*`` settings stay off the target until
the swap, then go onto it with the source's age (``origination_date``), and ILM comes off
the old source. OpenSearch ISM: an ``ism_template`` matching the target's name never
attaches a policy to it before the swap; the policy that managed the source moves to the
target after the swap. Undo moves both back; a rollback before the swap never touches
the source's lifecycle. A crash anywhere in the hand-over converges.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reindex_fsm import api, events, render
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import EngineError, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps import swap
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, TARGET, make_cluster, make_config

# a target the engine can roll over from (the default <alias>-<timestamp> it cannot)
NEXT = "documents-000002"

CREATED = "1690000000000"  # the source's index.creation_date
ILM = {
    "index.lifecycle.name": "logs-policy",
    "index.lifecycle.rollover_alias": ALIAS,
    "index.creation_date": CREATED,
}
AUTO = "index.plugins.index_state_management.auto_manage"
LEGACY_AUTO = "index.opendistro.index_state_management.auto_manage"


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def emit(self, run: Any, event: Any) -> None:
        if isinstance(event, events.Warning) and event.name != "write_block":
            self.warnings.append(event.text)


class SimulatedCrash(BaseException):
    pass


def _die(name: str) -> None:
    raise SimulatedCrash(name)


def es_cluster(**settings: Any) -> FakeEngine:
    fake = FakeEngine(flavor="elasticsearch", version="8.15.3")
    fake.indices = make_cluster(300).indices
    fake.indices[SOURCE].settings.update({**ILM, **settings})
    return fake


def ism_cluster(managed: bool = True) -> FakeEngine:
    fake = make_cluster(300)
    # the template matches the source's name and every target's made from the alias
    fake.add_ism_policy("hot-delete", patterns=(f"{ALIAS}-*",))
    fake.indices[SOURCE].settings["index.plugins.index_state_management.rollover_alias"] = ALIAS
    if managed:
        fake.manage(SOURCE, "hot-delete", "hot")
    return fake


def created_with(fake: FakeEngine) -> dict[str, Any]:
    """Record the settings the target is created with, and whether ISM managed it then."""
    seen: dict[str, Any] = {}
    original = fake.create_index

    def create_index(index: str, settings: Any, mappings: Any) -> None:
        original(index, settings, mappings)
        seen.update(settings=dict(settings), managed=index in fake.ism_managed)

    fake.create_index = create_index  # type: ignore[method-assign]
    return seen


def run(fake: FakeEngine, tmp_path: Any, **options: Any) -> tuple[Any, Recorder, Any]:
    rec = Recorder()
    cfg = dataclasses.replace(make_config(fake, f"sqlite:///{tmp_path}/s.db"), reporter=rec)
    return (
        api.start(cfg, ALIAS, RunOptions(verify=True, target_index=NEXT, **options)).record,
        rec,
        cfg,
    )


# -- Elasticsearch ILM -----------------------------------------------------------------------


def test_ilm_settings_are_planned_for_after_the_swap(tmp_path):
    fake = es_cluster()
    cfg = make_config(fake, f"sqlite:///{tmp_path}/s.db")
    p = api.plan(cfg, ALIAS, RunOptions(target_index=NEXT))
    assert not any(k.startswith("index.lifecycle.") for k in p.settings)
    assert p.lifecycle is not None
    assert p.lifecycle["after_swap"] == {
        "index.lifecycle.name": "logs-policy",
        "index.lifecycle.origination_date": CREATED,  # the source's age goes with it
        "index.lifecycle.rollover_alias": ALIAS,
    }
    shown = swap.plan(p)["after_the_swap"]
    assert shown["settings"] == p.lifecycle["after_swap"]
    assert shown["ilm_policy"] == "logs-policy" and shown["notes"]
    lines = render.confirmation(p, RunOptions())
    assert f"lifecycle:  {p.lifecycle['notes'][0]}" in lines
    assert p.lifecycle["notes"][0].startswith("ILM policy logs-policy manages the target from")


def test_ilm_manages_the_target_only_from_the_swap_with_the_sources_age(tmp_path):
    fake = es_cluster()
    seen = created_with(fake)
    record, rec, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED, record.error
    assert not any(k.startswith("index.lifecycle.") for k in seen["settings"])
    target = fake.indices[NEXT].settings
    assert target["index.lifecycle.name"] == "logs-policy"
    assert target["index.lifecycle.rollover_alias"] == ALIAS
    assert target["index.lifecycle.origination_date"] == CREATED
    assert "index.lifecycle.name" not in fake.indices[SOURCE].settings  # ILM came off it
    assert fake.call_names().count("ilm_remove_policy") == 1
    assert record.swap_record["lifecycle"]["ilm_removed_from"] == SOURCE
    assert rec.warnings == []


def test_an_origination_date_of_the_source_is_kept_and_parsing_is_not_carried(tmp_path):
    fake = es_cluster(
        **{
            "index.lifecycle.origination_date": "1600000000000",
            "index.lifecycle.parse_origination_date": "true",
        }
    )
    record, _, _ = run(fake, tmp_path)
    target = fake.indices[NEXT].settings
    assert target["index.lifecycle.origination_date"] == "1600000000000"
    assert "index.lifecycle.parse_origination_date" not in target
    assert any("parse_origination_date" in n for n in record.plan["lifecycle"]["notes"])


def test_a_source_without_lifecycle_plans_nothing_for_after_the_swap(tmp_path):
    fake = FakeEngine(flavor="elasticsearch", version="8.15.3")
    fake.indices = make_cluster(300).indices
    record, _, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED
    assert record.plan["lifecycle"] is None and "lifecycle" not in record.swap_record
    assert not {"ilm_explain", "ilm_remove_policy", "ism_explain"} & set(fake.call_names())


def test_undo_hands_ilm_back_to_the_previous_index(tmp_path):
    fake = es_cluster()
    record, _, cfg = run(fake, tmp_path)
    undone = api.undo(cfg, record.id)
    assert undone.state is State.UNDONE
    source = fake.indices[SOURCE].settings
    assert source["index.lifecycle.name"] == "logs-policy"
    assert source["index.lifecycle.rollover_alias"] == ALIAS
    assert "index.lifecycle.origination_date" not in source  # it never had one
    assert "index.lifecycle.name" not in fake.indices[NEXT].settings
    assert fake.indices[SOURCE].aliases[ALIAS] == {"is_write_index": True}


def test_a_rollback_before_the_swap_leaves_the_sources_lifecycle_alone(tmp_path):
    fake = es_cluster()
    before = dict(fake.indices[SOURCE].settings)
    fake.fail_always("update_aliases")
    record, _, _ = run(fake, tmp_path, rollback_on_failure=True)
    assert record.state is State.ROLLED_BACK
    assert fake.indices[SOURCE].settings == before
    assert "ilm_remove_policy" not in fake.call_names()


# -- OpenSearch ISM --------------------------------------------------------------------------


def test_no_ism_template_attaches_a_policy_to_the_target_before_the_swap(tmp_path):
    fake = ism_cluster()
    seen = created_with(fake)
    record, rec, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED, record.error
    assert seen["managed"] is False  # auto_manage false at creation: the template skipped it
    assert seen["settings"][AUTO] == seen["settings"][LEGACY_AUTO] == "false"
    assert "index.plugins.index_state_management.rollover_alias" not in seen["settings"]
    # after the swap: the policy manages the target, not the old source
    assert fake.ism_managed[NEXT]["policy_id"] == "hot-delete"
    assert SOURCE not in fake.ism_managed
    target = fake.indices[NEXT].settings
    assert target["index.plugins.index_state_management.rollover_alias"] == ALIAS
    assert AUTO not in target and LEGACY_AUTO not in target  # back to the source's (default)
    assert fake.indices[SOURCE].settings[AUTO] == "false"  # no template rebinds the old one
    assert record.swap_record["lifecycle"]["ism_added_to"] == NEXT
    assert any("min_index_age" in n for n in record.plan["lifecycle"]["notes"])
    assert rec.warnings == []


def test_a_policy_attached_to_the_target_anyway_is_removed_before_the_swap(tmp_path):
    fake = ism_attaching_cluster()
    record, _, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED
    assert fake.ism_managed[NEXT]["policy_id"] == "hot-delete"
    assert fake.call_names().count("ism_remove_policy") == 2  # off the target, off the source


def test_an_unmanaged_source_gives_the_target_no_policy(tmp_path):
    fake = ism_cluster(managed=False)
    record, _, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED
    assert NEXT not in fake.ism_managed and SOURCE not in fake.ism_managed
    assert "ism_add_policy" not in fake.call_names()
    # left false: no sweep of the template attaches a policy the source did not have
    target = fake.indices[NEXT].settings
    assert target[AUTO] == target[LEGACY_AUTO] == "false"
    assert AUTO not in fake.indices[SOURCE].settings


def test_no_ism_plugin_no_lifecycle_work(tmp_path):
    fake = make_cluster(300)
    record, _, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED and record.plan["lifecycle"] is None
    assert fake.call_names().count("ism_explain") == 1  # the plan's question, answered None


def test_a_policy_that_cannot_be_added_is_a_warning_not_a_failed_swap(tmp_path):
    fake = ism_cluster()
    original = fake.update_aliases

    def update_aliases(actions: list[dict[str, Any]]) -> None:
        original(actions)
        del fake.ism_policies["hot-delete"]  # deleted by someone meanwhile

    fake.update_aliases = update_aliases  # type: ignore[method-assign]
    record, rec, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED
    assert "Could not load policy" in record.swap_record["lifecycle"]["failed"]
    (warning,) = rec.warnings
    assert warning.startswith(f"the alias is on {NEXT}, but its lifecycle could not be")
    assert fake.ism_managed[SOURCE]["policy_id"] == "hot-delete"  # not taken off the source


def test_undo_moves_the_ism_policy_back(tmp_path):
    fake = ism_cluster()
    record, _, cfg = run(fake, tmp_path)
    assert api.undo(cfg, record.id).state is State.UNDONE
    assert fake.ism_managed[SOURCE]["policy_id"] == "hot-delete"
    assert NEXT not in fake.ism_managed
    assert AUTO not in fake.indices[SOURCE].settings  # as it was before the run


def test_a_rollback_before_the_swap_leaves_the_sources_policy_alone(tmp_path):
    fake = ism_cluster()
    before = dict(fake.indices[SOURCE].settings)
    fake.fail_always("update_aliases")
    record, _, _ = run(fake, tmp_path, rollback_on_failure=True)
    assert record.state is State.ROLLED_BACK
    assert fake.ism_managed == {SOURCE: {"policy_id": "hot-delete", "state": "hot"}}
    assert fake.indices[SOURCE].settings == before


# -- crashes in the hand-over ----------------------------------------------------------------


def ism_attaching_cluster() -> FakeEngine:
    """An ISM whose template attaches its policy to every new index, auto_manage or not."""
    fake = ism_cluster()
    fake.add_ism_policy("other-policy")
    original = fake.create_index

    def create_index(index: str, settings: Any, mappings: Any) -> None:
        original(index, settings, mappings)
        fake.manage(index, "other-policy", "init")

    fake.create_index = create_index  # type: ignore[method-assign]
    return fake


CLUSTERS = {"ilm": es_cluster, "ism": ism_cluster, "ism-attaching": ism_attaching_cluster}


def _lifecycle_state(fake: FakeEngine) -> dict[str, Any]:
    keep = ("index.lifecycle.", "index.plugins.", "index.opendistro.")
    return {
        "settings": {
            name: {k: v for k, v in idx.settings.items() if k.startswith(keep)}
            for name, idx in fake.indices.items()
        },
        "ism": {k: v["policy_id"] for k, v in fake.ism_managed.items()},
        "aliases": {name: idx.aliases for name, idx in fake.indices.items()},
    }


def _lifecycle_points(kind: str, tmp_path: Any, verb: str) -> list[str]:
    fake = CLUSTERS[kind]()
    points = Crashpoints()
    cfg = make_config(fake, f"sqlite:///{tmp_path}/points-{verb}.db", crash=lambda: points)
    record = api.start(cfg, ALIAS, RunOptions(verify=True, target_index=NEXT)).record
    if verb == "undo":
        points.seen.clear()
        api.undo(cfg, record.id)
    return [p for p in points.seen if p.startswith(("lifecycle.", "swap.", "undo.", "commit."))]


@pytest.mark.parametrize(
    ("kind", "verb"),
    [
        ("ilm", "start"),
        ("ilm", "undo"),
        ("ism", "start"),
        ("ism", "undo"),
        ("ism-attaching", "start"),
    ],
)
def test_a_crash_at_each_point_of_the_hand_over_converges(kind, verb, tmp_path):
    clean = CLUSTERS[kind]()
    cfg = make_config(clean, f"sqlite:///{tmp_path}/clean.db")
    record = api.start(cfg, ALIAS, RunOptions(verify=True, target_index=NEXT)).record
    if verb == "undo":
        api.undo(cfg, record.id)
    expected = _lifecycle_state(clean)
    points = _lifecycle_points(kind, tmp_path, verb)
    assert any(p.startswith("lifecycle.") for p in points), points
    for k, name in enumerate(points, start=1):
        fake = CLUSTERS[kind]()
        db = f"sqlite:///{tmp_path}/crash-{verb}-{k}.db"
        nth = points[:k].count(name)
        if verb == "start":
            dying = make_config(fake, db, crash=lambda n=name, i=nth: Crashpoints(f"{n}#{i}", _die))
            with pytest.raises(SimulatedCrash):
                api.start(dying, ALIAS, RunOptions(verify=True, target_index=NEXT))
            (rec,) = make_config(fake, db).repo().list()
            if not rec.finished:
                api.resume(make_config(fake, db), rec.id)
        else:
            rec = api.start(
                make_config(fake, db), ALIAS, RunOptions(verify=True, target_index=NEXT)
            ).record
            dying = make_config(fake, db, crash=lambda n=name, i=nth: Crashpoints(f"{n}#{i}", _die))
            with pytest.raises(SimulatedCrash):
                api.undo(dying, rec.id)
            if make_config(fake, db).repo().get(rec.id).state is not State.UNDONE:
                api.undo(make_config(fake, db), rec.id)
        assert _lifecycle_state(fake) == expected, f"crash at {name}#{nth}"


def test_a_target_name_the_engine_cannot_roll_over_from_is_refused(tmp_path):
    fake = es_cluster()
    cfg = make_config(fake, f"sqlite:///{tmp_path}/s.db")
    with pytest.raises(UsageError) as refused:
        api.start(cfg, ALIAS, RunOptions())  # the default name: documents-<timestamp>
    assert f"cannot roll over from the target name {TARGET!r}" in str(refused.value)
    assert "index.lifecycle.rollover_alias=documents" in str(refused.value)
    assert refused.value.hint == "give --target-index documents-v1-000002; nothing was done"
    assert cfg.repo().list() == [] and TARGET not in fake.indices
    fake.indices["logs-000007"] = fake.indices.pop(SOURCE)
    with pytest.raises(UsageError) as again:
        api.plan(cfg, ALIAS, RunOptions(target_index="logs-7x"))
    assert again.value.hint == "give --target-index logs-000008; nothing was done"


@pytest.mark.parametrize(
    "aliases",
    [
        {ALIAS: {"is_write_index": True}, "read": {}, "old": {"is_write_index": False}},
        {ALIAS: {}, "logs": {"is_write_index": True, "filter": {"term": {"a": 1}}}},
    ],
    ids=["write-read-false", "implicit-and-filtered"],
)
def test_each_alias_lands_on_the_target_with_its_write_flag_as_it_was(aliases, tmp_path):
    fake = make_cluster(300)
    fake.indices[SOURCE].aliases = {k: dict(v) for k, v in aliases.items()}
    fake.add_index("documents-v0", aliases={"logs": {"is_write_index": False}})  # older one
    record, _, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED
    assert fake.indices[NEXT].aliases == aliases
    assert fake.indices[SOURCE].aliases == {}
    assert fake.indices["documents-v0"].aliases == {"logs": {"is_write_index": False}}
    (request,) = record.plan["alias_actions"][:1]
    assert "remove" in request  # removes first: never two write indices


def test_an_ism_explain_refused_keeps_templates_off_and_says_the_policy_stays(tmp_path):
    fake = ism_cluster()
    fake.fail_always("ism_explain", EngineError("security_exception: no permissions", status=403))
    seen = created_with(fake)
    record, rec, _ = run(fake, tmp_path)
    assert record.state is State.SWAPPED, record.error
    assert seen["settings"][AUTO] == "false" and NEXT not in fake.ism_managed
    assert fake.ism_managed[SOURCE]["policy_id"] == "hot-delete"  # not moved: said so
    assert any("was refused (HTTP 403)" in w for w in rec.warnings)
    assert "ism_refused" in record.swap_record["lifecycle"]
