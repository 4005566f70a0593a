"""Unit tests of the reading of engine answers (reindex_fsm.engine.responses): pure
functions, no engine."""

from __future__ import annotations

from typing import Any

import pytest

from reindex_fsm.engine.base import IndexStatus, IndexSummary, NodeDisk
from reindex_fsm.engine.responses import (
    error_from_answer,
    parse_index_status,
    parse_index_summaries,
    parse_max_seq_nos,
    parse_mget,
    parse_node_disks,
    raise_task_action_failure,
)
from reindex_fsm.errors import EngineError, EngineUnreachable, IndexNotFound, TaskNotFound


def _redact(text: str) -> str:
    return text.replace("hunter2", "***")


def _error(status: int | None, body: object, fallback: str = "ApiError") -> Exception:
    return error_from_answer(
        status, body, fallback, what="GET /x", url="http://h:9200", redact=_redact
    )


def test_error_from_answer_by_status_and_type() -> None:
    missing = _error(404, {"error": {"type": "index_not_found_exception", "index": "idx"}})
    assert isinstance(missing, IndexNotFound) and missing.index == "idx"
    by_resource = _error(404, {"error": {"type": "index_not_found_exception", "resource.id": "r"}})
    assert isinstance(by_resource, IndexNotFound) and by_resource.index == "r"

    gateway = _error(502, {"error": {"type": "x", "reason": "bad gateway"}})
    assert isinstance(gateway, EngineUnreachable) and gateway.status == 502
    assert "HTTP 502: x: bad gateway" in gateway.one_line()

    denied = _error(401, {"error": {"type": "security_exception", "reason": "user hunter2"}})
    assert type(denied) is EngineError and denied.status == 401
    assert "credentials" in (denied.hint or "")
    assert denied.one_line().startswith("GET /x failed (HTTP 401): security_exception: user ***")

    plain = _error(400, None, fallback="no body")
    assert type(plain) is EngineError and plain.hint is None
    assert "GET /x failed (HTTP 400): no body" in plain.one_line()
    # A 404 that is not about an index (an unknown task, a missing document) stays an error.
    other = _error(404, {"error": {"type": "resource_not_found_exception", "reason": "gone"}})
    assert type(other) is EngineError and other.status == 404


def test_task_action_failures() -> None:
    raise_task_action_failure({"nodes": {}}, "n1:1", "POST /x", _redact)  # none: no error
    raise_task_action_failure("not a body", "n1:1", "POST /x", _redact)
    for cause in ("resource_not_found_exception", "no_such_node_exception"):
        body = {"node_failures": [{"type": "failed_node_exception", "caused_by": {"type": cause}}]}
        with pytest.raises(TaskNotFound):
            raise_task_action_failure(body, "n1:1", "POST /x", _redact)
    body = {"task_failures": [{"type": "illegal_state", "reason": "hunter2 said no"}]}
    with pytest.raises(EngineError) as failed:
        raise_task_action_failure(body, "n1:1", "POST /x", _redact)
    assert failed.value.one_line().startswith("POST /x failed: illegal_state: *** said no")


def test_parse_index_status() -> None:
    rows = [
        {"index": "idx-10", "status": "open", "health": "green", "pri.store.size": "1"},
        {"index": "idx", "status": "open", "health": "yellow", "pri.store.size": "2048"},
    ]
    assert parse_index_status(rows, "idx") == IndexStatus("idx", "open", "yellow", 2048)
    closed = [{"index": "idx", "status": "close", "health": None, "pri.store.size": None}]
    assert parse_index_status(closed, "idx") == IndexStatus("idx", "close", None, None)
    with pytest.raises(IndexNotFound):
        parse_index_status(rows, "other")
    with pytest.raises(IndexNotFound):
        parse_index_status(None, "idx")


def test_parse_node_disks_keeps_data_nodes_only() -> None:
    body = {
        "nodes": {
            "a": {
                "name": "hot-1",
                "roles": ["data_hot", "ingest"],
                "fs": {"total": {"total_in_bytes": 100, "available_in_bytes": 40}},
            },
            "b": {"name": "master-1", "roles": ["master"], "fs": {"total": {}}},
            "c": {"roles": ["data"], "fs": {}},
        }
    }
    assert parse_node_disks(body) == [NodeDisk("hot-1", 100, 40), NodeDisk("c", 0, 0)]
    assert parse_node_disks({}) == []


def test_parse_index_summaries_oldest_first_with_aliases_and_meta() -> None:
    rows = [
        {"index": "b", "status": "open", "creation.date": "20"},
        {"index": "a", "status": "close", "creation.date": "10"},
    ]
    aliases: dict[str, Any] = {"b": {"aliases": {"prod": {}, "old": {}}}}
    mappings = {"b": {"mappings": {"_meta": {"reindex_fsm": {"run_id": "r1"}}}}}
    assert parse_index_summaries(rows, aliases, mappings) == [
        IndexSummary("a", 10, open=False),
        IndexSummary(
            "b", 20, open=True, aliases=("old", "prod"), meta={"reindex_fsm": {"run_id": "r1"}}
        ),
    ]


def test_parse_max_seq_nos_primaries_by_shard_number() -> None:
    body = {
        "indices": {
            "idx": {
                "shards": {
                    "10": [{"routing": {"primary": True}, "seq_no": {"max_seq_no": 5}}],
                    "2": [
                        {"routing": {"primary": False}, "seq_no": {"max_seq_no": 99}},
                        {"routing": {"primary": True}, "seq_no": {"max_seq_no": -1}},
                    ],
                }
            }
        }
    }
    assert parse_max_seq_nos(body, "idx") == {"2": -1, "10": 5}
    assert list(parse_max_seq_nos(body, "idx")) == ["2", "10"]
    with pytest.raises(IndexNotFound):
        parse_max_seq_nos(body, "alias")


def test_parse_mget() -> None:
    body = {
        "docs": [
            {"_id": "1", "found": True, "_source": {"x": 1}},
            {"_id": "2", "found": False},
        ]
    }
    assert parse_mget(body, "idx", ["1", "2", "1"], "POST /idx/_mget", _redact) == {
        "1": {"x": 1},
        "2": None,
    }
    with pytest.raises(EngineError, match="answered for fewer documents"):
        parse_mget(body, "idx", ["1", "2", "3"], "POST /idx/_mget", _redact)
    shard = {"docs": [{"_id": "1", "error": {"type": "no_shard_available", "reason": "hunter2"}}]}
    with pytest.raises(EngineError) as failed:
        parse_mget(shard, "idx", ["1"], "POST /idx/_mget", _redact)
    assert "POST /idx/_mget failed for 1: no_shard_available: ***" in failed.value.one_line()
    gone = {"docs": [{"_id": "1", "error": {"type": "index_not_found_exception"}}]}
    with pytest.raises(IndexNotFound):
        parse_mget(gone, "idx", ["1"], "POST /idx/_mget", _redact)
