"""Another cluster as the source (``--source-url``), on two fake clusters: the options and
their refusals, credentials kept out of the state database, the copy chosen by the
allowlist probe (and its refusal line), the ``_seq_no`` ranges and their checkpoints,
the read-and-bulk copy and its resume, the alias created or moved on the target cluster,
verification against the source cluster, a resume refused by another source cluster."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.config import Config
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.engine.sourced import SourcedEngine
from reindex_fsm.errors import UsageError, WrongCluster
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.remote import refusal_line, split_credentials
from reindex_fsm.steps.copy import registry
from reindex_fsm.steps.copy.remote_reindex import plan_ranges, range_query
from reindex_fsm.testing.fake import Docs, FakeEngine

from .conftest import ALIAS, SOURCE, FakeClock, db_rows, make_cluster
from .test_recompute import Kill, KillAt

SOURCE_URL = "http://fake-source:9200"
TARGET_URL = "http://fake-target:9200"
PASSWORD = "s3cret-password"


@pytest.fixture
def clusters() -> tuple[FakeEngine, FakeEngine]:
    """The source cluster (the alias and its documents) and an empty target cluster."""
    source = make_cluster(60)
    source.url = SOURCE_URL
    docs = Docs()  # each write counted: the source's max _seq_no is 59
    docs.update(source.indices[SOURCE].docs)
    source.indices[SOURCE].docs = docs
    source._info = source._info.__class__("opensearch", "2.19.1", "old", "source-uuid")
    target = FakeEngine(url=TARGET_URL, version="3.1.0", cluster_uuid="target-uuid")
    target.connect_remote("fake-source:9200", source)
    return source, target


def config(
    clusters: tuple[FakeEngine, FakeEngine],
    state_db: str,
    crash: Callable[[], Crashpoints] | None = None,
    **source_options: Any,
) -> Config:
    source, target = clusters
    clock = FakeClock()
    by_url = {SOURCE_URL: source, TARGET_URL: target}
    return Config(
        state_db=state_db,
        engine_url=TARGET_URL,
        engine_factory=lambda url, kind, **kw: by_url[url.rstrip("/")],
        clock=clock,
        sleep=clock.sleep,
        crash=crash or (lambda: Crashpoints()),
        source_client_options=source_options,
    )


def remote(**kw: Any) -> RunOptions:
    return RunOptions(**{"source_url": SOURCE_URL, "verify": True, **kw})


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"remote_copy": "scan"}, "--remote-copy needs --source-url"),
        ({"block_source_writes": True}, "--block-source-writes needs --source-url"),
        ({"remote_ranges": 8}, "--remote-ranges needs --source-url"),
        (
            {"source_url": SOURCE_URL, "write_policy": "catch-up", "since_field": "t"},
            "catch-up is not supported with --source-url",
        ),
        (
            {"source_url": SOURCE_URL, "recompute_embeddings": True},
            "--source-url and --recompute-embeddings cannot be combined",
        ),
        ({"source_url": " "}, "--source-url needs a cluster URL"),
    ],
)
def test_refused_options(given: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        api.check_options(RunOptions(**given))


def test_the_options_choose_a_remote_strategy() -> None:
    assert registry.strategy_for_options(remote()).name == "remote-reindex"
    assert registry.strategy_for_options(remote(remote_copy="scan")).name == "remote-scan"
    refused = registry.strategy_for_options(remote(remote_copy="scan", script={"source": "x"}))
    assert "--script applies to a _reindex copy" in str(
        refused.refuses(remote(remote_copy="scan", script={"source": "x"}))
    )


def test_credentials_in_the_url_are_taken_out_of_it() -> None:
    cfg, options = split_credentials(Config(), remote(source_url="https://bob:pw%40x@src:9200"))
    assert options.source_url == "https://src:9200"
    assert cfg.source_client_options == {"username": "bob", "password": "pw@x"}
    given = Config(source_client_options={"username": "ann", "password": "p"})
    cfg, options = split_credentials(given, remote(source_url="http://bob:pw@src:9200"))
    assert cfg.source_client_options == {"username": "ann", "password": "p"}  # flags win


def test_the_source_password_is_never_stored(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, target = clusters
    source.url = SOURCE_URL
    cfg = config(clusters, state_db, username="reader", password=PASSWORD)
    target.remote_allowlist = ["fake-source:*"]
    url = f"http://reader:{PASSWORD}@fake-source:9200"
    outcome = api.start(cfg, ALIAS, remote(source_url=url))
    assert outcome.record.state is State.SWAPPED
    assert outcome.record.options["source_url"] == SOURCE_URL
    assert PASSWORD not in repr(db_rows(state_db))
    # the _reindex from remote carried it (in memory) to the target cluster's request
    task = next(iter(target.tasks.values()))
    assert task.request.body()["source"]["remote"]["password"] == PASSWORD


# -- the allowlist probe and the copy it chooses -----------------------------------------


def test_without_the_allowlist_auto_copies_by_scan(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, target = clusters
    p = api.plan(config(clusters, state_db), ALIAS, remote())
    cluster = p.source_cluster or {}
    assert cluster["copy"] == "scan"
    assert cluster["probe"]["allowed"] is False
    assert "reindex.remote.allowlist" in cluster["probe"]["fix"]
    assert registry.strategy_for(p).name == "remote-scan"
    assert (cluster["flavor"], cluster["cluster_uuid"]) == ("opensearch", "source-uuid")
    assert target.call_names(mutating_only=True) == []  # the probe wrote nothing
    assert source.call_names(mutating_only=True) == []


def test_reindex_asked_and_refused_names_the_setting_and_where(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    with pytest.raises(UsageError) as refused:
        api.plan(config(clusters, state_db), ALIAS, remote(remote_copy="reindex"))
    line = refused.value.one_line()
    assert "not in the allowlist" in line
    assert 'add "fake-source:9200" to reindex.remote.allowlist in opensearch.yml' in line
    assert "restart" in line and "--remote-copy scan" in line


def test_the_refusal_line_of_elasticsearch_names_its_setting() -> None:
    info = FakeEngine(flavor="elasticsearch", version="7.17.29").info()
    line = refusal_line(info, "http://10.0.0.5:9200")
    assert 'add "10.0.0.5:9200" to reindex.remote.whitelist in elasticsearch.yml' in line


def test_with_the_allowlist_auto_copies_by_reindex_from_remote(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    _, target = clusters
    target.remote_allowlist = ["fake-source:*"]
    p = api.plan(config(clusters, state_db), ALIAS, remote(remote_ranges=3))
    cluster = p.source_cluster or {}
    assert cluster["copy"] == "reindex" and cluster["probe"]["allowed"] is True
    assert len(cluster["ranges"]) == 3
    assert registry.strategy_for(p).name == "remote-reindex"


# -- the ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(("top", "wanted", "count"), [(59, 4, 4), (2, 8, 3), (-1, 4, 1)])
def test_the_ranges_cover_every_seq_no_once(top: int, wanted: int, count: int) -> None:
    class Source:
        def max_seq_nos(self, index: str) -> dict[str, int]:
            return {"0": top, "1": top // 2}

    ranges = plan_ranges(Source(), "i", wanted)  # type: ignore[arg-type]
    assert len(ranges) == count
    assert ranges[-1]["lt"] is None  # a write made after the plan is in the last range
    for seq_no in range(top + 50):
        hits = []
        for r in ranges:
            bounds = range_query(r)["range"]["_seq_no"]
            if seq_no >= bounds["gte"] and ("lt" not in bounds or seq_no < bounds["lt"]):
                hits.append(r["n"])
        assert len(hits) == 1, (seq_no, hits)


def test_a_reindex_copy_killed_between_ranges_resumes_each_range_once(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, target = clusters
    target.remote_allowlist = ["fake-source:*"]
    killer = KillAt("remote_reindex.range_started", 3)
    cfg = config(clusters, state_db, crash=lambda: killer)
    with pytest.raises(Kill):
        api.start(cfg, ALIAS, remote(remote_ranges=4))
    record = cfg.repo().active_run_for(ALIAS)
    assert record is not None and record.state is State.REINDEXING
    ranges = record.progress["ranges"]
    # the third range's task started, its ID not stored: the resume adopts it, starts no other
    assert [r["attempts"] for r in ranges] == [1, 1, 1, 0]
    assert ranges[2]["task_id"] is None
    started = len(target.tasks)
    resumed = api.resume(config(clusters, state_db), record.id)
    assert resumed.record.state is State.SWAPPED, resumed.record.error
    assert len(target.tasks) == started + 1  # only the fourth range was started
    final = resumed.record.progress["ranges"]
    assert all(r["done"] for r in final) and sum(r["created"] for r in final) == 60
    docs = target.indices[resumed.record.target_index].docs
    assert dict(docs) == dict(source.indices[SOURCE].docs)


def test_a_failed_range_is_retried_on_its_own(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    from reindex_fsm.testing.fake import TaskScript

    _, target = clusters
    target.remote_allowlist = ["fake-source:*"]
    target.next_task_scripts = [TaskScript(), TaskScript(fail_after_polls=0)]
    outcome = api.start(config(clusters, state_db), ALIAS, remote(remote_ranges=2))
    assert outcome.record.state is State.SWAPPED, outcome.record.error
    ranges = outcome.record.progress["ranges"]
    assert [r["attempts"] for r in ranges] == [1, 2]
    events = [e.trigger for e in api.show(config(clusters, state_db), outcome.record.id)[1]]
    assert "range_retried" in events


# -- the read-and-bulk copy ------------------------------------------------------------------


def test_a_scan_copy_killed_after_a_batch_resumes_from_its_position(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, target = clusters
    killer = KillAt("remote_scan.indexed", 3)
    cfg = config(clusters, state_db, crash=lambda: killer)
    with pytest.raises(Kill):
        api.start(cfg, ALIAS, remote(remote_copy="scan", remote_batch_size=10))
    record = cfg.repo().active_run_for(ALIAS)
    assert record is not None and record.progress["indexed"] == 20  # 2 acknowledged
    resumed = api.resume(config(clusters, state_db), record.id)
    assert resumed.record.state is State.SWAPPED, resumed.record.error
    assert resumed.record.progress["indexed"] == 60 - 20 + 20
    assert dict(target.indices[resumed.record.target_index].docs) == dict(
        source.indices[SOURCE].docs
    )


def test_the_alias_is_created_on_the_target_cluster_and_the_source_is_only_read(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, target = clusters
    before = source.snapshot()
    outcome = api.start(config(clusters, state_db), ALIAS, remote(remote_copy="scan"))
    record = outcome.record
    assert record.state is State.SWAPPED
    assert set(target.get_alias(ALIAS)) == {record.target_index}
    assert target.get_alias(ALIAS)[record.target_index] == {ALIAS: {"is_write_index": True}}
    assert source.snapshot() == before  # nothing written to the source cluster
    assert source.call_names(mutating_only=True) == []
    assert record.verification is None or record.verification.get("passed", True)
    assert record.swap_record["previous_holders"] == {ALIAS: {}, "documents-public": {}}


def test_the_alias_moves_from_the_index_holding_it_on_the_target_cluster_and_back(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    _, target = clusters
    target.add_index("documents-old", {"x": {}}, aliases={ALIAS: {}})
    cfg = config(clusters, state_db)
    outcome = api.start(cfg, ALIAS, remote(remote_copy="scan"))
    assert set(target.get_alias(ALIAS)) == {outcome.record.target_index}
    undone = api.undo(config(clusters, state_db), outcome.record.id)
    assert undone.state is State.UNDONE
    assert set(target.get_alias(ALIAS)) == {"documents-old"}
    assert target.get_alias("documents-public") == {}  # created by the swap: removed


def test_verification_counts_the_source_cluster_again(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, _ = clusters
    killer = KillAt("commit.VERIFYING", 1)
    cfg = config(clusters, state_db, crash=lambda: killer)
    with pytest.raises(Kill):
        api.start(cfg, ALIAS, remote(remote_copy="scan"))
    source.write(ALIAS, "written-meanwhile", {"title": "late"})  # the source is not blocked
    record = cfg.repo().active_run_for(ALIAS)
    assert record is not None
    resumed = api.resume(config(clusters, state_db), record.id)
    assert resumed.record.state is State.FAILED
    error = resumed.record.error or ""
    assert f"source {SOURCE} on http://fake-source:9200 has 61" in error, error


def test_block_source_writes_blocks_the_source_until_the_end(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, _ = clusters
    outcome = api.start(
        config(clusters, state_db), ALIAS, remote(remote_copy="scan", block_source_writes=True)
    )
    assert outcome.record.state is State.SWAPPED
    assert ("add_write_block", SOURCE) in [(c.method, *c.args) for c in source.calls]
    assert not source.write_blocked(SOURCE)


def test_a_resume_refuses_another_source_cluster(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, _ = clusters
    killer = KillAt("remote_scan.indexed", 1)
    cfg = config(clusters, state_db, crash=lambda: killer)
    with pytest.raises(Kill):
        api.start(cfg, ALIAS, remote(remote_copy="scan", remote_batch_size=10))
    record = cfg.repo().active_run_for(ALIAS)
    assert record is not None
    source._info = source._info.__class__("opensearch", "2.19.1", "other", "another-uuid")
    rows = db_rows(state_db)
    with pytest.raises(WrongCluster, match=r"source cluster 'old' .*another-uuid"):
        api.resume(config(clusters, state_db), record.id)
    assert db_rows(state_db) == rows


def test_the_source_engine_routes_calls_by_index(tmp_path: Path) -> None:
    source = FakeEngine(url=SOURCE_URL)
    source.add_index("src", {"a": {}})
    target = FakeEngine(url=TARGET_URL)
    target.add_index("src", {"b": {}, "c": {}})  # the same name on the other cluster
    engine = SourcedEngine(target, source, "src")
    assert engine.count("src") == 1
    assert engine.url == TARGET_URL
    pit = engine.open_pit("src", "1m")
    assert pit is not None and engine.search(None, {"pit": {"id": pit}, "size": 5})["hits"]
    engine.close_pit(pit)
    assert [c.method for c in target.calls] == []


# -- the command line --------------------------------------------------------------------------


def test_the_cli_takes_the_source_credentials_and_never_shows_or_stores_them(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    from click.testing import CliRunner

    from reindex_fsm.cli import cli

    _, target = clusters
    target.remote_allowlist = ["fake-source:*"]
    cfg = config(clusters, state_db)
    args = ["start", "--alias", ALIAS, "--source-url", SOURCE_URL, "--force", "--json"]
    args += ["--source-username", "reader"]
    env = {"REINDEX_FSM_SOURCE_PASSWORD": PASSWORD}
    result = CliRunner().invoke(cli, args, obj=cfg, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output + (result.stderr or "")
    assert PASSWORD not in repr(db_rows(state_db))
    task = next(iter(target.tasks.values()))
    remote_body = task.request.body()["source"]["remote"]
    assert (remote_body["username"], remote_body["password"]) == ("reader", PASSWORD)
    # on the command line, the password is refused to no one, but warned about
    args[-1:] = ["reader", "--source-password", PASSWORD, "--dry-run"]
    shown = CliRunner().invoke(cli, args, obj=config(clusters, state_db), catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "visible to `ps`" in (shown.stderr or shown.output)
    assert PASSWORD not in shown.stdout
    planned = json.loads(shown.stdout)
    assert planned["source_cluster"]["url"] == SOURCE_URL
    assert [step["step"] for step in planned["steps"]][2] == "copy"


def test_a_range_retried_after_a_failure_does_not_adopt_another_ranges_task(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    source, target = clusters
    target.remote_allowlist = ["fake-source:*"]
    killer = KillAt("remote_reindex.range_started", 2)  # range 1 started, its ID unrecorded
    cfg = config(clusters, state_db, crash=lambda: killer)
    with pytest.raises(Kill):
        api.start(cfg, ALIAS, remote(remote_ranges=2))
    record = cfg.repo().active_run_for(ALIAS)
    assert record is not None
    first, second = record.progress["ranges"]
    assert first["task_id"] and second["starting"] and second["task_id"] is None
    failed = target.tasks[first["task_id"]]  # range 0's task failed meanwhile
    failed.failures.append({"id": "x", "cause": {"type": "es_rejected_execution_exception"}})
    failed.completed = True
    orphan = next(t for t in target.tasks if t != first["task_id"])
    resumed = api.resume(config(clusters, state_db), record.id)
    assert resumed.record.state is State.SWAPPED, resumed.record.error
    done = resumed.record.progress["ranges"]
    assert done[1]["task_id"] == orphan  # adopted by the range that started it
    assert done[0]["task_id"] not in (first["task_id"], orphan) and done[0]["attempts"] == 2
    assert dict(target.indices[resumed.record.target_index].docs) == dict(
        source.indices[SOURCE].docs
    )


def test_an_abort_needs_no_source_cluster_and_a_resume_says_it_is_unreachable(
    clusters: tuple[FakeEngine, FakeEngine], state_db: str
) -> None:
    from reindex_fsm.errors import EngineUnreachable

    source, target = clusters
    killer = KillAt("remote_scan.indexed", 2)
    cfg = config(clusters, state_db, crash=lambda: killer)
    with pytest.raises(Kill):
        api.start(cfg, ALIAS, remote(remote_copy="scan", remote_batch_size=10))
    record = cfg.repo().active_run_for(ALIAS)
    assert record is not None
    source.fail_always("info", EngineUnreachable(SOURCE_URL, "connection refused"))
    with pytest.raises(EngineUnreachable, match="fake-source"):
        api.resume(config(clusters, state_db), record.id)
    aborted = api.abort(config(clusters, state_db), record.id)
    assert aborted.record.state is State.ROLLED_BACK
    assert record.target_index not in target.indices
