"""Contract tests of Elasticsearch 7.17, the oldest Elasticsearch supported: the facade answers
as 7.17 does to the 8.x client (plain ``application/json`` whatever ``compatible-with`` the
client asks for), the adapter is picked and a run goes through with the same engine calls as
on 8.x; an older 7.x is refused in one line before any other request."""

from __future__ import annotations

import copy
import urllib.request
from collections.abc import Iterator

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import EngineInfo
from reindex_fsm.engine.connect import connect
from reindex_fsm.engine.elasticsearch import ElasticsearchEngine
from reindex_fsm.errors import ExitCode, UnsupportedEngine
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, TARGET, make_cluster
from .support.contract import ES_7_17, ContractServer
from .test_contract import CLIENT, INFO_CALLS, N_DOCS, PER_POLL, contract_config, without_info
from .test_runs import PLAN_CALLS, run_calls


@pytest.fixture
def fake() -> FakeEngine:
    cluster = make_cluster(N_DOCS)
    cluster.task_script = TaskScript(docs_per_poll=PER_POLL)
    return cluster


@pytest.fixture
def server(fake: FakeEngine) -> Iterator[ContractServer]:
    with ContractServer(fake, "elasticsearch", version=ES_7_17) as srv:
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


def test_7_17_answers_plain_json_and_the_elasticsearch_adapter_is_picked(
    server: ContractServer,
) -> None:
    request = urllib.request.Request(
        server.url, headers={"accept": "application/vnd.elasticsearch+json; compatible-with=8"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.headers["content-type"] == "application/json"
    with connect(server.url, **CLIENT) as engine:
        assert type(engine) is ElasticsearchEngine
        assert engine.info() == EngineInfo("elasticsearch", ES_7_17, "fake", "fake-cluster-uuid")
        assert engine.count(SOURCE) == N_DOCS  # a request through the 8.x client


def test_a_run_on_7_17_swaps_with_the_same_engine_calls_as_on_8(
    server: ContractServer, fake: FakeEngine, state_db: str
) -> None:
    before = copy.deepcopy(fake.snapshot()[SOURCE])
    outcome = api.start(contract_config(server, state_db), ALIAS, RunOptions(verify=True))
    rec = outcome.record
    assert rec.state is State.SWAPPED and outcome.exit_code == ExitCode.OK
    assert (rec.engine_flavor, rec.engine_version) == ("elasticsearch", ES_7_17)
    assert fake.indices[TARGET].docs == before["docs"]
    assert fake.indices[TARGET].aliases == before["aliases"]
    # Elasticsearch is not asked about ISM (an OpenSearch plugin)
    plan_calls = [
        {"plugins": "check_privileges"}.get(c, c) for c in PLAN_CALLS if c != "ism_explain"
    ]
    calls = fake.call_names()
    assert without_info(calls) == without_info(plan_calls + run_calls(polls=3))
    assert calls.count("info") == INFO_CALLS["elasticsearch"]


@pytest.mark.parametrize("version", ["7.16.3", "7.10.2"])
def test_an_older_7_is_refused_before_any_other_request(fake: FakeEngine, version: str) -> None:
    with ContractServer(fake, "elasticsearch", version=version) as srv:
        with pytest.raises(UnsupportedEngine) as caught:
            connect(srv.url, **CLIENT).info()
        assert f"Elasticsearch {version} is not supported" in caught.value.one_line()
        assert "Elasticsearch 7.17, 8.x or 9.x" in caught.value.one_line()
        assert set(srv.paths()) == {"/"}
    assert fake.call_names() == ["info"] * len(srv.paths())
