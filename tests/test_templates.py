"""Index templates on the fake: what the plan says of the templates matching the target's
name, and the run's own template that keeps them off the target while it is created."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.engine.base import IndexTemplate
from reindex_fsm.errors import EngineError, PreflightFailed, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.render import confirmation
from reindex_fsm.steps import templates
from reindex_fsm.steps.templates import TemplateConflict, matches, matching, own_name

from .conftest import ALIAS, SOURCE, TARGET, make_cluster, make_config

SOURCE_ALIASES = set(make_cluster().indices[SOURCE].aliases)  # the live alias and one more

# A composable template as a new user would write one for the alias's indices: a setting,
# a field, another alias, and the live alias itself.
EVERYTHING = {
    "index_patterns": [f"{ALIAS}-*"],
    "priority": 100,
    "template": {
        "settings": {"index": {"max_result_window": 123}},
        "mappings": {"properties": {"from_template": {"type": "keyword"}}},
        "aliases": {"other-alias": {}, ALIAS: {}},
    },
}
LEGACY = {
    "index_patterns": [f"{ALIAS}-*"],
    "order": 3,
    "settings": {"index.max_inner_result_window": 77},
    "mappings": {"properties": {"from_legacy": {"type": "long"}}},
    "aliases": {"legacy-alias": {}},
}


class Crash(Exception):
    pass


def _die(name: str) -> None:
    raise Crash(name)


def _as_planned(fake, rec) -> None:
    """The target carries exactly what the plan said (the swap moved only the run's
    aliases onto it) and nothing of any template."""
    target = fake.indices[TARGET]
    assert set(target.aliases) == SOURCE_ALIASES
    assert "index.max_result_window" not in target.settings
    assert "index.max_inner_result_window" not in target.settings
    assert "from_template" not in target.mappings["properties"]
    assert "from_legacy" not in target.mappings["properties"]
    assert target.mappings == rec.plan["mappings"]
    assert not any(name.startswith("reindex-fsm-") for name in fake.composable_templates)


# -- matching, as the engines match -----------------------------------------------------------


def test_only_star_is_a_wildcard():
    assert matches("documents-*", "documents-2026")
    assert matches("*", "x") and matches("doc*ts-*", "documents-1")
    assert not matches("documents-*", "documents")
    assert not matches("documents-?", "documents-1")  # ? is no wildcard for the engines
    assert matches("a.b[1]", "a.b[1]") and not matches("a.b[1]", "a.b1")


def test_a_hidden_index_is_not_matched_by_a_global_pattern():
    everything = IndexTemplate("global", "composable", ("*",), 1)
    named = IndexTemplate("named", "composable", ("documents-*",), 1)
    assert matching([everything, named], "documents-1", hidden=False) == [everything, named]
    assert matching([everything, named], "documents-1", hidden=True) == [named]


# -- the plan and the dry run -----------------------------------------------------------------


def test_plan_names_every_matching_template_and_what_it_would_add(cfg, fake):
    fake.add_composable_template("docs", EVERYTHING)
    fake.add_composable_template("docs-low", {**EVERYTHING, "priority": 5})
    fake.add_legacy_template("docs-legacy", LEGACY)
    fake.add_composable_template("unrelated", {"index_patterns": ["logs-*"], "priority": 100})
    before = fake.snapshot()
    p = api.plan(cfg, ALIAS, RunOptions())
    assert fake.snapshot() == before and fake.call_names(mutating_only=True) == []
    by_name = {t["name"]: t for t in p.templates}
    assert list(by_name) == ["docs", "docs-low", "docs-legacy"]
    docs = by_name["docs"]
    assert docs["applies"] and docs["priority"] == 100 and docs["adds_live_alias"]
    assert docs["adds"] == {
        "settings": {"index.max_result_window": "123"},
        "fields": ["from_template"],
        "mappings": [],
        "aliases": [ALIAS, "other-alias"],
    }
    assert "would apply" in docs["why"]
    assert not by_name["docs-low"]["applies"] and "higher priority" in by_name["docs-low"]["why"]
    legacy = by_name["docs-legacy"]
    assert not legacy["applies"] and legacy["order"] == 3
    assert "composable template docs matches" in legacy["why"]
    assert legacy["adds"]["aliases"] == ["legacy-alias"]
    assert (
        "(the live alias)" in docs["summary"] and "index.max_result_window=123" in docs["summary"]
    )
    (step,) = [s for s in api.describe(p, RunOptions()) if s["step"] == "create_target"]
    assert step["templates"] == p.templates
    assert own_name(p.run_id) in step["template_guard"]
    lines = confirmation(p, RunOptions())
    assert any(line.startswith("templates:") and "docs (composable" in line for line in lines)
    assert any(own_name(p.run_id) in line for line in lines)


def test_legacy_templates_apply_when_no_composable_one_matches(cfg, fake):
    fake.add_legacy_template("docs-legacy", LEGACY)
    (legacy,) = api.plan(cfg, ALIAS, RunOptions()).templates
    assert legacy["applies"] and "no composable one matches" in legacy["why"]


def test_no_template_no_word_of_templates(cfg, fake):
    fake.add_composable_template("logs", {"index_patterns": ["logs-*"], "priority": 1})
    p = api.plan(cfg, ALIAS, RunOptions())
    assert p.templates == []
    (step,) = [s for s in api.describe(p, RunOptions()) if s["step"] == "create_target"]
    assert step["template_guard"] is None
    assert not any(line.startswith("templates:") for line in confirmation(p, RunOptions()))


def test_dry_run_output_names_the_templates(cfg, fake):
    from reindex_fsm.cli import cli

    fake.add_composable_template("docs", EVERYTHING)
    args = ["start", "--alias", ALIAS, "--dry-run", "--json"]
    result = CliRunner().invoke(cli, args, obj=cfg, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["name"] for t in data["templates"]] == ["docs"]
    (step,) = [s for s in data["steps"] if s["step"] == "create_target"]
    assert step["templates"][0]["adds"]["aliases"] == [ALIAS, "other-alias"]
    assert fake.call_names(mutating_only=True) == []


def test_a_template_of_the_highest_priority_there_is_is_refused_at_plan_time(cfg, fake):
    fake.add_composable_template("top", {**EVERYTHING, "priority": templates.MAX_PRIORITY})
    with pytest.raises(UsageError, match="index template top matches the target name"):
        api.start(cfg, ALIAS, RunOptions())
    assert cfg.repo().list() == [] and TARGET not in fake.indices


def test_elasticsearch_without_the_template_privilege_is_refused_before_anything(state_db):
    fake = make_cluster()
    fake.set_info(fake._info.__class__("elasticsearch", "8.15.3", "fake", "fake-cluster-uuid"))
    fake.security_enabled = True
    fake.missing_privileges = {"cluster:manage_index_templates"}
    fake.add_composable_template("docs", EVERYTHING)
    cfg = make_config(fake, state_db)
    with pytest.raises(PreflightFailed, match="manage_index_templates") as refused:
        api.start(cfg, ALIAS, RunOptions())
    assert "docs (composable)" in refused.value.one_line()
    assert cfg.repo().list() == [] and fake.call_names(mutating_only=True) == []


# -- the run ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["composable", "legacy", "both"])
def test_no_template_adds_anything_to_the_target(cfg, fake, kind):
    if kind in ("composable", "both"):
        fake.add_composable_template("docs", EVERYTHING)
    if kind in ("legacy", "both"):
        fake.add_legacy_template("docs-legacy", LEGACY)
    seen: list[tuple[str, ...]] = []
    original = fake.create_index

    def create_index(index, settings, mappings):
        original(index, settings, mappings)
        seen.append(tuple(fake.indices[index].aliases))  # the moment it exists

    fake.create_index = create_index
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    assert outcome.record.state is State.SWAPPED, outcome.record.error
    assert seen == [()]  # never an alias on the target before the swap
    _as_planned(fake, outcome.record)
    names = fake.call_names(mutating_only=True)
    put, create, delete = (
        names.index("put_index_template"),
        names.index("create_index"),
        names.index("delete_index_template"),
    )
    assert put < create < delete < names.index("start_reindex")
    assert "docs" in fake.composable_templates or kind == "legacy"  # others' are left
    assert "docs-legacy" in fake.legacy_templates or kind == "composable"
    (event,) = [e for e in cfg.repo().events(outcome.record.id) if e.trigger == "create_target"]
    assert event.detail["template_deleted"] == own_name(outcome.record.id)
    assert "keeps" in event.detail["template"]


def test_the_run_outranks_the_highest_matching_priority(cfg, fake):
    fake.add_composable_template("docs", EVERYTHING)
    fake.add_composable_template("docs-high", {**EVERYTHING, "priority": 400})
    bodies = []
    original = fake.put_index_template
    fake.put_index_template = lambda name, body: (bodies.append(body), original(name, body))[1]
    rec = api.start(cfg, ALIAS, RunOptions()).record
    assert rec.state is State.SWAPPED
    (body,) = bodies
    assert body["priority"] == 401 and body["index_patterns"] == [TARGET]
    assert body["template"] == {} and body["_meta"]["reindex_fsm"]["run_id"] == rec.id


def test_a_data_stream_template_does_not_apply_to_the_target(cfg, fake):
    fake.add_composable_template(
        "docs-stream", {"index_patterns": [f"{ALIAS}-*"], "priority": 9, "data_stream": {}}
    )
    (planned,) = api.plan(cfg, ALIAS, RunOptions()).templates
    assert planned["data_stream"] and "data_stream" in planned["summary"]
    assert api.start(cfg, ALIAS, RunOptions()).record.state is State.SWAPPED


def test_template_refused_cancels_the_run_in_one_line_naming_the_template(cfg, fake):
    fake.add_composable_template("docs", EVERYTHING)
    fake.fail_on(
        "put_index_template",
        error=EngineError(
            "security_exception: action [indices:admin/index_template/put] is unauthorized",
            status=403,
        ),
    )
    with pytest.raises(TemplateConflict) as refused:
        api.start(cfg, ALIAS, RunOptions(rollback_on_failure=True))
    line = refused.value.one_line()
    assert "docs (composable)" in line and f"alias(es) {ALIAS}, other-alias" in line
    assert "(the live alias)" in line and "unauthorized" in line
    assert "manage_index_templates" in line and "\n" not in line
    (run,) = cfg.repo().list()
    assert run.state is State.CANCELLED
    assert TARGET not in fake.indices and set(fake.indices[SOURCE].aliases) == SOURCE_ALIASES


def test_a_template_made_between_the_check_and_the_create_is_caught(cfg, fake):
    """Someone makes a template (of a priority above the run's) just before the create:
    the target gets the live alias; it is deleted at once and the run refused."""
    original = fake.create_index

    def create_index(index, settings, mappings):
        if index == TARGET:
            fake.add_composable_template("late", {**EVERYTHING, "priority": 5000})
        original(index, settings, mappings)

    fake.create_index = create_index
    with pytest.raises(TemplateConflict) as refused:
        api.start(cfg, ALIAS, RunOptions())
    line = refused.value.one_line()
    assert "late (composable)" in line and f"alias {ALIAS} (the live alias)" in line
    assert "setting index.max_result_window=123" in line and "field from_template" in line
    assert TARGET not in fake.indices
    assert [i for i, idx in fake.indices.items() if ALIAS in idx.aliases] == [SOURCE]
    (run,) = cfg.repo().list()
    assert run.state is State.CANCELLED and cfg.repo().active_run_for(ALIAS) is None


def test_a_template_of_the_runs_own_name_that_is_not_its_own_is_never_touched(cfg, fake):
    p = api.plan(cfg, ALIAS, RunOptions())
    fake.add_composable_template("docs", EVERYTHING)
    stranger = {"index_patterns": ["elsewhere"], "priority": 3, "_meta": {"owner": "ops"}}
    fake.add_composable_template(own_name(p.run_id), stranger)
    with pytest.raises(TemplateConflict, match="is not this run's"):
        api.start(cfg, ALIAS, RunOptions(), planned=p)
    assert fake.composable_templates[own_name(p.run_id)] == stranger
    assert TARGET not in fake.indices


# -- crashes, abort, cleanup ------------------------------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        "create_target.template_put",
        "create_target.engine_done",
        "create_target.template_deleted",
    ],
)
def test_a_crash_while_the_target_is_created_resumes_without_a_leftover(fake, state_db, point):
    fake.add_composable_template("docs", EVERYTHING)
    first = make_config(fake, state_db, crash=lambda: Crashpoints(point, _die))
    with pytest.raises(Crash):
        api.start(first, ALIAS, RunOptions(verify=True))
    (rec,) = first.repo().list()
    again = make_config(fake, state_db)
    outcome = api.resume(again, rec.id)
    assert outcome.record.state is State.SWAPPED, outcome.record.error
    _as_planned(fake, outcome.record)


@pytest.mark.parametrize("point", ["create_target.template_put", "create_target.engine_done"])
def test_abort_after_a_crash_deletes_the_runs_template(fake, state_db, point):
    fake.add_composable_template("docs", EVERYTHING)
    first = make_config(fake, state_db, crash=lambda: Crashpoints(point, _die))
    with pytest.raises(Crash):
        api.start(first, ALIAS, RunOptions())
    (rec,) = first.repo().list()
    assert own_name(rec.id) in fake.composable_templates
    outcome = api.abort(make_config(fake, state_db), rec.id)
    assert outcome.record.state is State.ROLLED_BACK
    assert set(fake.composable_templates) == {"docs"} and TARGET not in fake.indices
    assert set(fake.indices[SOURCE].aliases) == SOURCE_ALIASES


def test_cleanup_deletes_a_finished_runs_leftover_template_only(cfg, fake):
    rec = api.start(cfg, ALIAS, RunOptions()).record
    meta = {"reindex_fsm": {"run_id": rec.id, "alias": ALIAS, "tool": "reindex-fsm"}}
    left = {"index_patterns": ["gone-1"], "priority": 1, "_meta": meta}
    fake.add_composable_template(own_name(rec.id), left)
    foreign = {**left, "_meta": {"reindex_fsm": {**meta["reindex_fsm"], "run_id": "elsewhere"}}}
    fake.add_composable_template(own_name("elsewhere"), {**foreign, "index_patterns": ["g2"]})
    listed = api.cleanup(cfg, ALIAS, keep=5, dry_run=True)
    assert [(r.index, r.action) for r in listed if not r.created] == [(own_name(rec.id), "delete")]
    assert own_name(rec.id) in fake.composable_templates
    done = api.cleanup(cfg, ALIAS, keep=5)
    assert [(r.index, r.action) for r in done if not r.created] == [(own_name(rec.id), "deleted")]
    assert set(fake.composable_templates) == {own_name("elsewhere")}  # not known: kept


def test_a_process_that_lost_its_lease_puts_no_template(fake, state_db):
    """Another process takes the alias's lease over just before the run's own template
    would be put: the put is never made (the lease is verified before every write)."""
    from reindex_fsm.errors import LockHeld

    fake.add_composable_template("docs", EVERYTHING)
    cfg = make_config(fake, state_db)
    p = api.plan(cfg, ALIAS, RunOptions())
    original = fake.index_templates

    def taken_over():  # the create step's read, right before its put
        doc, seq = fake.leases[ALIAS]
        fake.leases[ALIAS] = ({**doc, "run_id": "other", "owner": "other"}, seq + 1)
        return original()

    fake.index_templates = taken_over
    with pytest.raises(LockHeld):
        api.start(cfg, ALIAS, RunOptions(), planned=p)
    assert "put_index_template" not in fake.call_names()
    assert set(fake.composable_templates) == {"docs"} and TARGET not in fake.indices


def test_a_setting_the_engine_writes_itself_is_no_template_addition(cfg, fake):
    """A new index may carry a setting no template gave it (one the engine writes on every
    new index, which an older source lacks): the run is not refused for it."""
    fake.add_composable_template("docs", EVERYTHING)
    original = fake.create_index

    def create_index(index, settings, mappings):
        original(index, settings, mappings)
        fake.indices[index].settings["index.written.by.this.engine.version"] = "x"

    fake.create_index = create_index
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED, rec.error
