"""Index templates through the real adapters, against the contract facade as each flavor
(Elasticsearch 8 cannot be had here with ``_reindex``): the adapters read composable and
legacy templates, simulate, put and delete the run's own, and a run with a template
matching its target's name makes the same engine calls as on the fake directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reindex_fsm import api
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.templates import own_name
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, TARGET, make_cluster, make_config
from .support.contract import ContractServer
from .test_contract import CLIENT, contract_config
from .test_templates import EVERYTHING, LEGACY, SOURCE_ALIASES


@pytest.fixture
def fake() -> FakeEngine:
    cluster = make_cluster(250)
    cluster.add_composable_template("docs", EVERYTHING)
    cluster.add_legacy_template("docs-legacy", LEGACY)
    return cluster


@pytest.fixture(params=["elasticsearch", "opensearch"])
def server(fake: FakeEngine, request: pytest.FixtureRequest) -> Iterator[ContractServer]:
    with ContractServer(fake, request.param) as srv:
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


@pytest.fixture
def engine(server: ContractServer) -> Iterator[ClientEngine]:
    adapter = connect(server.url, **CLIENT)
    yield adapter
    adapter.close()


def test_the_adapter_reads_both_kinds_as_the_fake_holds_them(engine, fake):
    assert sorted(engine.index_templates(), key=lambda t: t.name) == sorted(
        fake.index_templates(), key=lambda t: t.name
    )
    (composable,) = [t for t in engine.index_templates() if t.kind == "composable"]
    assert composable.priority == 100 and composable.aliases.keys() == {ALIAS, "other-alias"}
    assert composable.settings == {"index.max_result_window": "123"}
    legacy = next(t for t in engine.index_templates() if t.kind == "legacy")
    assert legacy.priority == 3 and legacy.index_patterns == (f"{ALIAS}-*",)


def test_simulate_put_and_delete(engine, fake):
    assert engine.simulate_index(TARGET)["aliases"].keys() == {ALIAS, "other-alias"}
    assert engine.simulate_index("elsewhere") == {}
    engine.put_index_template("mine", {"index_patterns": [TARGET], "priority": 101})
    assert engine.simulate_index(TARGET) == {"settings": {}, "mappings": {}, "aliases": {}}
    assert engine.delete_index_template("mine") is True
    assert engine.delete_index_template("mine") is False


def test_a_run_keeps_the_templates_off_with_the_same_calls_as_on_the_fake(
    server, fake, state_db, tmp_path
):
    outcome = api.start(contract_config(server, state_db), ALIAS, RunOptions(verify=True))
    assert outcome.record.state is State.SWAPPED, outcome.record.error
    target = fake.indices[TARGET]
    assert set(target.aliases) == SOURCE_ALIASES
    assert "index.max_result_window" not in target.settings
    assert "from_template" not in target.mappings["properties"]
    assert set(fake.composable_templates) == {"docs"}
    over_http = [c for c in fake.call_names(mutating_only=True) if "template" in c]
    direct = make_cluster(250)
    direct.add_composable_template("docs", EVERYTHING)
    direct.add_legacy_template("docs-legacy", LEGACY)
    cfg = make_config(direct, f"sqlite:///{tmp_path}/direct.db")
    assert api.start(cfg, ALIAS, RunOptions(verify=True)).record.state is State.SWAPPED
    assert over_http == [c for c in direct.call_names(mutating_only=True) if "template" in c]
    assert over_http == ["put_index_template", "delete_index_template"]
    assert own_name(outcome.record.id) not in fake.composable_templates
