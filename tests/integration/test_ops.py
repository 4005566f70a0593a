"""Operations on the real engine: --pipeline/--script transforms, undo, cleanup --keep,
--slices/--requests-per-second and rethrottle from another process, and the deletion of
the copy's stored task result."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from reindex_fsm import api
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State

from .conftest import cli_argv, cli_env, cli_json, options, raw, run_cli, stable_settings

pytestmark = pytest.mark.integration

N = 300


@pytest.mark.needs("ingest")
@pytest.mark.needs("painless")
def test_pipeline_and_script_transform_every_document(engine, cfg, names, make_source, tmp_path):
    make_source(N)
    pipeline = names("lang-pipeline")
    raw(
        engine,
        "PUT",
        f"/_ingest/pipeline/{pipeline}",
        {"processors": [{"set": {"field": "lang", "value": "xx"}}]},
    )
    try:
        script = tmp_path / "upper.painless"
        script.write_text("ctx._source.title = ctx._source.title.toUpperCase()")
        code, plan = cli_json(
            "start", "--alias", names.alias, "--dry-run", "--pipeline", pipeline,
            "--script", str(script), "--engine-url", cfg.engine_url, "--state-db", cfg.state_db,
        )  # fmt: skip
        assert code == 0
        assert plan["reindex"]["dest"]["pipeline"] == pipeline
        assert plan["reindex"]["script"]["source"].startswith("ctx._source.title")

        opts = options(verify=True, pipeline=pipeline, script={"source": script.read_text()})
        rec = api.start(cfg, names.alias, opts).record
        assert rec.state is State.SWAPPED and rec.target_count == N
        source = {h["_id"]: h["_source"] for h in engine.scan(names.source)}
        target = {h["_id"]: h["_source"] for h in engine.scan(rec.target_index)}
        assert target.keys() == source.keys()
        for doc_id, doc in target.items():
            assert doc["lang"] == "xx"  # the pipeline
            assert doc["title"] == source[doc_id]["title"].upper()  # the script
    finally:
        raw(engine, "DELETE", f"/_ingest/pipeline/{pipeline}")


def test_missing_pipeline_is_refused_before_anything_is_written(engine, cfg, names, make_source):
    make_source(N)
    result = run_cli(
        "start", "--alias", names.alias, "--force", "--pipeline", names("nope"),
        "--engine-url", cfg.engine_url, "--state-db", cfg.state_db,
    )  # fmt: skip
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith("error: ingest pipeline") and "does not exist" in result.stderr
    assert sorted(raw(engine, "GET", f"/{names.prefix}*/_alias")) == [names.source]
    assert api.history(cfg) == []


def test_undo_moves_the_alias_back_and_the_task_result_is_deleted(engine, cfg, names, make_source):
    make_source(N, extra_aliases={names("read"): {"filter": {"term": {"lang": "en"}}}})
    before = raw(engine, "GET", f"/{names.source}/_alias")
    rec = api.start(cfg, names.alias, options(verify=True)).record
    assert rec.state is State.SWAPPED
    # task records: the copy's stored result is gone from the engine
    assert engine.get_task(rec.task_id) is None
    swap_event = api.show(cfg, rec.id)[1][-1]
    assert swap_event.detail["task_results"] == {rec.task_id: "deleted"}

    # a write through the alias after the swap: undo refuses without --force
    raw(engine, "PUT", f"/{names.alias}/_doc/late", {"title": "late"}, refresh="true")
    code, data = cli_json("undo", rec.id, "--yes", "--state-db", cfg.state_db)
    assert code == ExitCode.UNDO_REFUSED == 14
    assert "writes made since then" in data["error"]
    assert (
        engine.get_index_aliases(rec.target_index).keys() == before[names.source]["aliases"].keys()
    )
    code, data = cli_json("undo", rec.id, "--force", "--state-db", cfg.state_db)
    assert code == 0 and data["state"] == "UNDONE"
    assert raw(engine, "GET", f"/{names.source}/_alias") == before  # properties and all
    assert engine.get_index_aliases(rec.target_index) == {}
    assert engine.index_exists(rec.target_index)  # kept, for cleanup
    # undo again: refused with the reason
    result = run_cli("undo", rec.id, "--yes", "--state-db", cfg.state_db)
    assert result.returncode == 14 and "only a SWAPPED run" in result.stderr


def test_undo_refused_when_a_later_run_swapped_or_the_previous_index_is_gone(
    engine, cfg, names, make_source
):
    make_source(N)
    first = api.start(cfg, names.alias, options()).record
    second = api.start(cfg, names.alias, options()).record
    assert second.state is State.SWAPPED and second.source_index == first.target_index
    result = run_cli("undo", first.id, "--yes", "--state-db", cfg.state_db)
    assert result.returncode == 14 and "is no longer on" in result.stderr
    raw(engine, "POST", f"/{second.source_index}/_close")
    result = run_cli("undo", second.id, "--yes", "--state-db", cfg.state_db)
    assert result.returncode == 14 and "is closed" in result.stderr
    engine.delete_index(second.source_index)
    result = run_cli("undo", second.id, "--yes", "--state-db", cfg.state_db)
    assert result.returncode == 14 and "no longer exists" in result.stderr
    assert engine.get_alias(names.alias).keys() == {second.target_index}  # untouched


def test_cleanup_keeps_the_newest_and_never_a_live_or_foreign_index(
    engine, cfg, names, make_source
):
    make_source(N)
    runs = [api.start(cfg, names.alias, options()).record for _ in range(4)]
    assert all(r.state is State.SWAPPED for r in runs)
    targets = [r.target_index for r in runs]
    # foreign indices named like ours: one without _meta, one with a run's _meta copied
    plain, copied = names("19990101000000"), names("19990101000001")
    engine.create_index(plain, {}, {"properties": {}})
    engine.create_index(
        copied, stable_settings(engine, targets[0]), engine.get_index(targets[0]).mappings
    )

    code, dry = cli_json(
        "cleanup", "--alias", names.alias, "--keep", "1", "--dry-run", "--state-db", cfg.state_db,
        "--engine-url", cfg.engine_url,
    )  # fmt: skip
    assert code == 0 and dry["dry_run"] is True
    actions = {r["index"]: r["action"] for r in dry["indices"]}
    assert actions == {
        targets[3]: "keep",  # live
        targets[2]: "keep",  # the newest earlier index
        targets[1]: "delete",
        targets[0]: "delete",
        copied: "keep",  # its _meta names a run whose target it is not
    }
    assert all(engine.index_exists(t) for t in targets)  # a dry run deletes nothing

    code, done = cli_json(
        "cleanup", "--alias", names.alias, "--keep", "1", "--force", "--state-db", cfg.state_db,
        "--engine-url", cfg.engine_url,
    )  # fmt: skip
    assert code == 0
    assert sorted(r["index"] for r in done["indices"] if r["action"] == "deleted") == sorted(
        targets[:2]
    )
    existing = set(raw(engine, "GET", f"/{names.prefix}*/_settings/index.uuid"))
    assert existing == {names.source, targets[2], targets[3], plain, copied}

    # an index carrying any alias is never deleted, whatever --keep says
    engine.update_aliases([{"add": {"index": targets[2], "alias": names("pinned")}}])
    code, done = cli_json(
        "cleanup", "--alias", names.alias, "--keep", "0", "--force", "--state-db", cfg.state_db,
        "--engine-url", cfg.engine_url,
    )  # fmt: skip
    assert code == 0 and not [r for r in done["indices"] if r["action"] == "deleted"]
    assert engine.index_exists(targets[2])


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_sliced_throttled_copy_is_rethrottled_from_another_process(
    engine, cfg, names, make_source, tmp_path: Path
):
    make_source(2000)
    state_db = cfg.state_db
    cfg.repo()  # created here: history, which polls it, creates no database
    run = subprocess.Popen(
        cli_argv(
            "start", "--alias", names.alias, "--force", "--verify", "--json",
            "--slices", "2", "--requests-per-second", "1",
            "--engine-url", cfg.engine_url, "--state-db", state_db,
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        record = _wait_for(
            lambda: next(
                (r for r in api.history(cfg) if r.task_id and r.state is State.REINDEXING),
                None,
            ),
            what="the run to start its copy",
        )
        task = raw(engine, "GET", f"/_tasks/{record.task_id}")["task"]
        assert task["headers"]["X-Opaque-Id"] == f"reindex-fsm:{record.id}"
        status = _wait_for(
            lambda: (
                (s := raw(engine, "GET", f"/_tasks/{record.task_id}")["task"]["status"]).get(
                    "slices"
                )
                and s
            ),
            what="the slices to start",
        )
        assert len(status["slices"]) == 2  # --slices 2 reached _reindex
        children = raw(engine, "GET", "/_tasks", parent_task_id=record.task_id, detailed="true")[
            "nodes"
        ]
        rates = [
            t["status"]["requests_per_second"]
            for node in children.values()
            for t in node["tasks"].values()
        ]
        assert sum(rates) == pytest.approx(1.0), rates  # and the rate, shared by the slices
        time.sleep(1.0)
        assert run.poll() is None  # throttled: still copying

        code, data = cli_json("rethrottle", record.id, "unlimited", "--state-db", state_db)
        assert code == 0 and data == {
            "run_id": record.id,
            "task_id": record.task_id,
            "requests_per_second": "unlimited",
        }
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err
    assert json.loads(out)["state"] == "SWAPPED"
    stored, events = api.show(cfg, record.id)
    assert stored.target_count == 2000 and stored.options["requests_per_second"] is None
    rethrottled = [e for e in events if e.trigger == "rethrottled"]
    assert rethrottled and rethrottled[0].detail["task_id"] == record.task_id
    # refused once the copy is over
    result = run_cli("rethrottle", record.id, "100", "--state-db", state_db)
    assert result.returncode == ExitCode.USAGE and "no running copy" in result.stderr
