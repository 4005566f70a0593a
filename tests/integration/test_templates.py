"""Index templates on a real engine: a template matching the target's name adds nothing to
it (a setting, a field, another alias, the live alias itself; composable and legacy), the
dry run names them, and a template made between the run's check and its create is caught.

Templates are cluster-wide: each test's templates match only its own unique prefix, and
every template under that prefix (the run's own included) is deleted at teardown."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import EngineError
from reindex_fsm.machine import State
from reindex_fsm.steps.templates import TemplateConflict, own_name

from .conftest import cli_json, options, raw

pytestmark = [pytest.mark.integration, pytest.mark.needs("index_templates")]

ADDITIONS: dict[str, dict[str, Any]] = {
    # the setting (the source has its own value: the create request wins anyway)
    # and one the source does not set (only the run's own template keeps it off)
    "setting": {"settings": {"index.max_result_window": 123, "index.max_terms_count": 777}},
    "field": {"mappings": {"properties": {"from_template": {"type": "keyword"}}}},
    "other-alias": {"aliases": {"{alias}-other": {}}},
    "live-alias": {"aliases": {"{alias}": {}}},
}


def _body(kind: str, alias: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for part in ADDITIONS.values() if kind == "everything" else [ADDITIONS[kind]]:
        for key, value in part.items():
            if key == "aliases":
                value = {name.format(alias=alias): spec for name, spec in value.items()}
            body.setdefault(key, {}).update(value)
    return body


@pytest.fixture
def templates(engine, names) -> Iterator[Callable[..., str]]:
    """``templates(kind, body, priority=100)``: a template named under the test's prefix,
    matching ``<alias>-*``; teardown deletes it and any left by a run on the alias."""
    made: list[tuple[str, str]] = []

    def put(kind: str, body: dict[str, Any], priority: int = 100, name: str = "t") -> str:
        full = names(name)
        pattern = [f"{names.alias}-*"]
        if kind == "composable":
            spec = {"index_patterns": pattern, "priority": priority, "template": body}
            raw(engine, "PUT", f"/_index_template/{full}", spec)
        else:
            with warnings.catch_warnings():  # "may be ignored in favor of a composable..."
                warnings.simplefilter("ignore")
                raw(engine, "PUT", f"/_template/{full}", {"index_patterns": pattern, **body})
        made.append((kind, full))
        return full

    yield put
    for kind, full in made:
        path = "_index_template" if kind == "composable" else "_template"
        with contextlib.suppress(EngineError):
            raw(engine, "DELETE", f"/{path}/{full}")
    for left in _own_templates(engine, names.alias):
        with contextlib.suppress(EngineError):
            raw(engine, "DELETE", f"/_index_template/{left}")


def _own_templates(engine, alias: str) -> list[str]:
    """The run-owned templates whose _meta names ``alias``."""
    return sorted(
        t.name
        for t in engine.index_templates()
        if t.name.startswith("reindex-fsm-")
        and (t.meta.get("reindex_fsm") or {}).get("alias") == alias
    )


def _as_planned(engine, names, rec, source_aliases) -> None:
    target = engine.get_index(rec.target_index)
    assert target.settings["index.max_result_window"] == "20000"  # the source's, not 123
    assert "index.max_terms_count" not in target.settings
    assert "index.max_inner_result_window" not in target.settings
    assert "from_template" not in target.mappings.get("properties", {})
    assert "from_legacy" not in target.mappings.get("properties", {})
    assert engine.get_index_aliases(rec.target_index).keys() == source_aliases.keys()
    assert not engine.get_alias(f"{names.alias}-other")
    assert sorted(engine.get_alias(names.alias)) == [rec.target_index]  # on one index
    assert _own_templates(engine, names.alias) == []


@pytest.mark.parametrize("kind", ["setting", "field", "other-alias", "live-alias", "everything"])
def test_a_composable_template_adds_nothing_to_the_target(
    engine, cfg, names, make_source, templates, kind
):
    make_source(200)
    source_aliases = engine.get_index_aliases(names.source)
    made = templates("composable", _body(kind, names.alias))
    rec = api.start(cfg, names.alias, options(verify=True)).record
    assert rec.state is State.SWAPPED, rec.error
    assert [t["name"] for t in rec.plan["templates"]] == [made]
    _as_planned(engine, names, rec, source_aliases)
    assert raw(engine, "GET", f"/_index_template/{made}")  # another's: left as it was
    (created,) = [e for e in cfg.repo().events(rec.id) if e.trigger == "create_target"]
    assert created.detail["template_deleted"] == own_name(rec.id)


def test_a_legacy_template_adds_nothing_to_the_target(engine, cfg, names, make_source, templates):
    make_source(200)
    source_aliases = engine.get_index_aliases(names.source)
    body = _body("everything", names.alias)
    body["settings"] = {"index.max_inner_result_window": 77}
    body["mappings"] = {"properties": {"from_legacy": {"type": "long"}}}
    made = templates("legacy", {**body, "order": 4})
    rec = api.start(cfg, names.alias, options(verify=True)).record
    assert rec.state is State.SWAPPED, rec.error
    (planned,) = rec.plan["templates"]
    assert planned["name"] == made and planned["applies"] and planned["adds_live_alias"]
    _as_planned(engine, names, rec, source_aliases)
    assert made in raw(engine, "GET", f"/_template/{made}")


def test_dry_run_names_the_templates_and_what_they_would_add(
    engine, engine_url, tmp_path, names, make_source, templates
):
    make_source(50)
    composable = templates("composable", _body("everything", names.alias))
    legacy = templates(
        "legacy", {"settings": {"index.max_inner_result_window": 77}, "order": 1}, name="l"
    )
    before = (engine.index_templates(), raw(engine, "GET", f"/{names.prefix}*/_alias"))
    code, plan = cli_json(
        "start",
        "--alias",
        names.alias,
        "--dry-run",
        "--state-db",
        str(tmp_path / "state.db"),
        "--engine-url",
        engine_url,
    )
    assert code == 0, plan
    assert (engine.index_templates(), raw(engine, "GET", f"/{names.prefix}*/_alias")) == before
    by_name = {t["name"]: t for t in plan["templates"]}
    assert set(by_name) == {composable, legacy}
    assert by_name[composable]["applies"] and by_name[composable]["adds"] == {
        "settings": {"index.max_result_window": "123", "index.max_terms_count": "777"},
        "fields": ["from_template"],
        "mappings": [],
        "aliases": sorted([names.alias, f"{names.alias}-other"]),
    }
    assert by_name[composable]["adds_live_alias"]
    assert not by_name[legacy]["applies"]  # a composable template matches
    assert by_name[legacy]["adds"]["settings"] == {"index.max_inner_result_window": "77"}
    (step,) = [s for s in plan["steps"] if s["step"] == "create_target"]
    assert step["templates"] == plan["templates"] and "reindex-fsm-" in step["template_guard"]


def test_a_template_made_after_the_check_is_caught_and_the_target_deleted(
    engine, engine_url, tmp_path, names, make_source, templates
):
    """Someone puts a template above the run's own between its put and the create: the
    target comes out with the live alias; it is deleted at once and the run refused."""
    make_source(50)
    templates("composable", _body("setting", names.alias))  # so the run puts its own
    late = names("late")
    eng = connect(engine_url)
    put = eng.put_index_template

    def and_another(name: str, body: Any) -> None:
        put(name, body)
        late_body = {"index_patterns": [f"{names.alias}-*"], "priority": body["priority"] + 50}
        late_body["template"] = _body("live-alias", names.alias)
        put(late, late_body)

    eng.put_index_template = and_another  # type: ignore[method-assign]
    cfg = Config(
        state_db=f"sqlite:///{tmp_path}/state.db",
        engine_url=engine_url,
        engine_factory=lambda *a, **k: eng,
    )
    try:
        with pytest.raises(TemplateConflict) as refused:
            api.start(cfg, names.alias, options())
        line = refused.value.one_line()
        assert f"{late} (composable)" in line and "(the live alias)" in line
        (run,) = cfg.repo().list()
        assert run.state is State.CANCELLED
        assert not engine.index_exists(run.target_index)
        assert sorted(engine.get_alias(names.alias)) == [names.source]
        assert _own_templates(engine, names.alias) == []
    finally:
        with contextlib.suppress(EngineError):
            raw(engine, "DELETE", f"/_index_template/{late}")
        eng.close()


@pytest.mark.needs("data_streams")  # the template itself declares a data stream
def test_a_data_stream_template_matching_the_target_name_does_not_stop_the_run(
    engine, cfg, names, make_source, templates
):
    """A plain index whose name matches a data-stream template is refused by the engine
    ("creates data streams only"): under the run's own template the target is created."""
    make_source(50)
    source_aliases = engine.get_index_aliases(names.source)
    made = names("t")
    raw(
        engine,
        "PUT",
        f"/_index_template/{made}",
        {"index_patterns": [f"{names.alias}-*"], "priority": 7, "data_stream": {}},
    )
    try:
        rec = api.start(cfg, names.alias, options()).record
        assert rec.state is State.SWAPPED, rec.error
        (planned,) = rec.plan["templates"]
        assert planned["data_stream"] and "data_stream" in planned["summary"]
        _as_planned(engine, names, rec, source_aliases)
    finally:
        with contextlib.suppress(EngineError):
            raw(engine, "DELETE", f"/_index_template/{made}")
