"""The lifecycle hand-over through the real adapters, against the contract facade
(tests/support/contract/lifecycle.py): Elasticsearch ILM on 8.x and 9.x, the
OpenSearch ISM plugin on 2.19 and 3.x, and engines without either.

No real engine here has ILM (the Elasticsearch 7.17 test build has no x-pack ILM) or
the ISM plugin (not on Maven Central): these are the tests of both flows' wire format.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import LifecycleStatus
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import EngineError, IndexNotFound
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, TARGET, make_cluster
from .support.contract import ContractServer
from .test_contract import CLIENT, contract_config

# 7.17 joins these once the Elasticsearch adapter accepts 7.x (it refuses it today)
ES_VERSIONS = ["7.17.29", "8.15.3", "9.1.0"]
OS_VERSIONS = ["2.19.1", "3.1.0"]
CREATED = "1690000000000"
NEXT = "documents-000002"  # a name ILM can roll over from


def cluster() -> FakeEngine:
    fake = make_cluster(200)
    fake.task_script = TaskScript(docs_per_poll=100)
    return fake


def serve(fake: FakeEngine, flavor: str, version: str) -> Iterator[ContractServer]:
    with ContractServer(fake, flavor, version=version) as srv:  # type: ignore[arg-type]
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


@pytest.fixture
def adapter_of() -> Iterator:
    made: list[ClientEngine] = []

    def make(server: ContractServer) -> ClientEngine:
        made.append(connect(server.url, **CLIENT))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


# -- the adapters ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ES_VERSIONS)
def test_ilm_explain_and_remove(version, adapter_of):
    fake = cluster()
    fake.ilm_available = True
    fake.indices[SOURCE].settings.update(
        {"index.lifecycle.name": "logs", "index.lifecycle.rollover_alias": ALIAS}
    )
    fake.add_index("plain")
    for server in serve(fake, "elasticsearch", version):
        engine = adapter_of(server)
        status = engine.ilm_explain(SOURCE)
        assert status is not None and status.policy == "logs" and status.phase == "hot"
        assert status.lifecycle_date_ms == int(fake.indices[SOURCE].settings["index.creation_date"])
        assert engine.ilm_explain("plain") == LifecycleStatus(policy=None)
        with pytest.raises(IndexNotFound):
            engine.ilm_explain("missing")
        engine.ilm_remove_policy(SOURCE)
        assert "index.lifecycle.name" not in fake.indices[SOURCE].settings
        assert engine.ilm_explain(SOURCE) == LifecycleStatus(policy=None)
        assert server.paths("POST") == [f"/{SOURCE}/_ilm/remove"]


@pytest.mark.parametrize(
    ("flavor", "version"), [("elasticsearch", "8.15.3"), ("opensearch", "2.19.1")]
)
def test_an_engine_without_ilm_answers_none(flavor, version, adapter_of):
    fake = cluster()
    fake.ilm_available = False
    for server in serve(fake, flavor, version):
        assert adapter_of(server).ilm_explain(SOURCE) is None


@pytest.mark.parametrize("version", OS_VERSIONS)
def test_ism_explain_add_and_remove(version, adapter_of):
    fake = cluster()
    fake.add_ism_policy("hot-delete")
    fake.add_index("other")
    fake.manage(SOURCE, "hot-delete", "hot")
    for server in serve(fake, "opensearch", version):
        engine = adapter_of(server)
        assert engine.ism_explain(SOURCE) == LifecycleStatus(policy="hot-delete", phase="hot")
        assert engine.ism_explain("other") == LifecycleStatus(policy=None)
        with pytest.raises(IndexNotFound):
            engine.ism_explain("missing")
        engine.ism_add_policy("other", "hot-delete")
        assert engine.ism_explain("other") == LifecycleStatus(policy="hot-delete", phase=None)
        with pytest.raises(EngineError, match="already has a policy"):
            engine.ism_add_policy("other", "hot-delete")  # a 200 listing a failed index
        with pytest.raises(EngineError, match="Could not find policy"):
            engine.ism_add_policy(SOURCE, "no-such-policy")
        engine.ism_remove_policy("other")
        engine.ism_remove_policy("other")  # nothing left to remove: not an error
        assert fake.indices["other"].settings[
            "index.plugins.index_state_management.auto_manage"
        ] == ("false")


@pytest.mark.parametrize("version", OS_VERSIONS)
def test_an_opensearch_without_the_ism_plugin_answers_none(version, adapter_of):
    fake = cluster()
    for server in serve(fake, "opensearch", version):
        engine = adapter_of(server)
        assert engine.ism_explain(SOURCE) is None
        with pytest.raises(EngineError, match="no handler found"):
            engine.ism_add_policy(SOURCE, "p")


# -- whole runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ES_VERSIONS)
def test_an_ilm_run_and_its_undo_over_the_wire(version, state_db):
    fake = cluster()
    fake.ilm_available = True
    fake.indices[SOURCE].settings.update(
        {
            "index.lifecycle.name": "logs",
            "index.lifecycle.rollover_alias": ALIAS,
            "index.creation_date": CREATED,
        }
    )
    for server in serve(fake, "elasticsearch", version):
        cfg = contract_config(server, state_db)
        record = api.start(cfg, ALIAS, RunOptions(verify=True, target_index=NEXT)).record
        assert record.state is State.SWAPPED, record.error
        create = next(r for r in server.requests if r.method == "PUT" and r.path == f"/{NEXT}")
        assert "lifecycle" not in str(create.body["settings"])  # nothing for ILM to act on
        target = fake.indices[NEXT].settings
        assert target["index.lifecycle.name"] == "logs"
        assert target["index.lifecycle.rollover_alias"] == ALIAS
        assert target["index.lifecycle.origination_date"] == CREATED
        assert "index.lifecycle.name" not in fake.indices[SOURCE].settings
        assert f"/{SOURCE}/_ilm/remove" in server.paths("POST")
        assert api.undo(cfg, record.id).state is State.UNDONE
        assert fake.indices[SOURCE].settings["index.lifecycle.name"] == "logs"
        assert "index.lifecycle.name" not in fake.indices[NEXT].settings
        assert f"/{NEXT}/_ilm/remove" in server.paths("POST")


@pytest.mark.parametrize("version", OS_VERSIONS)
def test_an_ism_run_and_its_undo_over_the_wire(version, state_db):
    fake = cluster()
    fake.add_ism_policy("hot-delete", patterns=(f"{ALIAS}-*",))
    fake.manage(SOURCE, "hot-delete", "hot")
    for server in serve(fake, "opensearch", version):
        cfg = contract_config(server, state_db)
        record = api.start(cfg, ALIAS, RunOptions(verify=True)).record
        assert record.state is State.SWAPPED, record.error
        create = next(r for r in server.requests if r.method == "PUT" and r.path == f"/{TARGET}")
        assert create.body["settings"]["index.plugins.index_state_management.auto_manage"] == (
            "false"
        )
        posts = server.paths("POST")
        assert posts.index(f"/_plugins/_ism/add/{TARGET}") < posts.index(
            f"/_plugins/_ism/remove/{SOURCE}"
        )
        assert posts.index("/_aliases") < posts.index(f"/_plugins/_ism/add/{TARGET}")
        assert fake.ism_managed == {TARGET: {"policy_id": "hot-delete", "state": "init"}}
        assert api.undo(cfg, record.id).state is State.UNDONE
        assert set(fake.ism_managed) == {SOURCE}
        assert f"/_plugins/_ism/remove/{TARGET}" in server.paths("POST")


@pytest.mark.parametrize("version", OS_VERSIONS)
def test_without_the_plugin_a_run_asks_once_and_does_nothing_more(version, state_db):
    fake = cluster()
    for server in serve(fake, "opensearch", version):
        record = api.start(contract_config(server, state_db), ALIAS, RunOptions()).record
        assert record.state is State.SWAPPED
        ism = [p for p in server.paths() if p.startswith("/_plugins/_ism")]
        assert ism == [f"/_plugins/_ism/explain/{SOURCE}"]
