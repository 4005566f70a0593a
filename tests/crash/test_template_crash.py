"""SIGKILL `reindex-fsm start` at the crash points of the run's own index template (a
template matching the target's name, adding a setting, a field and the live alias), then
resume (or abort) in a new process: the run converges, the target carries nothing of the
template, and the run's own template is gone."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from reindex_fsm.errors import EngineError
from reindex_fsm.steps.templates import own_name

from .conftest import (
    CaseResult,
    Source,
    finish,
    history,
    resume_args,
    run_cli,
    spawn,
    start_args,
)

pytestmark = [pytest.mark.crash, pytest.mark.needs("index_templates")]

POINTS = [
    "create_target.template_put",  # the run's own template put, the target not created
    "create_target.engine_done",  # the target created under it, not yet checked
    "create_target.template_deleted",  # deleted, TARGET_CREATED not yet stored
]


@pytest.fixture
def with_template(clean_source: Source) -> Iterator[Source]:
    src = clean_source
    name = f"{src.alias}-template"
    body = {
        "index_patterns": [f"{src.alias}-*"],
        "priority": 100,
        "template": {
            "settings": {"index.max_terms_count": 777},
            "mappings": {"properties": {"from_template": {"type": "keyword"}}},
            "aliases": {src.alias: {}},
        },
    }
    src.engine.put_index_template(name, body)
    try:
        yield src
    finally:
        src.engine.delete_index_template(name)
        for t in src.engine.index_templates():  # any the run left (a failing case)
            if (t.meta.get("reindex_fsm") or {}).get("alias") == src.alias:
                with contextlib.suppress(EngineError):
                    src.engine.delete_index_template(t.name)


def _no_template_of(src: Source, run_id: str) -> None:
    assert own_name(run_id) not in {t.name for t in src.engine.index_templates()}


@pytest.mark.parametrize("point", POINTS)
def test_kill_while_the_target_is_created_then_resume(
    point: str, with_template: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "template"
    src = with_template
    db = tmp_path / "state.db"
    first = finish(spawn(start_args(src.alias, db, src.url, False), point))
    assert first.rc == -signal.SIGKILL, (first.rc, first.out, first.err[-1500:])
    (run,) = history(db)
    crash_result.landed = run["state"]
    done = run_cli(resume_args(db, src.url, run["run_id"]))
    assert done.rc == 0, (done.rc, done.out, done.err[-1500:])
    record = src.assert_converged(db, run["run_id"])
    settings = src.engine.get_index(record["target_index"]).settings
    assert "index.max_terms_count" not in settings
    mappings = src.engine.get_index(record["target_index"]).mappings
    assert "from_template" not in mappings.get("properties", {})
    _no_template_of(src, run["run_id"])
    crash_result.passed = True


@pytest.mark.parametrize("point", POINTS[:2])
def test_kill_while_the_target_is_created_then_abort(
    point: str, with_template: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "template-abort"
    src = with_template
    db = tmp_path / "state.db"
    first = finish(spawn(start_args(src.alias, db, src.url, False), point))
    assert first.rc == -signal.SIGKILL, (first.rc, first.out, first.err[-1500:])
    (run,) = history(db)
    crash_result.landed = run["state"]
    assert own_name(run["run_id"]) in {t.name for t in src.engine.index_templates()}
    args = ["--json", "--state-db", str(db), "--engine-url", src.url]
    done = run_cli(["abort", run["run_id"], *args])
    assert done.rc == 0, (done.rc, done.out, done.err[-1500:])
    assert done.json()["state"] == "ROLLED_BACK"
    _no_template_of(src, run["run_id"])
    src.assert_untouched()
    crash_result.passed = True
