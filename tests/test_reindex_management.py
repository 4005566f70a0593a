"""Elasticsearch 9.5's reindex management API, through the contract server.

From 9.5 a graceful shutdown of a node moves its reindex task to another node, where it
resumes under a new task ID: the Tasks API then answers 404 for the ID the run stored,
which the run would take for a vanished task and copy again. The Elasticsearch adapter
follows, cancels and rethrottles the task through ``GET _reindex/<id>``,
``POST _reindex/<id>/_cancel`` and ``_rethrottle`` on 9.5+, by the ID it was started with;
older versions keep the Tasks API. The preflight asks for ``monitor_reindex`` and
``manage_reindex`` on 9.5+ only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import EngineInfo, ReindexRequest
from reindex_fsm.engine.connect import connect
from reindex_fsm.engine.elasticsearch import ElasticsearchEngine, parse_reindex_task
from reindex_fsm.errors import EngineError, PreflightFailed, TaskNotFound
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, make_cluster
from .support.contract import VERSIONS, ContractServer
from .support.contract.wire import Answer, Call
from .test_contract import CLIENT, PER_POLL, contract_config, create_copy
from .test_runs import events

ES95 = VERSIONS["elasticsearch-9.5"]
OPAQUE = "reindex-fsm:run-1"


def _fake(version: str) -> FakeEngine:
    fake = make_cluster(250)
    fake.task_script = TaskScript(docs_per_poll=PER_POLL)
    fake.set_info(EngineInfo("elasticsearch", version, "fake", "fake-cluster-uuid"))
    return fake


@pytest.fixture
def fake() -> FakeEngine:
    return _fake(ES95)


@pytest.fixture
def server(fake: FakeEngine) -> Iterator[ContractServer]:
    with ContractServer(fake, "elasticsearch", version=ES95) as srv:
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


@pytest.fixture
def engine(server: ContractServer) -> Iterator[ElasticsearchEngine]:
    adapter = connect(server.url, **CLIENT)
    assert isinstance(adapter, ElasticsearchEngine)
    yield adapter
    adapter.close()


def _started(engine: ElasticsearchEngine, fake: FakeEngine) -> str:
    create_copy(engine, fake)
    return engine.start_reindex(ReindexRequest(source=SOURCE, dest="copy-v2", opaque_id=OPAQUE))


def test_a_relocated_task_is_followed_by_its_first_id(engine, fake, server) -> None:
    task_id = _started(engine, fake)
    new_id = fake.relocate_task(task_id)
    with pytest.raises(EngineError) as gone:  # the Tasks API forgot the old ID
        engine.request("GET", f"/_tasks/{task_id}")
    assert gone.value.status == 404
    assert engine.request("GET", f"/_tasks/{new_id}")["completed"] is False  # a poll: 100
    status = engine.get_task(task_id)
    assert status is not None and status.task_id == task_id and not status.completed
    assert status.created == 2 * PER_POLL and status.total == 250
    assert f"/_reindex/{task_id}" in server.paths("GET")
    asked_tasks_api = [p for p in server.paths("GET") if p.startswith("/_tasks/")]
    assert asked_tasks_api == [f"/_tasks/{task_id}", f"/_tasks/{new_id}"]  # the test's own
    done = engine.get_task(task_id)
    assert done is not None and done.completed and done.created == 250 and not done.failed


def test_list_cancel_and_rethrottle_follow_the_relocation(engine, fake, server) -> None:
    task_id = _started(engine, fake)
    new_id = fake.relocate_task(task_id)
    (listed,) = engine.list_reindex_tasks(OPAQUE)  # the Tasks API shows it as new_id
    assert listed.task_id == task_id and new_id != task_id
    engine.rethrottle(task_id, 50)
    assert fake.tasks[task_id].rps == 50
    engine.cancel_task(task_id)
    assert fake.tasks[task_id].cancelled
    assert f"/_reindex/{task_id}/_cancel" in server.paths("POST")
    assert not [p for p in server.paths("POST") if p.startswith("/_tasks/")]
    fake.advance(task_id)  # stops at its next batch
    with pytest.raises(TaskNotFound):  # completed: nothing to cancel
        engine.cancel_task(task_id)
    assert engine.get_task("fake-node:999") is None  # unknown: a 404, as vanished


def _relocating_after_first_poll(fake: FakeEngine):
    moved: list[str] = []

    def sleep(_seconds: float) -> None:  # between two polls, the node shuts down
        running = [t for t in fake.tasks.values() if not t.completed]
        if running and not moved and running[0].polls >= 1:
            moved.append(fake.relocate_task(running[0].task_id))

    return sleep, moved


def test_a_run_through_a_relocation_keeps_its_task(server, fake, state_db) -> None:
    sleep, moved = _relocating_after_first_poll(fake)
    cfg = contract_config(server, state_db, sleep=sleep)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert moved, "the task was never relocated"
    assert rec.state is State.SWAPPED and rec.copy_attempts == 1
    (task,) = fake.tasks.values()  # one copy, never started again
    assert rec.task_id == task.task_id and task.completed and task.created == 250
    assert "copy_restarted" not in [t for _, _, t in events(cfg, rec.id)]


def test_through_the_tasks_api_the_relocated_task_looks_vanished(
    server, fake, state_db, monkeypatch
) -> None:
    """What the management API prevents: the old ID's 404 taken for a vanished task, so
    the run goes the copy-again way (here it finds the moved task by its opaque ID and
    adopts it; a task that kept no X-Opaque-Id would be copied again from the start)."""
    monkeypatch.setattr(ElasticsearchEngine, "reindex_management", property(lambda s: False))
    sleep, moved = _relocating_after_first_poll(fake)
    cfg = contract_config(server, state_db, sleep=sleep)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    (task,) = fake.tasks.values()
    assert moved == [rec.task_id] and rec.task_id != task.task_id
    restarted = [e.detail for e in cfg.repo().events(rec.id) if e.trigger == "copy_restarted"]
    assert restarted == [{"vanished_task": task.task_id, "adopted": moved[0]}]


@pytest.mark.parametrize("version", ["8.15.3", "9.4.2"])
def test_older_versions_keep_the_tasks_api(state_db, version: str) -> None:
    fake = _fake(version)
    with ContractServer(fake, "elasticsearch", version=version) as server:
        rec = api.start(contract_config(server, state_db), ALIAS, RunOptions()).record
        assert rec.state is State.SWAPPED
        assert f"/_tasks/{rec.task_id}" in server.paths("GET")
        assert not [p for p in server.paths() if p.startswith("/_reindex/")]
        with pytest.raises(AssertionError, match="does not relocate"):
            fake.relocate_task(rec.task_id)
        assert server.problems == []


def _asked_cluster_privileges(server: ContractServer) -> list[str]:
    (asked,) = [r.body for r in server.requests if r.path == "/_security/user/_has_privileges"]
    return list(asked["cluster"])


@pytest.mark.parametrize(
    ("version", "asked"),
    [
        ("8.15.3", ["monitor", "manage"]),
        (ES95, ["monitor", "manage", "monitor_reindex", "manage_reindex"]),
    ],
)
def test_preflight_asks_the_reindex_privileges_from_9_5(state_db, version, asked) -> None:
    fake = _fake(version)
    fake.security_enabled = True
    with ContractServer(fake, "elasticsearch", version=version) as server:
        api.plan(contract_config(server, state_db), ALIAS, RunOptions())
        assert _asked_cluster_privileges(server) == asked


def test_preflight_names_a_missing_reindex_privilege(server, fake, state_db) -> None:
    fake.security_enabled = True
    fake.missing_privileges = {"cluster:manage_reindex"}
    with pytest.raises(PreflightFailed) as refused:
        api.start(contract_config(server, state_db), ALIAS, RunOptions())
    assert "user reindexer lacks cluster:manage_reindex" in refused.value.one_line()
    assert fake.call_names(mutating_only=True) == [] and fake.leases == {}


def test_a_management_answer_reads_as_a_tasks_api_answer() -> None:
    running = {
        "completed": False,
        "id": "n1:7",
        "description": "reindex from [a] to [b]",
        "start_time_in_millis": 1,
        "running_time_in_nanos": 2_000_000_000,
        "cancelled": False,
        "status": {"total": 100, "created": 30, "slices": [{"slice_id": 0, "created": 30}]},
    }
    children = {
        "nodes": {
            "n2": {
                "tasks": {
                    "n2:9": {"parent_task_id": "n1:7", "status": {"created": 12}},
                    "n2:10": {"parent_task_id": "other:1", "status": {"created": 99}},
                }
            }
        }
    }
    status = parse_reindex_task(running, "n1:7", children)
    assert (status.task_id, status.completed, status.total, status.created) == (
        "n1:7",
        False,
        100,
        42,
    )
    assert status.running_time_s == 2.0 and status.description == "reindex from [a] to [b]"
    failed = {
        **running,
        "completed": True,
        "cancelled": True,
        "response": {"total": 100, "created": 50, "failures": [{"id": "x", "cause": {}}]},
        "error": {"type": "task_cancelled_exception", "reason": "by user request"},
    }
    done = parse_reindex_task(failed, "n1:7")
    assert done.completed and done.cancelled and done.failed and done.created == 50


def test_a_resume_after_a_relocation_follows_the_stored_task(server, fake, state_db) -> None:
    """The process dies while the copy runs, the task moves to another node meanwhile,
    and the resume goes on following the task it stored."""
    naps: list[float] = []

    def ctrl_c_on_first_nap(seconds: float) -> None:
        naps.append(seconds)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.start(contract_config(server, state_db, sleep=ctrl_c_on_first_nap), ALIAS, RunOptions())
    cfg = contract_config(server, state_db)
    (rec,) = cfg.repo().list()
    assert rec.state is State.REINDEXING
    fake.relocate_task(rec.task_id)
    outcome = api.resume(cfg, rec.id)
    assert outcome.record.state is State.SWAPPED and outcome.record.copy_attempts == 1
    assert len(fake.tasks) == 1 and outcome.record.task_id == rec.task_id
    assert "copy_restarted" not in [t for _, _, t in events(cfg, rec.id)]


def test_a_run_makes_the_same_engine_calls_as_on_8(state_db, tmp_path) -> None:
    """Through the management API or the Tasks API, the fake behind sees the same run."""
    calls = {}
    for version in ("8.15.3", ES95):
        fake = _fake(version)
        with ContractServer(fake, "elasticsearch", version=version) as server:
            db = f"sqlite:///{tmp_path}/{version}.db"
            rec = api.start(contract_config(server, db), ALIAS, RunOptions(verify=True)).record
            assert rec.state is State.SWAPPED and server.problems == []
            calls[version] = fake.call_names()
            management = [p for p in server.paths() if p.startswith("/_reindex/")]
            assert bool(management) is (version == ES95)
    assert calls["8.15.3"] == calls[ES95]


def test_an_abort_after_a_relocation_cancels_the_moved_task(server, fake, state_db) -> None:
    fake.task_script = TaskScript(stall=True)
    before = fake.snapshot()

    def ctrl_c(_seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.start(contract_config(server, state_db, sleep=ctrl_c), ALIAS, RunOptions())
    cfg = contract_config(server, state_db)
    (rec,) = cfg.repo().list()
    fake.relocate_task(rec.task_id)
    outcome = api.abort(cfg, rec.id)
    assert outcome.record.state is State.ROLLED_BACK
    (task,) = fake.tasks.values()
    assert task.cancelled and task.completed
    assert f"/_reindex/{rec.task_id}/_cancel" in server.paths("POST")
    assert fake.snapshot() == before


def test_a_cluster_not_yet_all_on_9_5_is_followed_by_the_tasks_api(server, fake, state_db):
    """A rolling upgrade: the node answering says 9.5, another is older, and the cluster
    refuses the management endpoints until every node has them."""

    def not_on_all_nodes(call: Call) -> Answer:
        reason = "endpoint not supported on all nodes in the cluster"
        error = {"type": "illegal_argument_exception", "reason": reason}
        return 400, {"error": {"root_cause": [error], **error}, "status": 400}

    server._get_reindex = not_on_all_nodes  # type: ignore[method-assign]
    server._cancel_reindex = not_on_all_nodes  # type: ignore[method-assign]
    rec = api.start(contract_config(server, state_db), ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED and rec.copy_attempts == 1
    assert f"/_tasks/{rec.task_id}" in server.paths("GET")
    assert server.paths("GET").count(f"/_reindex/{rec.task_id}") == 1  # asked once, refused
