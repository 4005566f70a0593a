"""On the real engine: a data stream given as ``--alias`` (its name, one of its backing
indices, an alias over data streams) is refused before anything is written: one line
naming what the name is and what to do, exit 2, and the stream, the cluster and the state
database as they were (no run, no lease, no new index), for ``start`` and ``--dry-run``.

Data streams need a composable index template with ``"data_stream": {}`` (OpenSearch has
them in core). OpenSearch refuses an alias on a data stream or on a backing index: there
the alias case is shown impossible by the engine's own refusal; where the engine accepts
such an alias (Elasticsearch 7.14+), the run is refused as for a data stream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.errors import EngineError, ExitCode

from .conftest import indices_under, raw, run_cli, unique_prefix

pytestmark = [pytest.mark.integration, pytest.mark.needs("data_streams")]


@dataclass
class Stream:
    prefix: str
    name: str
    backing: list[str]


def _backing(engine: ClientEngine, name: str) -> list[str]:
    body = raw(engine, "GET", f"/_data_stream/{name}")
    (stream,) = body["data_streams"]
    return [i["index_name"] for i in stream["indices"]]


@pytest.fixture
def stream(engine: ClientEngine) -> Iterator[Stream]:
    prefix = unique_prefix()
    name = f"{prefix}-logs"
    template = {
        "index_patterns": [f"{prefix}-logs*"],
        "data_stream": {},
        "priority": 500,
        "template": {"settings": {"index.number_of_replicas": 0}},
    }
    raw(engine, "PUT", f"/_index_template/{prefix}-tpl", template)
    try:
        raw(engine, "PUT", f"/_data_stream/{name}")
        for n in range(3):
            doc = {"@timestamp": f"2026-01-0{n + 1}T00:00:00Z", "message": f"m{n}"}
            raw(engine, "POST", f"/{name}/_doc", doc, refresh="true")
        raw(engine, "POST", f"/{name}/_rollover")  # two backing indices
        yield Stream(prefix, name, _backing(engine, name))
    finally:
        with contextlib.suppress(EngineError):
            raw(engine, "DELETE", f"/_data_stream/{name}")
        with contextlib.suppress(EngineError):
            raw(engine, "DELETE", f"/_index_template/{prefix}-tpl")


def _refused(engine: ClientEngine, engine_url: str, stream: Stream, name: str, tmp_path: Path,
             flag: str) -> str:  # fmt: skip
    state_db = tmp_path / "state.db"
    count = raw(engine, "GET", f"/{stream.name}/_count")["count"]
    result = run_cli(
        "start", "--alias", name, flag, "--verify",
        "--engine-url", engine_url, "--state-db", str(state_db),
    )  # fmt: skip
    assert result.returncode == ExitCode.USAGE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "roll it over" in lines[0] and "nothing was done" in lines[0]
    # nothing written: the stream, its backing indices and documents, no lease, no run
    assert _backing(engine, stream.name) == stream.backing
    assert raw(engine, "GET", f"/{stream.name}/_count")["count"] == count
    assert indices_under(engine, stream.prefix) == sorted(stream.backing)  # no target
    assert engine.get_lease(name) is None
    if state_db.exists():
        history = run_cli("history", "--json", "--state-db", str(state_db))
        assert history.returncode == 0 and history.stdout.strip() in ("[]", ""), history
    return lines[0]


@pytest.mark.parametrize("flag", ["--force", "--dry-run"])
def test_a_data_stream_name_is_refused(engine, engine_url, stream, tmp_path, flag):
    line = _refused(engine, engine_url, stream, stream.name, tmp_path, flag)
    assert f"'{stream.name}' is a data stream, not an alias (backing indices " in line
    assert stream.backing[0] in line
    assert f"POST {stream.name}/_rollover" in line


@pytest.mark.parametrize("flag", ["--force", "--dry-run"])
def test_a_backing_index_is_refused(engine, engine_url, stream, tmp_path, flag):
    backing = stream.backing[0]
    line = _refused(engine, engine_url, stream, backing, tmp_path, flag)
    assert f"'{backing}' is a backing index of data stream '{stream.name}', not an alias" in line


def test_an_alias_over_data_streams(engine, engine_url, stream, tmp_path):
    alias = f"{stream.prefix}-all"
    add = {"actions": [{"add": {"index": stream.name, "alias": alias}}]}
    try:
        raw(engine, "POST", "/_aliases", add)
    except EngineError as exc:  # OpenSearch: data streams take no alias at all
        assert engine.info().flavor == "opensearch", exc
        assert exc.status in (400, 404)
        backing = {"actions": [{"add": {"index": stream.backing[0], "alias": alias}}]}
        with pytest.raises(EngineError, match="don't support aliases"):
            raw(engine, "POST", "/_aliases", backing)
        assert engine.get_alias(alias) == {}
        return
    line = _refused(engine, engine_url, stream, alias, tmp_path, "--force")
    assert f"alias '{alias}' points at data stream(s) '{stream.name}', not at one index" in line


def test_the_adapter_tells_what_each_name_is(engine, stream):
    use = engine.data_stream_use(stream.name)
    assert use is not None and (use.kind, use.data_streams) == ("data_stream", (stream.name,))
    assert list(use.backing_indices) == stream.backing
    use = engine.data_stream_use(stream.backing[-1])
    assert use is not None and (use.kind, use.data_streams) == ("backing_index", (stream.name,))
    assert engine.data_stream_use(f"{stream.prefix}-nothing") is None
