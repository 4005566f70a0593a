"""A data stream given as ``--alias`` (its name, an alias over data streams, one of its
backing indices) is refused before anything is written: one line naming what the name
is and what to do, exit 2, and alias, sources, engine and state database as they were,
for ``start``, ``start --dry-run`` and ``plan`` alike. An ordinary alias makes no extra
request for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from reindex_fsm import api
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.engine.base import DataStreamUse
from reindex_fsm.engine.connect import connect
from reindex_fsm.errors import AliasNotFound, EngineError, ExitCode, NotAnAlias
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.data_streams import DataStreamRefused
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, db_rows, make_cluster
from .support.contract import ContractServer
from .support.contract.wire import Answer, Call
from .test_contract import CLIENT, contract_config
from .test_runs import PLAN_CALLS

STREAM = "logs-app"
DOCS = {"1": {"@timestamp": "2026-01-01T00:00:00Z", "msg": "a"}}


def _stream(fake: FakeEngine) -> str:
    fake.add_data_stream(STREAM, DOCS, generations=2)
    return STREAM


def _backing(fake: FakeEngine) -> str:
    return fake.add_data_stream(STREAM, DOCS, generations=2)[0]


def _alias_of_one(fake: FakeEngine) -> str:
    fake.add_data_stream(STREAM, DOCS)
    fake.add_data_stream_alias("logs", [STREAM])
    return "logs"


def _alias_of_two(fake: FakeEngine) -> str:
    fake.add_data_stream(STREAM, DOCS)
    fake.add_data_stream("logs-db", DOCS)
    fake.add_data_stream_alias("logs", [STREAM, "logs-db"])
    return "logs"


CASES = {
    "data stream": (
        _stream,
        f"'{STREAM}' is a data stream, not an alias (backing indices .ds-{STREAM}-000001, "
        f".ds-{STREAM}-000002)",
    ),
    "backing index": (
        _backing,
        f"'.ds-{STREAM}-000001' is a backing index of data stream '{STREAM}', not an alias",
    ),
    "alias of one data stream": (
        _alias_of_one,
        f"alias 'logs' points at data stream(s) '{STREAM}', not at one index",
    ),
    "alias of two data streams": (
        _alias_of_two,
        f"alias 'logs' points at data stream(s) '{STREAM}', 'logs-db', not at one index",
    ),
}
WHAT_TO_DO = "update its index template and roll it over"


@pytest.mark.parametrize("how", ["start", "dry-run"])
@pytest.mark.parametrize("case", list(CASES))
def test_refused_in_one_line_before_anything_is_written(
    cfg: Config, fake: FakeEngine, state_db: str, case: str, how: str
) -> None:
    setup, message = CASES[case]
    name = setup(fake)
    engine_before, db_before = fake.snapshot(), db_rows(state_db)
    extra = ["--force"] if how == "start" else ["--dry-run"]
    result = CliRunner().invoke(
        cli, ["start", "--alias", name, *extra], obj=cfg, catch_exceptions=False
    )
    assert result.exit_code == ExitCode.USAGE == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0] and WHAT_TO_DO in lines[0]
    assert "nothing was done" in lines[0]
    assert fake.snapshot() == engine_before
    assert fake.call_names(mutating_only=True) == []  # no target, no block, no lease
    assert fake.leases == {}
    assert db_rows(state_db) == db_before


@pytest.mark.parametrize("case", list(CASES))
def test_plan_refuses_the_same(cfg: Config, fake: FakeEngine, case: str) -> None:
    setup, message = CASES[case]
    name = setup(fake)
    with pytest.raises(DataStreamRefused) as caught:
        api.plan(cfg, name, RunOptions())
    assert message in caught.value.one_line()
    assert caught.value.exit_code == ExitCode.USAGE
    assert isinstance(caught.value.__cause__, Exception)  # the lookup that failed first
    assert cfg.repo().list() == [] and fake.call_names(mutating_only=True) == []


def test_the_refusal_says_what_the_stream_is(fake: FakeEngine) -> None:
    _alias_of_two(fake)
    use = fake.data_stream_use("logs")
    assert use == DataStreamUse(
        "alias",
        "logs",
        (STREAM, "logs-db"),
        (f".ds-{STREAM}-000001", ".ds-logs-db-000001"),
    )
    text = DataStreamRefused(use).one_line()
    assert "POST <stream>/_rollover" in text  # two streams: the operator picks one
    one = DataStreamRefused(DataStreamUse("data_stream", STREAM, (STREAM,), ()))
    assert f"POST {STREAM}/_rollover" in one.one_line()
    many = tuple(f".ds-{STREAM}-{n:06d}" for n in range(1, 6))
    listed = DataStreamRefused(DataStreamUse("data_stream", STREAM, (STREAM,), many))
    assert f"(backing indices .ds-{STREAM}-000001, .ds-{STREAM}-000002, " in listed.one_line()
    assert ".ds-logs-app-000003 and 2 more)" in listed.one_line()


def test_an_ordinary_alias_asks_nothing_of_data_streams(cfg: Config, fake: FakeEngine) -> None:
    fake.add_data_stream(STREAM, DOCS)  # a stream elsewhere in the cluster
    api.plan(cfg, ALIAS, RunOptions())
    assert "data_stream_use" not in fake.call_names()
    assert fake.call_names() == PLAN_CALLS[:-2]  # the plan of tests/test_runs.py, no lease


def test_other_lookup_failures_stay_as_they_were(cfg: Config, fake: FakeEngine) -> None:
    with pytest.raises(AliasNotFound):
        api.plan(cfg, "no-such-alias", RunOptions())
    fake.add_index("plain-index")
    with pytest.raises(NotAnAlias):
        api.plan(cfg, "plain-index", RunOptions())
    assert fake.call_names().count("data_stream_use") == 2  # asked, and it said none


def test_an_engine_that_cannot_say_keeps_the_first_error(cfg: Config, fake: FakeEngine) -> None:
    _stream(fake)
    fake.fail_always("data_stream_use", EngineError("security_exception: no", status=403))
    with pytest.raises(AliasNotFound):
        api.plan(cfg, STREAM, RunOptions())


# -- the adapters, over HTTP (tests/support/contract): the same answers as the fake's ------


@pytest.fixture(params=["elasticsearch", "opensearch"])
def server(request: pytest.FixtureRequest) -> Iterator[ContractServer]:
    fake = make_cluster(10)
    _stream(fake)
    fake.add_data_stream("logs-db", DOCS)
    if request.param == "elasticsearch":  # OpenSearch has no aliases over data streams
        fake.add_data_stream_alias("logs", [STREAM, "logs-db"])
    with ContractServer(fake, request.param) as srv:
        yield srv
    assert srv.problems == [], "the contract server met requests it cannot answer"


def test_the_adapters_tell_what_each_name_is(server: ContractServer) -> None:
    fake = server.fake
    with connect(server.url, **CLIENT) as engine:
        names = [STREAM, f".ds-{STREAM}-000001", "logs", ALIAS, SOURCE, "nothing-here"]
        for name in names:
            assert engine.data_stream_use(name) == fake.data_stream_use(name), name
        assert engine.data_stream_use(STREAM) == DataStreamUse(
            "data_stream", STREAM, (STREAM,), (f".ds-{STREAM}-000001", f".ds-{STREAM}-000002")
        )
        assert engine.data_stream_use(ALIAS) is None  # an alias of one index
    if server.flavor == "elasticsearch":
        assert fake.data_stream_use("logs") is not None  # and the adapter agreed
        assert "/_resolve/index/logs-app,logs-db" in server.paths("GET")  # its members


def test_a_run_on_a_stream_is_refused_over_http(server: ContractServer, state_db: str) -> None:
    fake = server.fake
    before = fake.snapshot()
    cfg = contract_config(server, state_db)
    for name in (STREAM, f".ds-{STREAM}-000002", "logs"):
        if name == "logs" and server.flavor == "opensearch":
            continue
        with pytest.raises(DataStreamRefused):
            api.start(cfg, name, RunOptions())
    assert fake.snapshot() == before and fake.leases == {} and cfg.repo().list() == []


def test_an_engine_without_the_resolve_api_says_none(server: ContractServer) -> None:
    def no_handler(call: Call) -> Answer:
        uri = "/" + "/".join(call.path)
        return 400, {"error": f"no handler found for uri [{uri}] and method [GET]", "status": 400}

    server._resolve_index = no_handler  # type: ignore[method-assign]
    with connect(server.url, **CLIENT) as engine:
        assert engine.data_stream_use(STREAM) is None
