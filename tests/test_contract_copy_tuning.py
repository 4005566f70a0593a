"""The copy tuning's request on the wire, through each real adapter against the contract
facade (Elasticsearch 7.17, 8 and 9, OpenSearch): the scroll batch size is ``source.size``
in the ``_reindex`` body, never a top-level ``size``/``max_docs`` (which would cap the
documents copied), and a whole run sends the size its plan chose."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import ReindexRequest
from reindex_fsm.engine.connect import connect
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.copy import tuning
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, make_cluster
from .support.contract import VERSIONS, ContractServer
from .support.contract.server import ES_7_17
from .test_contract import contract_config

N_DOCS = 250
ENGINES = [
    ("elasticsearch", ES_7_17),
    ("elasticsearch", VERSIONS["elasticsearch"]),
    ("elasticsearch", VERSIONS["elasticsearch-9.5"]),
    ("opensearch", VERSIONS["opensearch"]),
]


@pytest.fixture
def fake() -> FakeEngine:
    cluster = make_cluster(N_DOCS)
    cluster.task_script = TaskScript(docs_per_poll=100)
    return cluster


@pytest.fixture(params=ENGINES, ids=[f"{f}-{v}" for f, v in ENGINES])
def server(request: pytest.FixtureRequest, fake: FakeEngine) -> Iterator[ContractServer]:
    flavor, version = request.param
    with ContractServer(fake, flavor, version=version) as srv:
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


def _reindex_bodies(server: ContractServer) -> list[dict]:
    return [r.body for r in server.requests if r.method == "POST" and r.path == "/_reindex"]


def test_the_batch_size_is_source_size_in_the_body(server: ContractServer, fake: FakeEngine):
    engine = connect(server.url, request_timeout=5)
    try:
        fake.create_index("copy-v2", {}, {})
        engine.start_reindex(ReindexRequest(SOURCE, "copy-v2", "reindex-fsm:r", batch_size=750))
    finally:
        engine.close()
    (body,) = _reindex_bodies(server)
    assert body["source"] == {"index": SOURCE, "size": 750}
    assert "size" not in body and "max_docs" not in body
    (task,) = fake.tasks.values()
    assert task.request.batch_size == 750  # the facade read it where the engines do


def test_a_run_sends_the_size_its_plan_chose(
    server: ContractServer, fake: FakeEngine, state_db: str
):
    fake.store_bytes[SOURCE] = 40_000 * N_DOCS
    cfg = contract_config(server, state_db)
    rec = api.start(cfg, ALIAS, RunOptions(verify=True)).record
    assert rec.state is State.SWAPPED, rec.error
    (body,) = _reindex_bodies(server)
    assert body["source"]["size"] == tuning.BATCH_BYTES // 40_000
    assert "size" not in body and "max_docs" not in body
