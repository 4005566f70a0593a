"""Contract tests: both real adapters, over HTTP, against the same FakeEngine.

A :class:`~tests.support.contract.ContractServer` answers as Elasticsearch 8.x or as
OpenSearch 2.19 with a FakeEngine behind it. Every test runs for both flavors, goes
through ``connect(url)`` auto-detection and the real adapter, and checks the same
engine-protocol behaviours (and the same FakeEngine calls) as the fake gives directly.

One module over ~600 lines: every test shares the flavor-parametrized fixtures above,
and its sections follow the API families of :mod:`tests.support.contract`.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.embedders import hashing
from reindex_fsm.engine.base import (
    LEASE_INDEX,
    Engine,
    EngineInfo,
    IndexDefinition,
    IndexStatus,
    NodeDisk,
    PrivilegeCheck,
    ReindexRequest,
    TaskStatus,
)
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.engine.elasticsearch import ElasticsearchEngine
from reindex_fsm.engine.opensearch import OpenSearchEngine
from reindex_fsm.errors import (
    EngineError,
    EngineUnreachable,
    ExitCode,
    IndexNotFound,
    LeaseConflict,
    TaskNotFound,
    UnsupportedEngine,
)
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.planning import swap_actions
from reindex_fsm.testing.fake import Call, FakeEngine, TaskScript

from .conftest import ALIAS, NOW, SOURCE, TARGET, make_cluster, make_config, make_docs
from .support.contract import VERSIONS, ContractServer
from .test_runs import ABORT_CALLS, PLAN_CALLS, events, preflight_calls, run_calls
from .test_write_policy import Writer, with_since_field

FLAVORS = ["elasticsearch", "opensearch"]
ADAPTERS = {"elasticsearch": ElasticsearchEngine, "opensearch": OpenSearchEngine}
# GET / answered per connect(): auto-detection asks with the OpenSearch client, and the
# Elasticsearch adapter asks again for itself (the OpenSearch one keeps the probe's answer).
INFO_CALLS = {"elasticsearch": 2, "opensearch": 1}
CLIENT = {"request_timeout": 5}  # the clients' default retries (3), a bounded wait
OPAQUE = "reindex-fsm:run-1"
COPY = "copy-v2"
N_DOCS = 250  # a tenth of tests/conftest.py's cluster, copied in as many polls (3)
PER_POLL = 100


@pytest.fixture
def fake() -> FakeEngine:
    cluster = make_cluster(N_DOCS)
    cluster.task_script = TaskScript(docs_per_poll=PER_POLL)
    return cluster


@pytest.fixture(params=FLAVORS)
def flavor(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server(fake: FakeEngine, flavor: str) -> Iterator[ContractServer]:
    with ContractServer(fake, flavor) as srv:  # type: ignore[arg-type]
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


@pytest.fixture
def engine(server: ContractServer) -> Iterator[ClientEngine]:
    adapter = connect(server.url, **CLIENT)
    yield adapter
    adapter.close()


def without_info(calls: list[str]) -> list[str]:
    return [c for c in calls if c != "info"]


def create_copy(engine: Engine, fake: FakeEngine, name: str = COPY) -> None:
    engine.create_index(name, {"index.number_of_shards": 1}, fake.indices[SOURCE].mappings)


def comparable(status: TaskStatus | None) -> TaskStatus | None:
    """A status without what only a real Tasks API body has (running time, the failures'
    index and HTTP status), to compare with the FakeEngine's own."""
    if status is None:
        return None
    failures = tuple({k: f[k] for k in ("id", "cause")} for f in status.failures)
    return replace(status, running_time_s=0.0, failures=failures)


# -- GET / ----------------------------------------------------------------------------------


def test_connect_picks_the_adapter_of_the_flavor(server: ContractServer, flavor: str) -> None:
    with connect(server.url, **CLIENT) as engine:
        assert type(engine) is ADAPTERS[flavor]
        assert isinstance(engine, Engine)
        assert engine.info() == EngineInfo(flavor, VERSIONS[flavor], "fake", "fake-cluster-uuid")  # type: ignore[arg-type]
    assert server.paths().count("/") == INFO_CALLS[flavor]


def test_the_adapter_of_the_other_flavor_is_refused(server: ContractServer, flavor: str) -> None:
    other = next(f for f in FLAVORS if f != flavor)
    with connect(server.url, other, **CLIENT) as engine:
        assert type(engine) is ADAPTERS[other]
        with pytest.raises(UnsupportedEngine):
            engine.info()


# -- aliases and indices ----------------------------------------------------------------------


def test_alias_and_index_lookups(engine: ClientEngine, fake: FakeEngine) -> None:
    aliases = copy.deepcopy(fake.indices[SOURCE].aliases)
    assert engine.get_alias(ALIAS) == {SOURCE: {ALIAS: aliases[ALIAS]}}
    assert engine.get_alias("documents-public") == {
        SOURCE: {"documents-public": aliases["documents-public"]}
    }
    assert engine.get_alias("nope") == {}
    assert engine.get_alias(SOURCE) == {}  # an index is no alias
    assert engine.get_index_aliases(SOURCE) == aliases
    with pytest.raises(IndexNotFound):
        engine.get_index_aliases(ALIAS)  # an alias resolves to other names
    with pytest.raises(IndexNotFound) as missing:
        engine.get_index_aliases("nope")
    assert missing.value.index == "nope"
    assert engine.index_exists(SOURCE) is True
    assert engine.index_exists(ALIAS) is False
    assert engine.index_exists("nope") is False


def test_get_index(engine: ClientEngine, fake: FakeEngine) -> None:
    definition = engine.get_index(SOURCE)
    assert isinstance(definition, IndexDefinition)
    assert definition == fake.get_index(SOURCE)  # flat settings, lists kept, and mappings
    for name in (ALIAS, "nope"):
        with pytest.raises(IndexNotFound):
            engine.get_index(name)


def test_create_index_and_put_settings(engine: ClientEngine, fake: FakeEngine) -> None:
    mappings = {"properties": {"x": {"type": "keyword"}}, "_meta": {"by": "test"}}
    settings = {
        "index.number_of_shards": 2,
        "index.refresh_interval": "-1",
        "index.analysis.analyzer.a.filter": ["lowercase"],
    }
    engine.create_index(COPY, settings, mappings)
    created = engine.get_index(COPY)
    assert created.mappings == mappings
    assert created.settings["index.number_of_shards"] == "2"  # engines answer strings
    assert created.settings["index.refresh_interval"] == "-1"
    assert created.settings["index.analysis.analyzer.a.filter"] == ["lowercase"]
    assert fake.indices[COPY].docs == {}

    for taken in (COPY, ALIAS):  # an index, or an alias, has the name already
        with pytest.raises(EngineError) as refused:
            engine.create_index(taken, {}, {})
        assert refused.value.status == 400
        assert "resource_already_exists_exception" in refused.value.message

    engine.put_settings(COPY, {"index.number_of_replicas": 0, "index.refresh_interval": None})
    updated = engine.get_index(COPY).settings
    assert updated["index.number_of_replicas"] == "0"
    assert "index.refresh_interval" not in updated  # null resets to the default
    with pytest.raises(IndexNotFound):
        engine.put_settings("nope", {"index.number_of_replicas": 0})


def test_refresh_count_and_health(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    assert engine.count(SOURCE) == N_DOCS
    engine.refresh(SOURCE)
    for call in (engine.count, engine.refresh):
        with pytest.raises(IndexNotFound):
            call("nope")
    health = engine.cluster_health()
    assert (health["status"], health["number_of_data_nodes"], health["timed_out"]) == (
        "green",
        1,
        False,
    )
    assert engine.cluster_health(SOURCE, "green", 1)["status"] == "green"
    (asked,) = [r for r in server.requests if r.path == f"/_cluster/health/{SOURCE}"]
    assert asked.query == {"timeout": "1s", "wait_for_status": "green"}
    assert fake.call_names()[-2:] == ["cluster_health", "cluster_health"]

    def yellow(*args: object) -> dict:
        return {"status": "yellow", "number_of_data_nodes": 1, "timed_out": False}

    fake.cluster_health = yellow  # type: ignore[method-assign]
    assert engine.cluster_health(SOURCE, "yellow")["status"] == "yellow"
    # waiting for green runs out: the engines answer 408, the adapters say timed_out
    assert engine.cluster_health(SOURCE, "green", 1) == {"status": None, "timed_out": True}


def test_update_aliases_is_atomic(engine: ClientEngine, fake: FakeEngine) -> None:
    before = copy.deepcopy(fake.snapshot())
    with pytest.raises(EngineError) as refused:
        engine.update_aliases(
            [
                {"add": {"index": SOURCE, "alias": "extra"}},
                {"remove": {"index": SOURCE, "alias": "ghost", "must_exist": True}},
            ]
        )
    assert refused.value.status == 404
    assert "aliases_not_found_exception" in refused.value.message
    with pytest.raises(IndexNotFound):
        engine.update_aliases(
            [
                {"remove": {"index": SOURCE, "alias": ALIAS, "must_exist": True}},
                {"add": {"index": "nope", "alias": ALIAS}},
            ]
        )
    assert fake.snapshot() == before  # neither failing request changed anything

    create_copy(engine, fake)
    moved = before[SOURCE]["aliases"]
    engine.update_aliases(swap_actions(SOURCE, COPY, moved, True))
    assert engine.get_index_aliases(SOURCE) == {}
    assert engine.get_index_aliases(COPY) == moved
    assert engine.get_alias(ALIAS) == {COPY: {ALIAS: moved[ALIAS]}}


def test_delete_index(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    create_copy(engine, fake)
    engine.delete_index(COPY)
    assert engine.index_exists(COPY) is False and COPY not in fake.indices
    with pytest.raises(IndexNotFound):
        engine.delete_index(COPY)
    sent = len(server.requests)
    for pattern in ("copy-*", "_all", "a,b"):
        with pytest.raises(ValueError):
            engine.delete_index(pattern)
    assert len(server.requests) == sent  # refused before any request


# -- tasks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "prefilled", "polls"),
    [
        pytest.param(TaskScript(docs_per_poll=PER_POLL), {}, 3, id="completes"),
        pytest.param(TaskScript(docs_per_poll=PER_POLL, fail_after_polls=1), {}, 2, id="fails"),
        pytest.param(TaskScript(), {"doc-00007": {"x": 1}}, 1, id="version-conflict"),
    ],
)
def test_reindex_task_polled_as_the_fake_reports_it(
    engine: ClientEngine,
    fake: FakeEngine,
    script: TaskScript,
    prefilled: dict,
    polls: int,
) -> None:
    request = ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE)
    polled_as_the_fake(engine, fake, script, prefilled, polls, request)


def test_a_copy_over_existing_documents_counts_them_updated(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    """``op_type=index`` over documents the destination has (a catch-up pass, a copy
    again): the Tasks API counts them ``updated``, running and finished, as the fake does."""
    prefilled = {doc_id: {"x": 1} for doc_id in sorted(fake.indices[SOURCE].docs)[:120]}
    request = ReindexRequest(SOURCE, COPY, OPAQUE, op_type="index", conflicts="proceed")
    last = polled_as_the_fake(
        engine, fake, TaskScript(docs_per_poll=PER_POLL), prefilled, 3, request
    )
    assert (last.created, last.updated) == (N_DOCS - 120, 120)
    assert fake.tasks[last.task_id].updated == 120
    # running: the detailed task list carries the counts so far
    fake.task_script = TaskScript(docs_per_poll=PER_POLL)
    fake.add_index("copy-3", prefilled)
    task_id = engine.start_reindex(replace(request, dest="copy-3"))
    running = engine.get_task(task_id)  # one batch: documents the destination has
    assert running is not None and not running.completed
    assert (running.created, running.updated) == (0, PER_POLL)
    fake.advance(task_id)  # a second batch: 20 more of those, then new ones
    task = fake.tasks[task_id]
    task.deleted, task.noops = 2, 3  # a script's ctx.op ("delete", "noop"), set by hand
    (listed,) = engine.list_reindex_tasks(OPAQUE)
    assert (listed.created, listed.updated) == (PER_POLL - 20, 120)
    assert comparable(listed) == fake.status_of(task)  # deleted and noops too


def test_reindex_waiting_for_completion_answers_the_counts(
    fake: FakeEngine, server: ContractServer
) -> None:
    """``_reindex`` without ``wait_for_completion=false`` (the adapters never send it):
    the answer is the finished task's response, and no result is kept in the tasks API."""
    fake.add_index(COPY, {doc_id: {"x": 1} for doc_id in sorted(fake.indices[SOURCE].docs)[:50]})
    body = {"source": {"index": SOURCE}, "dest": {"index": COPY, "op_type": "index"}}
    status, answer = http(server, "POST", "/_reindex?refresh=false", body)
    assert status == 200
    counts = {k: answer[k] for k in ("total", "created", "updated", "version_conflicts")}
    assert counts == {
        "total": N_DOCS,
        "created": N_DOCS - 50,
        "updated": 50,
        "version_conflicts": 0,
    }
    assert (answer["deleted"], answer["noops"], answer["failures"]) == (0, 0, [])
    assert "throttled" not in answer  # the human-readable fields only with ?human
    (task_id,) = fake.tasks
    assert http(server, "GET", f"/_tasks/{task_id}")[0] == 404
    assert fake.indices[COPY].docs == fake.indices[SOURCE].docs
    fake.task_script = TaskScript(stall=True)  # it would never answer: refused, recorded
    assert http(server, "POST", "/_reindex", body)[0] == 400
    assert len(server.problems) == 1 and "never progresses" in server.problems[0]
    server.problems.clear()


def http(
    server: ContractServer, method: str, path: str, body: dict | None = None
) -> tuple[int, dict]:
    """One raw request to the contract server: status and JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        server.url + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def polled_as_the_fake(
    engine: ClientEngine,
    fake: FakeEngine,
    script: TaskScript,
    prefilled: dict,
    polls: int,
    request: ReindexRequest,
) -> TaskStatus:
    """Poll one reindex task through HTTP and the same task on a twin fake directly;
    both report the same statuses. The last (completed) status."""
    twin = make_cluster(N_DOCS)  # the same cluster, driven through the fake directly
    for cluster in (fake, twin):
        cluster.task_script = script
        cluster.add_index(COPY, prefilled)

    task_id = engine.start_reindex(request)
    assert task_id == twin.start_reindex(request) == "fake-node:1"
    assert fake.tasks[task_id].request == request  # opaque ID from X-Opaque-Id, body, params
    seen = [engine.get_task(task_id) for _ in range(polls)]
    expected = [twin.get_task(task_id) for _ in range(polls)]
    assert [comparable(s) for s in seen] == expected
    last = seen[-1]
    assert last is not None and last.completed
    assert [s.completed for s in seen if s] == [False] * (polls - 1) + [True]
    assert all(s is not None and s.opaque_id == OPAQUE for s in seen)
    assert engine.get_task(task_id) == last  # the result is kept once completed
    assert fake.indices[COPY].docs == twin.indices[COPY].docs
    if last.failures:
        (failure,) = last.failures
        assert failure["index"] == COPY and failure["status"] in (400, 409)
    return last


def test_list_reindex_tasks_by_opaque_id(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    fake.task_script = TaskScript(stall=True)
    for name in ("copy-a", "copy-b"):
        create_copy(engine, fake, name)
    first = engine.start_reindex(ReindexRequest(SOURCE, "copy-a", opaque_id="reindex-fsm:a"))
    second = engine.start_reindex(ReindexRequest(SOURCE, "copy-b", opaque_id="reindex-fsm:b"))
    assert [t.task_id for t in engine.list_reindex_tasks()] == [first, second]
    (mine,) = engine.list_reindex_tasks("reindex-fsm:b")
    assert [comparable(mine)] == fake.list_reindex_tasks("reindex-fsm:b")
    assert engine.list_reindex_tasks("reindex-fsm:nobody") == []
    asked = [r for r in server.requests if r.path == "/_tasks"]
    assert asked[-1].query == {"actions": "*reindex", "detailed": "true"}
    engine.cancel_task(first)
    engine.get_task(first)  # the cancelled task stops at its next batch
    assert [t.task_id for t in engine.list_reindex_tasks()] == [second]


@pytest.mark.parametrize("not_found", ["node_failures", "404"])
def test_cancel_task(fake: FakeEngine, flavor: str, not_found: str) -> None:
    with (
        ContractServer(fake, flavor, task_not_found=not_found) as server,  # type: ignore[arg-type]
        connect(server.url, **CLIENT) as engine,
    ):
        fake.task_script = TaskScript(stall=True)
        create_copy(engine, fake)
        task_id = engine.start_reindex(ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE))
        assert engine.get_task(task_id).completed is False  # type: ignore[union-attr]
        engine.cancel_task(task_id)
        assert fake.tasks[task_id].cancelled
        status = engine.get_task(task_id)
        assert status is not None
        assert (status.completed, status.cancelled, status.failed) == (True, True, False)
        for gone in (task_id, "fake-node:99"):  # finished, or never known
            with pytest.raises(TaskNotFound) as caught:
                engine.cancel_task(gone)
            assert caught.value.task_id == gone
    assert server.problems == []


def test_get_task_of_a_vanished_task_is_none(engine: ClientEngine, fake: FakeEngine) -> None:
    fake.task_script = TaskScript(docs_per_poll=PER_POLL, vanish_after_polls=1)
    create_copy(engine, fake)
    task_id = engine.start_reindex(ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE))
    assert engine.get_task(task_id).created == PER_POLL  # type: ignore[union-attr]
    assert engine.get_task(task_id) is None  # the node lost it
    assert engine.list_reindex_tasks(OPAQUE) == []
    assert engine.get_task("fake-node:99") is None  # never known
    with pytest.raises(TaskNotFound):
        engine.cancel_task(task_id)
    with pytest.raises(EngineError) as malformed:  # the engines refuse it: not a task ID
        engine.get_task("not-a-task-id")
    assert malformed.value.status == 400


def test_rethrottle(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    fake.task_script = TaskScript(stall=True)
    create_copy(engine, fake)
    request = ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE, requests_per_second=50)
    task_id = engine.start_reindex(request)
    assert fake.tasks[task_id].rps == 50.0
    engine.rethrottle(task_id, 12.5)
    assert fake.tasks[task_id].rps == 12.5
    engine.rethrottle(task_id, 0)  # unthrottled
    assert fake.tasks[task_id].rps == float("inf")
    assert server.requests[-1].query == {"requests_per_second": "-1"}
    with pytest.raises(TaskNotFound):
        engine.rethrottle("fake-node:99", 10)
    assert fake.calls[-1] == Call("rethrottle", ("fake-node:99", 10.0))  # as on the fake


# -- documents ------------------------------------------------------------------------------


def test_bulk_and_scan(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    create_copy(engine, fake)
    ok, errors = engine.bulk(
        [
            {"_index": COPY, "_id": "a", "_source": {"tags": ["t1"]}},
            {"_index": COPY, "_id": "b", "_source": {"tags": ["t2"]}},
            {"_op_type": "create", "_index": COPY, "_id": "a", "_source": {"tags": []}},
            {"_op_type": "delete", "_index": COPY, "_id": "b"},
        ]
    )
    assert ok == 3
    ((op, item),) = errors[0].items()
    assert (op, item["_id"], item["status"]) == ("create", "a", 409)
    assert fake.indices[COPY].docs == {"a": {"tags": ["t1"]}}

    fake.add_index("big", make_docs(2100))
    hits = list(engine.scan("big"))  # pages of 1000: one search, three scrolls (the last empty)
    assert {h["_id"]: h["_source"] for h in hits} == fake.indices["big"].docs
    assert server.paths("POST").count("/_search/scroll") == 3
    assert server.paths("DELETE") == ["/_search/scroll"]
    tagged = {h["_id"] for h in engine.scan(ALIAS, {"term": {"tags": "t1"}})}
    assert tagged == {k for k, v in fake.indices[SOURCE].docs.items() if "t1" in v["tags"]}
    with pytest.raises(IndexNotFound):
        list(engine.scan("nope"))


# -- errors -----------------------------------------------------------------------------------


def test_engine_errors_and_lost_connections(engine: ClientEngine, fake: FakeEngine) -> None:
    fake.fail_on("count")  # EngineError(status=500)
    with pytest.raises(EngineError) as refused:
        engine.count(SOURCE)
    assert refused.value.status == 500 and "injected failure in count" in refused.value.message

    # a lost connection is retried by the client for a read, which then succeeds...
    fake.fail_on("count", error=EngineUnreachable(fake.url, "connection reset"))
    assert engine.count(SOURCE) == N_DOCS
    assert fake.call_names()[-2:] == ["count", "count"]
    # ...but never for starting a reindex, which could start a second task
    create_copy(engine, fake)
    fake.fail_on("start_reindex", error=EngineUnreachable(fake.url, "connection reset"))
    with pytest.raises(EngineUnreachable):
        engine.start_reindex(ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE))
    assert fake.call_names().count("start_reindex") == 1 and fake.tasks == {}

    fake.refuse_connections()
    with pytest.raises(EngineUnreachable) as unreachable:
        engine.index_exists(SOURCE)
    assert unreachable.value.url == engine.url
    fake.refuse_connections(False)
    assert engine.index_exists(SOURCE) is True


# -- whole runs through reindex_fsm.api and the real adapter ---------------------------


def contract_config(server: ContractServer, state_db: str, **overrides) -> Config:
    options = {
        "state_db": state_db,
        "engine_url": server.url,
        "client_options": dict(CLIENT),
        "now": lambda: NOW,
        "sleep": lambda s: None,
        "crash": lambda: Crashpoints(),
    }
    return Config(**{**options, **overrides})  # type: ignore[arg-type]


def test_run_swaps_with_the_same_engine_calls(
    server: ContractServer, fake: FakeEngine, flavor: str, state_db: str
) -> None:
    cfg = contract_config(server, state_db)
    before = copy.deepcopy(fake.snapshot()[SOURCE])
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))
    rec = outcome.record
    assert rec.state is State.SWAPPED and outcome.exit_code == ExitCode.OK
    assert (rec.engine_flavor, rec.engine_url) == (flavor, server.url)
    assert rec.target_index == TARGET and rec.source_count == rec.target_count == N_DOCS
    assert fake.indices[TARGET].docs == before["docs"]
    assert fake.indices[TARGET].aliases == before["aliases"]
    assert fake.indices[SOURCE].aliases == {}
    assert fake.indices[SOURCE].docs == before["docs"]
    target_settings = fake.indices[TARGET].settings
    assert target_settings["index.number_of_replicas"] == "1"
    assert target_settings["index.refresh_interval"] == "5s"
    # exactly the calls of the same run on the fake directly (tests/test_runs.py)
    calls = fake.call_names()
    plan_calls = (
        PLAN_CALLS
        if flavor == "opensearch"
        else [{"plugins": "check_privileges"}.get(c, c) for c in PLAN_CALLS if c != "ism_explain"]
    )
    assert plan_calls[1:9] == preflight_calls(flavor)
    assert without_info(calls) == without_info(plan_calls + run_calls(polls=3))
    assert calls.count("info") == INFO_CALLS[flavor]
    assert fake.tasks[rec.task_id].request.opaque_id == f"reindex-fsm:{rec.id}"
    assert [t for _, _, t in events(cfg, rec.id)] == [
        "plan",
        "create_target",
        "write_block",  # a checkpoint: recorded before the block is put on
        "start_copy",
        "copy_done",
        "verified",
    ]
    assert cfg.repo().active_run_for(ALIAS) is None


def test_copy_failure_rolls_back_to_the_cluster_as_before(
    server: ContractServer, fake: FakeEngine, state_db: str
) -> None:
    fake.task_script = TaskScript(docs_per_poll=PER_POLL, fail_after_polls=1)
    before = copy.deepcopy(fake.snapshot())
    cfg = contract_config(server, state_db)
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True, rollback_on_failure=True))
    rec = outcome.record
    assert rec.state is State.ROLLED_BACK and outcome.exit_code == ExitCode.ROLLED_BACK
    assert rec.failed_from is State.REINDEXING
    assert "injected bulk failure" in rec.error
    assert fake.snapshot() == before  # alias and source as before, target gone
    lease = ("put_lease", "delete_lease")
    data_writes = [c for c in fake.call_names(mutating_only=True) if c not in lease]
    assert data_writes == [
        "create_index",
        "add_write_block",
        "start_reindex",
        "delete_index",
        "delete_task_result",
        "remove_write_block",
    ]
    assert events(cfg, rec.id)[-2:] == [
        ("REINDEXING", "FAILED", "fail"),
        ("FAILED", "ROLLED_BACK", "roll_back"),
    ]


def test_vanished_task_is_copied_again_and_swapped(
    server: ContractServer, fake: FakeEngine, state_db: str
) -> None:
    fake.task_script = TaskScript(docs_per_poll=PER_POLL, vanish_after_polls=1)
    original = fake.start_reindex

    def start_reindex(request: ReindexRequest) -> str:  # the second task behaves
        task_id = original(request)
        fake.task_script = TaskScript(docs_per_poll=PER_POLL)
        return task_id

    fake.start_reindex = start_reindex  # type: ignore[method-assign]
    cfg = contract_config(server, state_db)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED and rec.copy_attempts == 2
    first, second = fake.tasks.values()
    assert first.vanished and rec.task_id == second.task_id
    assert (first.request.conflicts, second.request.conflicts) == ("abort", "proceed")
    assert first.request.opaque_id == second.request.opaque_id == f"reindex-fsm:{rec.id}"
    assert fake.indices[TARGET].docs == fake.indices[SOURCE].docs
    assert ALIAS in fake.indices[TARGET].aliases
    assert "copy_restarted" in [t for _, _, t in events(cfg, rec.id)]


def test_abort_during_reindexing_cancels_and_rolls_back(
    server: ContractServer, fake: FakeEngine, state_db: str
) -> None:
    fake.task_script = TaskScript(stall=True)
    before = copy.deepcopy(fake.snapshot())
    naps: list[float] = []

    def ctrl_c_on_second_nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt  # the operator hits Ctrl-C while the copy runs

    with pytest.raises(KeyboardInterrupt):
        api.start(
            contract_config(server, state_db, sleep=ctrl_c_on_second_nap), ALIAS, RunOptions()
        )
    cfg = contract_config(server, state_db)  # a new process
    (rec,) = cfg.repo().list()
    assert rec.state is State.REINDEXING
    (task,) = fake.tasks.values()
    assert not task.completed and task.request.opaque_id == f"reindex-fsm:{rec.id}"

    before_abort = len(fake.calls)
    outcome = api.abort(cfg, rec.id)
    assert outcome.record.state is State.ROLLED_BACK and outcome.exit_code == ExitCode.OK
    assert without_info([c.method for c in fake.calls[before_abort:]]) == without_info(ABORT_CALLS)
    assert task.cancelled and task.completed
    assert fake.snapshot() == before


def test_catch_up_run_counts_as_on_the_fake_directly(
    server: ContractServer, fake: FakeEngine, state_db: str, tmp_path: Path
) -> None:
    """A ``--write-policy catch-up`` run through HTTP, clients writing through the alias
    while it copies: each pass re-copies documents the target has (``op_type=index``), and
    the passes' counts of copied documents (created and updated) are the fake's own."""
    twin = make_cluster(N_DOCS)  # the same run on the fake directly
    for cluster in (fake, twin):
        cluster.task_script = TaskScript(docs_per_poll=PER_POLL)
        with_since_field(cluster)
        Writer(cluster, per_poll=2)
    options = RunOptions(write_policy="catch-up", since_field="updated_at", verify=True)
    rec = api.start(contract_config(server, state_db), ALIAS, options).record
    direct_cfg = make_config(twin, f"sqlite:///{tmp_path / 'direct.db'}")
    direct = api.start(direct_cfg, ALIAS, options).record
    assert rec.state is direct.state is State.SWAPPED, (rec.error, direct.error)
    passes = rec.write_policy["passes"]
    assert [p["copied"] for p in passes] == [p["copied"] for p in direct.write_policy["passes"]]
    assert len(passes) >= 2 and passes[0]["copied"] > 0
    updated = sum(t.updated for t in fake.tasks.values())
    assert updated > 0 and updated == sum(t.updated for t in twin.tasks.values())
    cfg = contract_config(server, state_db)
    recorded = [e.detail for e in cfg.repo().events(rec.id) if e.trigger == "catch_up_pass"]
    assert recorded == [
        e.detail for e in direct_cfg.repo().events(direct.id) if e.trigger == "catch_up_pass"
    ]
    assert fake.indices[TARGET].docs == twin.indices[TARGET].docs == fake.indices[SOURCE].docs


# -- points in time, searches and plugins ---------------------------------------------------

# The sort each flavor's IndexReader pages on, and the other flavor refuses.
PIT_SORT = {"elasticsearch": [{"_shard_doc": "asc"}], "opensearch": [{"_id": "asc"}]}
PIT_PATHS = {  # (open: POST /<index>/..., close: DELETE ...)
    "elasticsearch": (f"/{SOURCE}/_pit", "/_pit"),
    "opensearch": (f"/{SOURCE}/_search/point_in_time", "/_search/point_in_time"),
}


def sample_body(seed: int, size: int = 5) -> dict:
    """The verification's random sample (reindex_fsm.steps.copy.recompute.sample_check)."""
    return {
        "size": size,
        "query": {
            "function_score": {
                "query": {"match_all": {}},
                "random_score": {"seed": seed, "field": "_seq_no"},
            }
        },
    }


def test_point_in_time_pages_in_the_flavors_sort(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer, flavor: str
) -> None:
    pit = engine.open_pit(SOURCE, "1m")
    assert pit is not None and len(fake.pits) == 1
    seen: list[str] = []
    afters: list = []
    after = None
    while True:
        body = {
            "size": PER_POLL,
            "sort": PIT_SORT[flavor],
            "pit": {"id": pit, "keep_alive": "1m"},
            "track_total_hits": False,
        }
        if after is not None:
            body["search_after"] = after
        page = engine.search(None, body)
        pit = page["pit_id"]
        hits = page["hits"]["hits"]
        assert "total" not in page["hits"]
        if not hits:
            break
        assert {h["_index"] for h in hits} == {SOURCE}
        assert all(h["_source"] == fake.indices[SOURCE].docs[h["_id"]] for h in hits)
        seen += [h["_id"] for h in hits]
        after = hits[-1]["sort"]
        afters.append(after)
    assert seen == sorted(fake.indices[SOURCE].docs)
    # Elasticsearch's _shard_doc keys are numbers, OpenSearch's _id keys the IDs
    ends = [PER_POLL - 1, 2 * PER_POLL - 1, N_DOCS - 1]
    assert afters == [[n] if flavor == "elasticsearch" else [f"doc-{n:05d}"] for n in ends]

    # each flavor refuses the other's sort (so the reader must choose per flavor)
    other = PIT_SORT["opensearch" if flavor == "elasticsearch" else "elasticsearch"]
    with pytest.raises(EngineError) as refused:
        engine.search(None, {"size": 1, "sort": other, "pit": {"id": pit}})
    assert refused.value.status == 400

    engine.close_pit(pit)
    assert fake.pits == {}
    engine.close_pit(pit)  # already gone: no error
    with pytest.raises(EngineError) as gone:
        engine.search(None, {"size": 1, "sort": PIT_SORT[flavor], "pit": {"id": pit}})
    assert gone.value.status == 404
    assert "search_context_missing_exception" in gone.value.message
    with pytest.raises(IndexNotFound):
        engine.open_pit("nope", "1m")

    opened, closed = PIT_PATHS[flavor]
    opens = [r for r in server.requests if r.path == opened]
    assert [(r.method, r.query) for r in opens] == [("POST", {"keep_alive": "1m"})]
    closes = [r.body for r in server.requests if (r.method, r.path) == ("DELETE", closed)]
    key = "id" if flavor == "elasticsearch" else "pit_id"
    assert closes == [{key: pit if flavor == "elasticsearch" else [pit]}] * 2
    searches = [r for r in server.requests if r.path == "/_search"]
    assert len(searches) == len(afters) + 3 and all("pit" in r.body for r in searches)
    # every page and the search of the closed PIT reached the fake; the refused sort not
    assert fake.call_names().count("search") == len(afters) + 2


def test_ids_and_random_sample_searches(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    found = engine.search(SOURCE, {"query": {"ids": {"values": ["doc-00007", "doc-00003", "x"]}}})
    assert sorted(h["_id"] for h in found["hits"]["hits"]) == ["doc-00003", "doc-00007"]
    assert found["hits"]["total"] == {"value": 2, "relation": "eq"}

    sample = engine.search(SOURCE, sample_body(seed=42))
    hits = sample["hits"]["hits"]
    assert len({h["_id"] for h in hits}) == 5 and sample["hits"]["total"]["value"] == N_DOCS
    scores = [h["_score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and sample["hits"]["max_score"] == scores[0]
    assert all(h["_source"] == fake.indices[SOURCE].docs[h["_id"]] for h in hits)
    again = engine.search(SOURCE, sample_body(seed=42))["hits"]["hits"]
    assert [h["_id"] for h in again] == [h["_id"] for h in hits]  # the seed decides
    other = engine.search(SOURCE, sample_body(seed=7))["hits"]["hits"]
    assert [h["_id"] for h in other] != [h["_id"] for h in hits]
    assert [h["_id"] for h in hits] == [
        h["_id"] for h in fake.search(SOURCE, sample_body(seed=42))["hits"]["hits"]
    ]
    assert server.paths("POST")[-4:] == [f"/{SOURCE}/_search"] * 4
    with pytest.raises(IndexNotFound):
        engine.search("nope", sample_body(seed=1))


def test_open_pit_is_none_where_the_engine_has_no_pit_api(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer, flavor: str
) -> None:
    fake.pit_supported = False  # the facade answers 400 "no handler found", as such an engine
    assert engine.open_pit(SOURCE, "10m") is None
    assert server.paths()[-1] == PIT_PATHS[flavor][0]
    assert fake.call_names()[-1] == "open_pit"


def test_plugins(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    assert engine.plugins() == set()
    fake.plugin_names = {"opensearch-knn", "analysis-icu", "repository-s3"}
    assert engine.plugins() == {"opensearch-knn", "analysis-icu", "repository-s3"}
    asked = [r for r in server.requests if r.path == "/_cat/plugins"]
    assert [(r.method, r.query) for r in asked] == [("GET", {"format": "json"})] * 2
    assert fake.call_names()[-2:] == ["plugins", "plugins"]


# -- whole --recompute-embeddings runs through the real adapter -------------------------------

BATCH = 60  # the source's 250 documents in 5 batches (the last of 10)
FLOAT = {"type": "float"}


def recompute_options(**overrides) -> RunOptions:
    # allow_shrink: the input files are far smaller than the source (not what is tested)
    options = {
        "recompute_embeddings": True,
        "verify": True,
        "batch_size": BATCH,
        "allow_shrink": True,
    }
    return RunOptions(**{**options, **overrides})  # type: ignore[arg-type]


def comparable_calls(calls: list[str]) -> list[str]:
    """Calls without ``info``, one ``bulk`` per request: the contract server makes a fake
    call per bulk item, the real adapter one request per batch."""
    out: list[str] = []
    for call in without_info(calls):
        if not (call == "bulk" and out[-1:] == ["bulk"]):
            out.append(call)
    return out


def direct_run_calls(
    flavor: str, tmp_path: Path, options: RunOptions, **fake_settings: object
) -> list[str]:
    """The engine calls of the same run on a FakeEngine of ``flavor`` directly."""
    twin = FakeEngine(flavor=flavor, version=VERSIONS[flavor])
    twin.indices = make_cluster(N_DOCS).indices
    for name, value in fake_settings.items():
        setattr(twin, name, value)
    cfg = make_config(twin, f"sqlite:///{tmp_path / 'direct.db'}")
    rec = api.start(cfg, ALIAS, options).record
    assert rec.state is State.SWAPPED, rec.error
    return comparable_calls(twin.call_names())


def write_jsonl(path: Path, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            out.write(json.dumps({"id": f"j{i:05d}", "text": f"text number {i}", "n": i}) + "\n")
    return path


def assert_embedded(docs: dict, text_of: Callable[[dict], str], vector_field: str) -> None:
    vectors = hashing.compute_embeddings([text_of(d) for d in docs.values()])
    for (doc_id, doc), expected in zip(docs.items(), vectors, strict=True):
        assert np.allclose(doc[vector_field], expected, atol=1e-6), doc_id


def assert_verified_by_sample(cfg: Config, run_id: str, server: ContractServer) -> None:
    (verified,) = [e for e in cfg.repo().events(run_id) if e.trigger == "verified"]
    assert verified.detail["sample_min_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert verified.detail["sample_mismatched"] == []
    (sampled,) = [r for r in server.requests if r.path == f"/{TARGET}/_search"]
    random_score = sampled.body["query"]["function_score"]["random_score"]
    assert sampled.method == "POST" and random_score["field"] == "_seq_no"
    assert sampled.body["size"] == 50 and isinstance(random_score["seed"], int)


def test_recompute_run_from_a_jsonl_file(
    server: ContractServer, fake: FakeEngine, flavor: str, state_db: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "docs.jsonl", 30)
    options = recompute_options(documents_path=str(path), batch_size=7, vector_mapping=FLOAT)
    before = copy.deepcopy(fake.snapshot()[SOURCE])
    cfg = contract_config(server, state_db)
    outcome = api.start(cfg, ALIAS, options)
    rec = outcome.record
    assert rec.state is State.SWAPPED and outcome.exit_code == ExitCode.OK, rec.error
    assert rec.engine_flavor == flavor and rec.target_index == TARGET
    docs = fake.indices[TARGET].docs
    assert sorted(docs) == [f"j{i:05d}" for i in range(30)]
    assert {k: v for k, v in docs["j00012"].items() if k != "embedding"} == {
        "id": "j00012",
        "text": "text number 12",
        "n": 12,
    }
    assert_embedded(docs, lambda d: d["text"], "embedding")
    assert fake.indices[TARGET].mappings["properties"]["embedding"] == FLOAT
    assert fake.indices[TARGET].aliases == before["aliases"]
    assert fake.indices[SOURCE].aliases == {} and fake.indices[SOURCE].docs == before["docs"]
    assert rec.progress["indexed"] == 30 and rec.progress["batches"] == 5
    assert_verified_by_sample(cfg, rec.id, server)
    # a file is read, not the source: no point in time, no scroll
    assert not any(p.endswith(("/_pit", "/point_in_time", "/scroll")) for p in server.paths())
    assert server.paths().count("/_bulk") == 5  # one request per batch
    assert comparable_calls(fake.call_names()) == direct_run_calls(flavor, tmp_path, options)


def test_recompute_run_from_the_source_index(
    server: ContractServer, fake: FakeEngine, flavor: str, state_db: str, tmp_path: Path
) -> None:
    # Each flavor's own vector field: dense_vector on Elasticsearch, knn_vector where
    # OpenSearch's _cat/plugins lists the k-NN plugin.
    plugins = {"opensearch-knn"} if flavor == "opensearch" else set()
    fake.plugin_names = set(plugins)
    options = recompute_options(text_field="title")
    source = copy.deepcopy(fake.indices[SOURCE].docs)
    cfg = contract_config(server, state_db)
    outcome = api.start(cfg, ALIAS, options)
    rec = outcome.record
    assert rec.state is State.SWAPPED and outcome.exit_code == ExitCode.OK, rec.error
    docs = fake.indices[TARGET].docs
    assert sorted(docs) == sorted(source)
    assert all(
        {k: v for k, v in d.items() if k != "embedding"} == source[i] for i, d in docs.items()
    )
    assert_embedded(docs, lambda d: d["title"], "embedding")
    assert ALIAS in fake.indices[TARGET].aliases and fake.indices[SOURCE].aliases == {}
    mapping = fake.indices[TARGET].mappings["properties"]["embedding"]
    if flavor == "elasticsearch":
        assert (mapping["type"], mapping["dims"]) == ("dense_vector", hashing.DIMENSION)
    else:
        assert (mapping["type"], mapping["dimension"]) == ("knn_vector", hashing.DIMENSION)
        assert fake.indices[TARGET].settings["index.knn"] == "true"
    assert rec.progress["indexed"] == N_DOCS and rec.progress["batches"] == 5
    assert_verified_by_sample(cfg, rec.id, server)
    assert fake.pits == {}  # closed when the copy was done

    # the flavor's own PIT endpoints and sort
    opened, closed = PIT_PATHS[flavor]
    (opening,) = [r for r in server.requests if r.path == opened]
    assert (opening.method, opening.query) == ("POST", {"keep_alive": "10m"})
    (closing,) = [r for r in server.requests if r.path == closed]
    searches = [r.body for r in server.requests if r.path == "/_search"]
    pit_id = searches[0]["pit"]["id"]
    if flavor == "elasticsearch":
        assert closing.method == "DELETE" and closing.body == {"id": pit_id}
        assert not any("point_in_time" in p for p in server.paths())
        afters = [[n] for n in (59, 119, 179, 239, 249)]  # _shard_doc keys: numbers
    else:
        assert closing.method == "DELETE" and closing.body == {"pit_id": [pit_id]}
        assert not any(p.endswith("/_pit") for p in server.paths())
        afters = [[f"doc-{n:05d}"] for n in (59, 119, 179, 239, 249)]
    assert [b["sort"] for b in searches] == [PIT_SORT[flavor]] * 6
    assert [b["pit"] for b in searches] == [{"id": pit_id, "keep_alive": "10m"}] * 6
    assert [b.get("search_after") for b in searches] == [None, *afters]
    assert all(b["size"] == BATCH and b["track_total_hits"] is False for b in searches)
    assert [p for p in server.paths() if "scroll" in p] == []
    assert ("plugins" in fake.call_names()) is (flavor == "opensearch")
    assert comparable_calls(fake.call_names()) == direct_run_calls(
        flavor, tmp_path, options, plugin_names=plugins
    )


@pytest.mark.parametrize(
    ("flavor", "id_fielddata"),
    [
        pytest.param("opensearch", None, id="opensearch"),
        pytest.param("elasticsearch", True, id="elasticsearch-id_field_data-enabled"),
        # Elasticsearch 8 refuses to sort on _id by default: the scroll goes unsorted.
        pytest.param("elasticsearch", None, id="elasticsearch"),
    ],
)
def test_recompute_run_where_the_engine_has_no_pit_scrolls(
    fake: FakeEngine, flavor: str, id_fielddata: bool | None, state_db: str, tmp_path: Path
) -> None:
    fake.pit_supported = False  # the PIT endpoint is answered 400 "no handler found"
    options = recompute_options(text_field="title", vector_mapping=FLOAT)
    with ContractServer(fake, flavor, id_fielddata=id_fielddata) as server:  # type: ignore[arg-type]
        cfg = contract_config(server, state_db)
        rec = api.start(cfg, ALIAS, options).record
    assert server.problems == []
    (opening,) = [r for r in server.requests if r.path == PIT_PATHS[flavor][0]]
    assert opening.method == "POST"
    assert fake.call_names().count("open_pit") == 1
    assert rec.state is State.SWAPPED, rec.error
    docs = fake.indices[TARGET].docs
    assert sorted(docs) == sorted(fake.indices[SOURCE].docs)
    assert_embedded(docs, lambda d: d["title"], "embedding")
    # one scroll (sorted on _id where the engine allows it), no PIT search, nothing to close
    (scrolled,) = [r for r in server.requests if r.path == f"/{SOURCE}/_search"]
    sort = [{"_id": "asc"}] if flavor == "opensearch" else "_doc"
    assert "scroll" in scrolled.query and scrolled.body["sort"] == sort
    assert "/_search" not in server.paths() and PIT_PATHS[flavor][1] not in server.paths()
    assert "close_pit" not in fake.call_names()
    assert comparable_calls(fake.call_names()) == direct_run_calls(
        flavor, tmp_path, options, pit_supported=False
    )


# -- write policy ---------------------------------------------------------------------------


def test_write_block_put_twice_and_lifted(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    """A second block (a resumed run) is answered with shards_acknowledged false and no
    index listed: the adapter reads the setting back instead of failing."""
    engine.add_write_block(SOURCE)
    engine.add_write_block(SOURCE)
    assert fake.write_blocked(SOURCE)
    engine.remove_write_block(SOURCE)
    assert not fake.write_blocked(SOURCE)
    assert "index.blocks.write" not in fake.indices[SOURCE].settings
    assert server.paths("PUT")[-3:] == [
        f"/{SOURCE}/_block/write",
        f"/{SOURCE}/_block/write",
        f"/{SOURCE}/_settings",
    ]
    assert without_info(fake.call_names()) == [
        "add_write_block",
        "add_write_block",
        "index_exists",  # GET _settings/index.blocks.write: was it there already?
        "remove_write_block",
    ]


def test_write_block_not_confirmed_by_every_shard_is_an_error(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    original = server._add_block

    def unconfirmed(call):  # the block is not in the settings yet: shards still busy
        return 200, {"acknowledged": True, "shards_acknowledged": False, "indices": []}

    server._add_block = unconfirmed  # type: ignore[method-assign]
    try:
        with pytest.raises(EngineError, match="not acknowledged by every shard"):
            engine.add_write_block(SOURCE)
    finally:
        server._add_block = original  # type: ignore[method-assign]


# -- deep verification -------------------------------------------------------------------------


def test_mget(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    docs = fake.indices[SOURCE].docs
    found = engine.mget(SOURCE, [("doc-00003", None), ("nope", None), ("doc-00001", "r1")])
    assert found == {"doc-00003": docs["doc-00003"], "nope": None, "doc-00001": docs["doc-00001"]}
    assert engine.mget(SOURCE, [("doc-00003", None), ("x", None)], source=False) == {
        "doc-00003": {},
        "x": None,
    }
    assert engine.mget(SOURCE, []) == {}  # nothing asked, nothing sent
    with pytest.raises(IndexNotFound):
        engine.mget("nope", [("a", None)])
    asked = [r for r in server.requests if r.path.endswith("/_mget")]
    assert [(r.method, r.path) for r in asked] == [("POST", f"/{SOURCE}/_mget")] * 2 + [
        ("POST", "/nope/_mget")
    ]
    assert asked[0].body == {
        "docs": [
            {"_id": "doc-00003", "_source": True},
            {"_id": "nope", "_source": True},
            {"_id": "doc-00001", "_source": True, "routing": "r1"},
        ]
    }
    assert asked[1].body["docs"][0] == {"_id": "doc-00003", "_source": False}
    assert [c.args for c in fake.calls if c.method == "mget"] == [
        (SOURCE, 3),
        (SOURCE, 2),
        ("nope", 1),
    ]


def test_deep_verification_run(
    server: ContractServer, fake: FakeEngine, state_db: str, flavor: str
) -> None:
    """Scan, mget, the random sample and a query through both real adapters."""
    cfg = contract_config(server, state_db)
    queries = [{"line": 1, "query": {"match_all": {}}}]
    options = RunOptions(verify=True, verify_level="deep", verify_queries=queries)
    rec = api.start(cfg, ALIAS, options).record
    assert rec.state is State.SWAPPED, rec.error
    v = rec.verification
    assert v["passed"] and v["documents"]["compared"] == N_DOCS
    assert v["queries"]["queries"][0]["overlap"] == 1.0
    assert v["mappings"]["difference_count"] == 0
    mgets = [r for r in server.requests if r.path == f"/{TARGET}/_mget"]
    assert sum(len(r.body["docs"]) for r in mgets) == N_DOCS

    fake.indices[TARGET].docs["doc-00005"]["title"] = "changed"
    fake.indices[SOURCE].aliases, fake.indices[TARGET].aliases = fake.indices[TARGET].aliases, {}
    del fake.indices[TARGET]
    sampled = RunOptions(verify=True, verify_level="deep", deep_sample=N_DOCS)

    def change(_point: str) -> None:
        fake.indices[TARGET].docs["doc-00005"]["title"] = "changed"

    cfg = contract_config(
        server, state_db, crash=lambda: Crashpoints(at="commit.VERIFYING", action=change)
    )
    failed = api.start(cfg, ALIAS, sampled)
    assert failed.exit_code == ExitCode.VERIFICATION_FAILED
    docs = failed.record.verification["documents"]
    assert docs["mode"] == f"sample of {N_DOCS}" and docs["differing"]["ids"] == ["doc-00005"]


# -- lease and preflight --

LEASE_DOC = {"run_id": "run-1", "owner": "op@host:1", "expires_at": "2026-11-25T03:01:00+00:00"}


def test_lease_create_conditional_write_and_delete(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    assert engine.get_lease(ALIAS) is None  # no lease index yet: None, not an error
    first = engine.put_lease(ALIAS, LEASE_DOC)
    assert fake.lease_index_created and first.doc == LEASE_DOC
    assert (first.seq_no, first.primary_term) == (0, 1)
    assert server.paths("PUT")[:2] == [f"/{LEASE_INDEX}", f"/{LEASE_INDEX}/_create/{ALIAS}"]
    with pytest.raises(LeaseConflict):  # op_type=create on an existing lease: 409
        engine.put_lease(ALIAS, LEASE_DOC)
    read = engine.get_lease(ALIAS)
    assert read == first
    renewed = engine.put_lease(ALIAS, {**LEASE_DOC, "owner": "b"}, seq_no=0, primary_term=1)
    assert renewed.seq_no == 1 and engine.get_lease(ALIAS).doc["owner"] == "b"  # type: ignore[union-attr]
    with pytest.raises(LeaseConflict):  # written with what is no longer there
        engine.put_lease(ALIAS, LEASE_DOC, seq_no=0, primary_term=1)
    with pytest.raises(LeaseConflict):
        engine.delete_lease(ALIAS, 0, 1)
    engine.delete_lease(ALIAS, 1, 1)
    assert engine.get_lease(ALIAS) is None
    engine.delete_lease(ALIAS, 1, 1)  # already gone: fine
    conditional = [r for r in server.requests if r.path == f"/{LEASE_INDEX}/_doc/{ALIAS}"]
    assert {r.query.get("if_primary_term") for r in conditional if r.method != "GET"} == {"1"}
    assert [c for c in fake.call_names() if "lease" in c] == [
        "get_lease",
        "put_lease",
        "put_lease",
        "get_lease",
        "put_lease",
        "get_lease",
        "put_lease",
        "delete_lease",
        "delete_lease",
        "get_lease",
        "delete_lease",
    ]


def test_the_lease_index_is_created_hidden_once(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    engine.put_lease("a", LEASE_DOC)
    engine.put_lease("b", LEASE_DOC)  # the index exists now: not created again
    creates = [r for r in server.requests if r.method == "PUT" and r.path == f"/{LEASE_INDEX}"]
    (create,) = creates
    assert create.body["settings"]["index.hidden"] is True
    assert create.body["settings"]["index.number_of_shards"] == 1


def test_a_lease_index_created_meanwhile_is_not_an_error(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "index_exists", lambda _index: False)  # raced: both create
    fake.lease_index_created = True
    stored = engine.put_lease(ALIAS, LEASE_DOC)
    assert stored.doc == LEASE_DOC
    assert server.paths("PUT") == [f"/{LEASE_INDEX}", f"/{LEASE_INDEX}/_create/{ALIAS}"]


def test_index_status_open_closed_and_missing(engine: ClientEngine, fake: FakeEngine) -> None:
    fake.store_bytes[SOURCE] = 123_456
    assert engine.index_status(SOURCE) == IndexStatus(SOURCE, "open", "green", 123_456)
    fake.closed.add(SOURCE)
    status = engine.index_status(SOURCE)
    assert (status.status, status.primary_store_bytes) == ("close", None)
    with pytest.raises(IndexNotFound):
        engine.index_status("missing")


def test_data_node_disks_leave_out_nodes_without_data(
    engine: ClientEngine, fake: FakeEngine
) -> None:
    fake.disks = [NodeDisk("n1", 100, 40), NodeDisk("n2", 200, 150)]
    assert engine.data_node_disks() == fake.disks


def test_disk_watermarks_as_the_cluster_sets_them(engine: ClientEngine, fake: FakeEngine) -> None:
    disk = "cluster.routing.allocation.disk."
    assert engine.disk_watermarks() == fake.disk_watermarks()  # the defaults
    marks = engine.disk_watermarks()
    assert (marks.enabled, marks.low, marks.high, marks.flood_stage) == (
        True,
        "85%",
        "90%",
        "95%",
    )
    fake.cluster_settings["persistent"][disk + "watermark.low"] = "20gb"
    fake.cluster_settings["transient"][disk + "watermark.flood_stage"] = "1gb"
    fake.cluster_settings["persistent"][disk + "threshold_enabled"] = "false"
    fake.cluster_settings["defaults"][disk + "watermark.low.max_headroom"] = "200gb"
    marks = engine.disk_watermarks()
    assert marks == fake.disk_watermarks()
    assert (marks.enabled, marks.low, marks.flood_stage, marks.low_max_headroom) == (
        False,
        "20gb",
        "1gb",
        "200gb",
    )
    assert marks.sources == {"low": "persistent", "high": "defaults", "flood_stage": "transient"}


def test_privileges(engine: ClientEngine, fake: FakeEngine, flavor: str) -> None:
    index = [([SOURCE], ["read", "monitor"]), ([f"{ALIAS}-*"], ["create_index", "write"])]
    assert engine.check_privileges(["monitor", "manage"], index) is None  # security off
    if flavor == "elasticsearch":
        fake.security_enabled = True
        fake.missing_privileges = {"cluster:manage", f"{ALIAS}-*:write"}
        assert engine.check_privileges(["monitor", "manage"], index) == PrivilegeCheck(
            checked=True, user="reindexer", missing=("cluster:manage", f"{ALIAS}-*:write")
        )
        fake.missing_privileges = set()
        assert engine.check_privileges(["monitor"], index).missing == ()  # type: ignore[union-attr]
    else:
        fake.plugin_names = {"opensearch-security"}
        assert engine.check_privileges(["monitor"], index) == PrivilegeCheck(
            checked=False,
            user="reindexer",
            note="OpenSearch has no privilege-check API; user reindexer, roles: reindex_role",
        )
    # the adapter and the fake (as that flavor) answer alike
    direct = fake.has_privileges if flavor == "elasticsearch" else fake.check_privileges
    assert engine.check_privileges(["monitor"], index) == direct(["monitor"], index)


# -- transforms, undo, retention, task records -------------------------------------------------


def test_reindex_sends_pipeline_and_script(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    create_copy(engine, fake)
    script = {"source": "ctx._source.x = params.v", "lang": "painless", "params": {"v": 1}}
    request = ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE, pipeline="enrich", script=script)
    task_id = engine.start_reindex(request)
    sent = server.requests[-1].body
    assert sent["dest"] == {"index": COPY, "op_type": "create", "pipeline": "enrich"}
    assert sent["script"] == script
    assert fake.tasks[task_id].request.pipeline == "enrich"
    assert fake.tasks[task_id].request.script == script


def test_pipeline_exists(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    fake.pipelines["enrich"] = {"processors": [{"set": {"field": "x", "value": 1}}]}
    assert engine.pipeline_exists("enrich") is True
    assert engine.pipeline_exists("nope") is False
    assert server.paths()[-2:] == ["/_ingest/pipeline/enrich", "/_ingest/pipeline/nope"]
    assert fake.call_names()[-2:] == ["pipeline_exists", "pipeline_exists"]


def test_describe_indices(engine: ClientEngine, fake: FakeEngine, server: ContractServer) -> None:
    meta = {"reindex_fsm": {"tool": "reindex-fsm", "alias": ALIAS, "run_id": "r1"}}
    fake.add_index("documents-old", settings={"index.creation_date": "1600000000000"})
    fake.add_index("documents-new", mappings={"_meta": meta, "properties": {}})
    fake.indices["documents-old"].closed = True
    found = engine.describe_indices("documents-*")
    assert found == fake.describe_indices("documents-*")
    by_name = {i.name: i for i in found}
    assert next(i.name for i in found) == "documents-old"  # oldest first
    assert by_name["documents-old"].open is False and by_name["documents-new"].meta == meta
    assert by_name[SOURCE].aliases == ("documents", "documents-public")
    assert engine.describe_indices("nothing-*") == []
    assert engine.describe_indices("nothing") == []  # a missing concrete name: none
    cat = next(r for r in server.requests if r.path.startswith("/_cat/indices/"))
    assert cat.query["format"] == "json" and "creation.date" in cat.query["h"]


def test_delete_task_result(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer, flavor: str
) -> None:
    create_copy(engine, fake)
    task_id = engine.start_reindex(ReindexRequest(SOURCE, COPY, opaque_id=OPAQUE))
    while not engine.get_task(task_id).completed:  # type: ignore[union-attr]
        pass
    if flavor == "elasticsearch":  # .tasks is a restricted system index: refused
        with pytest.raises(EngineError) as refused:
            engine.delete_task_result(task_id)
        assert refused.value.status == 403
        assert engine.get_task(task_id) is not None
        assert server.paths("DELETE") == [f"/.tasks/_doc/{task_id}"]  # no _tasks API asked
        return
    assert engine.delete_task_result(task_id) is True
    assert engine.get_task(task_id) is None  # its result is gone
    assert engine.delete_task_result(task_id) is False  # nothing stored any more
    # OpenSearch 2.19 has no DELETE _tasks/<id> (405): the .tasks document is deleted
    assert server.paths("DELETE")[:2] == [f"/_tasks/{task_id}", f"/.tasks/_doc/{task_id}"]


def test_max_seq_nos_of_the_primaries(
    engine: ClientEngine, fake: FakeEngine, server: ContractServer
) -> None:
    create_copy(engine, fake)
    assert engine.max_seq_nos(COPY) == fake.max_seq_nos(COPY) == {"0": -1}
    engine.bulk([{"_index": COPY, "_id": "a", "_source": {"title": "a"}}])
    assert engine.max_seq_nos(COPY) == {"0": 0}
    engine.bulk([{"_index": COPY, "_id": "a", "_source": {"title": "b"}}])  # same count
    engine.bulk([{"_op_type": "delete", "_index": COPY, "_id": "a"}])
    assert engine.max_seq_nos(COPY) == {"0": 2}  # the primary's, not the lagging replica's
    with pytest.raises(IndexNotFound):
        engine.max_seq_nos("no-such-index")
    assert server.paths("GET")[-1] == "/no-such-index/_stats/docs"
