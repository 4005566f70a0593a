"""Unit tests of the real-engine adapters: no engine needed (a closed port at most)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from reindex_fsm.engine.base import Engine, ReindexRequest
from reindex_fsm.engine.client import ClientEngine
from reindex_fsm.engine.connect import connect, detect_flavor, redact_url
from reindex_fsm.engine.elasticsearch import ElasticsearchEngine
from reindex_fsm.engine.opensearch import OpenSearchEngine
from reindex_fsm.engine.responses import describe_error, parse_task, parse_task_list
from reindex_fsm.engine.urls import parse_engine_url
from reindex_fsm.errors import (
    EngineError,
    EngineUnreachable,
    IndexNotFound,
    TaskNotFound,
    UnsupportedEngine,
    UsageError,
)

FAST = {"request_timeout": 0.5, "max_retries": 0}
ADAPTERS = [ElasticsearchEngine, OpenSearchEngine]


@pytest.fixture(scope="module")
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://elastic:s3cr%40t@127.0.0.1:{port}"


# -- GET / ----------------------------------------------------------------------------


def _opensearch_root(number: str) -> dict:
    return {
        "name": "node-1",
        "cluster_name": "search",
        "cluster_uuid": "abc",
        "version": {
            "distribution": "opensearch",
            "number": number,
            "build_type": "tar",
            "build_hash": "x",
            "lucene_version": "9.12.1",
            "minimum_wire_compatibility_version": "7.10.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    }


def _elasticsearch_root(number: str) -> dict:
    return {
        "name": "es01",
        "cluster_name": "docker-cluster",
        "cluster_uuid": "abc",
        "version": {
            "number": number,
            "build_flavor": "default",
            "build_type": "docker",
            "lucene_version": "9.12.0",
        },
        "tagline": "You Know, for Search",
    }


@pytest.mark.parametrize(
    ("body", "flavor", "version"),
    [
        (_opensearch_root("2.19.1"), "opensearch", "2.19.1"),
        (_opensearch_root("3.1.0"), "opensearch", "3.1.0"),
        (_elasticsearch_root("8.15.3"), "elasticsearch", "8.15.3"),
        (_elasticsearch_root("9.0.2"), "elasticsearch", "9.0.2"),
        (_elasticsearch_root("7.17.0"), "elasticsearch", "7.17.0"),
        (_elasticsearch_root("7.17.29"), "elasticsearch", "7.17.29"),
    ],
)
def test_detect_flavor_supported(body: dict, flavor: str, version: str) -> None:
    info = detect_flavor(body)
    assert (info.flavor, info.version, info.cluster_name) == (
        flavor,
        version,
        body["cluster_name"],
    )


def test_detect_flavor_serverless_elasticsearch_without_tagline() -> None:
    body = {"cluster_name": "x", "version": {"number": "8.11.0", "build_flavor": "serverless"}}
    assert detect_flavor(body).flavor == "elasticsearch"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_elasticsearch_root("7.16.3"), "Elasticsearch 7.16.3 is not supported"),
        (_elasticsearch_root("7.10.2"), "Elasticsearch 7.10.2 is not supported"),
        (_elasticsearch_root("6.8.23"), "Elasticsearch 6.8.23 is not supported"),
        (_opensearch_root("1.3.14"), "OpenSearch 1.3.14"),
        (_opensearch_root("7.10.2"), "OpenSearch 1.x"),  # 1.x in compatibility mode
        ({"hello": "world"}, "no version number"),
        ({"version": {"number": "5.0.0"}, "tagline": "Something else"}, "unrecognised"),
        ({"version": {"number": "2.0.0", "distribution": "other"}}, "unrecognised"),
        ("<html>proxy</html>", "not return a JSON object"),
        (None, "not return a JSON object"),
    ],
)
def test_detect_flavor_unsupported(body: object, needle: str) -> None:
    with pytest.raises(UnsupportedEngine) as caught:
        detect_flavor(body)
    assert needle in caught.value.message
    assert "Elasticsearch 7.17, 8.x or 9.x, or OpenSearch 2.x" in caught.value.one_line()


# -- URLs and credentials ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("http://user:pass@host:9200", "http://host:9200"),
        ("https://user:p%40ss@host:9200/prefix", "https://host:9200/prefix"),
        ("https://user:p@ss@host", "https://host"),  # unencoded @ in the password
        ("user:pass@host:9200", "host:9200"),
        ("http://host:9200", "http://host:9200"),
        ("http://apikeyonly@[::1]:9200", "http://[::1]:9200"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_parse_engine_url_uses_url_credentials_and_strips_them() -> None:
    cfg = parse_engine_url("https://elastic:p%40ss%2Fw@es.example:9243/base/")
    assert cfg.url == "https://es.example:9243/base"
    assert cfg.node_url == "https://es.example:9243/base"
    assert cfg.basic_auth == ("elastic", "p@ss/w")
    assert "p@ss" not in repr(cfg)


def test_parse_engine_url_defaults_and_explicit_credentials() -> None:
    cfg = parse_engine_url("localhost", username="u", password="pw")
    assert (cfg.url, cfg.node_url, cfg.basic_auth) == (
        "http://localhost",
        "http://localhost:80",
        ("u", "pw"),
    )
    assert parse_engine_url("https://h").node_url == "https://h:443"
    assert parse_engine_url("https://h").tls_options == {"verify_certs": True}
    assert parse_engine_url("http://h:9200", verify_certs=False).tls_options == {}
    assert parse_engine_url("http://[::1]:9200").node_url == "http://[::1]:9200"


@pytest.mark.parametrize("url", ["ftp://host:21", "http://u:pa/ss@host:9200", "http://host:port"])
def test_parse_engine_url_rejects_bad_urls_without_leaking(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_engine_url(url)
    assert "pa/ss" not in caught.value.one_line()


def test_api_key_and_password_together_are_refused() -> None:
    with pytest.raises(UsageError):
        OpenSearchEngine("http://u:p@localhost:9200", api_key="abc")


def test_config_redacts_its_secrets_as_given_and_percent_encoded() -> None:
    cfg = parse_engine_url("http://elastic:p%40ss%2Fword@h:9200")
    assert cfg.secrets() == ["p%40ss%2Fword", "p@ss/word"]  # longest first
    text = "auth failed for p@ss/word (sent as p%40ss%2Fword)"
    assert cfg.redact(text) == "auth failed for *** (sent as ***)"
    keyed = parse_engine_url("http://h:9200", api_key="c2VjcmV0LWtleQ==")
    assert keyed.redact("ApiKey c2VjcmV0LWtleQ== refused") == "ApiKey *** refused"
    assert "c2VjcmV0" not in repr(keyed)
    # A secret this short would mangle every message: left as it is.
    assert parse_engine_url("http://u:abc@h").redact("abc def") == "abc def"
    assert parse_engine_url("http://h").secrets() == []


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter_url_has_no_credentials(adapter: type[ClientEngine]) -> None:
    engine = adapter("http://elastic:hunter2@localhost:9200", **FAST)
    try:
        assert engine.url == "http://localhost:9200"
        assert "hunter2" not in repr(engine)
        assert isinstance(engine, Engine)
    finally:
        engine.close()


# -- unreachable engines ------------------------------------------------------------------


def test_connect_auto_closed_port_raises_unreachable_quickly(closed_port_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(EngineUnreachable) as caught:
        connect(closed_port_url, **FAST)
    assert time.monotonic() - started < 3
    err = caught.value
    assert err.url == redact_url(closed_port_url)
    assert "connection refused" in err.message
    text = f"{err.one_line()} {err.url}"
    assert "s3cr" not in text and "elastic:" not in text


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter_call_on_closed_port_raises_unreachable(
    adapter: type[ClientEngine], closed_port_url: str
) -> None:
    with adapter(closed_port_url, **FAST) as engine:  # built lazily: no request yet
        with pytest.raises(EngineUnreachable) as caught:
            engine.count("products")
        with pytest.raises(EngineUnreachable):
            engine.start_reindex(ReindexRequest("a", "b", opaque_id="reindex-fsm:r1"))
    assert caught.value.url == redact_url(closed_port_url)
    assert "s3cr" not in caught.value.one_line()
    assert isinstance(caught.value.__cause__, adapter.client_errors)


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
def test_connect_explicit_engine_is_lazy(engine: str, closed_port_url: str) -> None:
    adapter = connect(closed_port_url, engine, **FAST)
    try:
        assert adapter.flavor == engine
        with pytest.raises(EngineUnreachable):
            adapter.info()
    finally:
        adapter.close()


def test_connect_unknown_engine() -> None:
    with pytest.raises(UnsupportedEngine):
        connect("http://localhost:9200", "solr")


# -- error bodies --------------------------------------------------------------------------


def test_describe_error_shapes() -> None:
    body = {
        "error": {
            "root_cause": [],
            "type": "resource_already_exists_exception",
            "reason": "index [a/xyz] already exists",
            "index": "a",
        },
        "status": 400,
    }
    assert describe_error(body) == (
        "resource_already_exists_exception",
        "resource_already_exists_exception: index [a/xyz] already exists",
    )
    assert describe_error({"error": "alias [x] missing", "status": 404}) == (
        None,
        "alias [x] missing",
    )
    nested = {
        "type": "search_phase_execution_exception",
        "reason": "all shards failed",
        "caused_by": {"type": "too_many_clauses", "reason": "maxClauseCount\nis 1024"},
    }
    assert describe_error(nested)[1] == (
        "search_phase_execution_exception: all shards failed "
        "(caused by too_many_clauses: maxClauseCount is 1024)"
    )
    assert describe_error("<html>\n502 Bad Gateway</html>")[1] == "<html> 502 Bad Gateway</html>"
    assert describe_error(None, fallback="NotFoundError") == (None, "NotFoundError")


# -- Tasks API bodies ----------------------------------------------------------------------

TASK = "oTUltX4IQMOUUVeiohTt8A:12345"
HEADERS = {"X-Opaque-Id": "reindex-fsm:run-1"}


def _task(status: dict, **extra: object) -> dict:
    return {
        "node": "oTUltX4IQMOUUVeiohTt8A",
        "id": 12345,
        "type": "transport",
        "action": "indices:data/write/reindex",
        "status": status,
        "description": "reindex from [src] to [dst]",
        "start_time_in_millis": 1700000000000,
        "running_time_in_nanos": 2_500_000_000,
        "cancellable": True,
        "cancelled": False,
        "headers": HEADERS,
        **extra,
    }


_RUNNING_STATUS = {
    "total": 5000,
    "updated": 0,
    "created": 1200,
    "deleted": 0,
    "batches": 2,
    "version_conflicts": 3,
    "noops": 0,
    "retries": {"bulk": 0, "search": 0},
    "throttled_millis": 0,
    "requests_per_second": 50.0,
    "throttled_until_millis": 0,
}


def test_parse_running_task() -> None:
    status = parse_task({"completed": False, "task": _task(_RUNNING_STATUS)}, TASK)
    assert status.task_id == TASK
    assert not status.completed and not status.failed and not status.cancelled
    assert (status.total, status.created, status.version_conflicts) == (5000, 1200, 3)
    assert status.done_docs == 1203
    assert status.opaque_id == "reindex-fsm:run-1"
    assert status.description == "reindex from [src] to [dst]"
    assert status.running_time_s == pytest.approx(2.5)


def test_parse_completed_task_prefers_response_counts() -> None:
    body = {
        "completed": True,
        "task": _task(dict(_RUNNING_STATUS, created=4990)),
        "response": {
            "took": 4000,
            "timed_out": False,
            "total": 5000,
            "updated": 0,
            "created": 5000,
            "deleted": 0,
            "batches": 5,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled": "0s",
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until": "0s",
            "throttled_until_millis": 0,
            "failures": [],
        },
    }
    status = parse_task(body)
    assert status.task_id == TASK  # from task.node / task.id
    assert status.completed and not status.failed and not status.cancelled
    assert status.counts() == {
        "total": 5000,
        "created": 5000,
        "updated": 0,
        "deleted": 0,
        "version_conflicts": 0,
        "noops": 0,
        "failures": 0,
    }


def test_parse_completed_task_with_failures() -> None:
    failure = {
        "index": "dst",
        "id": "7",
        "cause": {"type": "version_conflict_engine_exception", "reason": "[7]: document exists"},
        "status": 409,
    }
    body = {
        "completed": True,
        "task": _task(_RUNNING_STATUS),
        "response": {"total": 10, "created": 9, "version_conflicts": 1, "failures": [failure]},
    }
    status = parse_task(body, TASK)
    assert status.failed and status.failures == (failure,)
    assert (status.created, status.version_conflicts, status.updated) == (9, 1, 0)


def test_parse_completed_task_with_error() -> None:
    body = {
        "completed": True,
        "task": _task(_RUNNING_STATUS),
        "error": {"type": "index_not_found_exception", "reason": "no such index [src]"},
    }
    status = parse_task(body, TASK)
    assert status.failed and status.error == body["error"]
    assert status.created == 1200  # counts from task.status when there is no response


def test_parse_cancelled_task() -> None:
    body = {
        "completed": True,
        "task": _task(dict(_RUNNING_STATUS, canceled="by user request"), cancelled=True),
        "response": {"total": 5000, "created": 1300, "canceled": "by user request", "failures": []},
    }
    status = parse_task(body, TASK)
    assert status.cancelled and status.completed and not status.failed
    assert status.created == 1300
    error_body = {
        "completed": True,
        "task": _task(_RUNNING_STATUS),
        "error": {"type": "task_cancelled_exception", "reason": "task cancelled"},
    }
    assert parse_task(error_body, TASK).cancelled


def _tasks_list() -> dict:
    parent = _task(_RUNNING_STATUS)
    child = _task(_RUNNING_STATUS, id=12346, parent_task_id=TASK)
    other = _task(
        _RUNNING_STATUS, id=20, start_time_in_millis=1, headers={"x-opaque-id": "reindex-fsm:run-2"}
    )
    anonymous = _task(_RUNNING_STATUS, id=30, headers={})
    return {
        "nodes": {
            "oTUltX4IQMOUUVeiohTt8A": {
                "name": "node-1",
                "tasks": {
                    TASK: parent,
                    "oTUltX4IQMOUUVeiohTt8A:12346": child,
                    "oTUltX4IQMOUUVeiohTt8A:20": other,
                },
            },
            "second": {"name": "node-2", "tasks": {"second:30": anonymous}},
        }
    }


def test_parse_task_list_parents_only_filtered_by_opaque_id() -> None:
    body = _tasks_list()
    everything = parse_task_list(body)
    assert [t.task_id for t in everything] == [
        "oTUltX4IQMOUUVeiohTt8A:20",  # oldest first
        TASK,
        "second:30",
    ]
    assert all(not t.completed for t in everything)
    mine = parse_task_list(body, "reindex-fsm:run-1")
    assert [(t.task_id, t.opaque_id, t.created) for t in mine] == [
        (TASK, "reindex-fsm:run-1", 1200)
    ]
    assert [t.task_id for t in parse_task_list(body, "reindex-fsm:run-2")] == [
        "oTUltX4IQMOUUVeiohTt8A:20"  # header name matched case-insensitively
    ]
    assert parse_task_list(body, "reindex-fsm:nobody") == []
    assert parse_task_list({"nodes": {}}) == []


def test_parse_task_list_node_failure_is_an_error() -> None:
    body = {
        "node_failures": [{"type": "failed_node_exception", "reason": "Failed node [x]"}],
        "nodes": {},
    }
    with pytest.raises(EngineError, match="failed_node_exception"):
        parse_task_list(body)


def _sliced_bodies() -> tuple[dict, dict]:
    """A running sliced reindex: one slice finished (counted by the parent), two running."""
    finished = dict(_RUNNING_STATUS, slice_id=0, total=1000, created=1000, version_conflicts=0)
    parent_status = dict(
        _RUNNING_STATUS,
        total=1000,
        created=1000,
        version_conflicts=0,
        slices=[finished, None, None],
    )
    parent = _task(parent_status)
    kids = {
        f"oTUltX4IQMOUUVeiohTt8A:{n}": _task(
            dict(_RUNNING_STATUS, slice_id=n - 12345, total=2000, created=100 * n - 1234500),
            id=n,
            parent_task_id=TASK,
        )
        for n in (12346, 12347)
    }
    listing = {"nodes": {"oTUltX4IQMOUUVeiohTt8A": {"tasks": {TASK: parent, **kids}}}}
    return {"completed": False, "task": parent}, listing


def test_sliced_parent_counts_include_running_slices() -> None:
    get_body, listing = _sliced_bodies()
    (listed,) = parse_task_list(listing, "reindex-fsm:run-1")
    assert (listed.task_id, listed.total, listed.created) == (TASK, 5000, 1300)
    assert listed.version_conflicts == 6  # 0 + 3 + 3
    status = parse_task(get_body, TASK, children=listing)
    assert (status.total, status.created) == (5000, 1300)
    assert parse_task(get_body, TASK).created == 1000  # without the children: finished only


# -- the wire: a stub HTTP server answering like the engines ---------------------------------


def _not_found_index(index: str) -> tuple[int, dict]:
    error = {
        "type": "index_not_found_exception",
        "reason": f"no such index [{index}]",
        "index": index,
        "resource.id": index,
    }
    return 404, {"error": {"root_cause": [error], **error}, "status": 404}


ROUTES: dict[tuple[str, str], tuple[int, object]] = {
    ("POST", "/_reindex"): (200, {"task": "n1:42"}),
    ("GET", "/_alias/missing"): (404, {"error": "alias [missing] missing", "status": 404}),
    ("GET", "/_alias/prod"): (
        200,
        {"idx-1": {"aliases": {"prod": {"is_write_index": True, "index_routing": "1"}}}},
    ),
    ("GET", "/nope/_count"): _not_found_index("nope"),
    ("GET", "/idx-1/_count"): (200, {"count": 7, "_shards": {}}),
    ("GET", "/prod/_settings/index.uuid"): (200, {"idx-1": {"settings": {}}}),
    ("GET", "/idx-1/_settings/index.uuid"): (200, {"idx-1": {"settings": {}}}),
    ("PUT", "/taken"): (
        400,
        {
            "error": {
                "type": "resource_already_exists_exception",
                "reason": "index [taken/abc] already exists",
            },
            "status": 400,
        },
    ),
    ("GET", "/_tasks/n1:1"): (
        404,
        {"error": {"type": "resource_not_found_exception", "reason": "task [n1:1] isn't running"}},
    ),
    ("POST", "/_tasks/n1:1/_cancel"): (
        404,
        {"error": {"type": "resource_not_found_exception", "reason": "task [n1:1] not found"}},
    ),
    ("GET", "/busy/_count"): (503, {"error": {"type": "cluster_block_exception", "reason": "x"}}),
    ("GET", "/secret/_count"): (
        401,
        {"error": {"type": "security_exception", "reason": "unable to authenticate"}},
    ),
}


class _Stub(BaseHTTPRequestHandler):
    server: _StubServer

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {
                "method": self.command,
                "path": url.path,
                "query": dict(parse_qsl(url.query)),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(raw) if raw else None,
            }
        )
        if url.path == "/":
            status, body = 200, self.server.root
        else:
            status, body = ROUTES.get((self.command, url.path), (500, {"error": "no route"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        if self.server.flavor == "elasticsearch":
            self.send_header("x-elastic-product", "Elasticsearch")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, flavor: str) -> None:
        super().__init__(("127.0.0.1", 0), _Stub)
        self.flavor = flavor
        self.root = (
            _elasticsearch_root("8.15.3")
            if flavor == "elasticsearch"
            else _opensearch_root("2.19.1")
        )
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://elastic:s3cr%40t@127.0.0.1:{self.server_address[1]}"


@pytest.fixture(params=["elasticsearch", "opensearch"])
def stub(request: pytest.FixtureRequest) -> Iterator[_StubServer]:
    server = _StubServer(request.param)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_connect_auto_picks_the_adapter(stub: _StubServer) -> None:
    with connect(stub.url, **FAST) as engine:
        assert engine.flavor == stub.flavor
        assert engine.info().version == stub.root["version"]["number"]
        assert "s3cr" not in engine.url


def test_start_reindex_on_the_wire(stub: _StubServer) -> None:
    request = ReindexRequest(
        "src", "dst", opaque_id="reindex-fsm:run-9", slices="auto", requests_per_second=50
    )
    with connect(stub.url, stub.flavor, **FAST) as engine:
        assert engine.start_reindex(request) == "n1:42"
    (sent,) = [r for r in stub.requests if r["path"] == "/_reindex"]
    assert sent["method"] == "POST"
    assert sent["query"] == {
        "wait_for_completion": "false",
        "slices": "auto",
        "requests_per_second": "50",
    }
    assert sent["headers"]["x-opaque-id"] == "reindex-fsm:run-9"
    assert sent["headers"]["authorization"].startswith("Basic ")  # from the URL
    assert sent["body"] == request.body()


def test_unthrottled_reindex_sends_no_requests_per_second(stub: _StubServer) -> None:
    with connect(stub.url, stub.flavor, **FAST) as engine:
        engine.start_reindex(ReindexRequest("src", "dst", opaque_id="reindex-fsm:r"))
    assert "requests_per_second" not in stub.requests[-1]["query"]


def test_answers_and_errors_are_translated(stub: _StubServer) -> None:
    with connect(stub.url, stub.flavor, **FAST) as engine:
        assert engine.get_alias("missing") == {}
        assert engine.get_alias("prod") == {
            "idx-1": {"prod": {"is_write_index": True, "index_routing": "1"}}
        }
        assert engine.count("idx-1") == 7
        assert engine.index_exists("idx-1") is True
        assert engine.index_exists("prod") is False  # an alias resolves to other names
        assert engine.get_task("n1:1") is None
        with pytest.raises(IndexNotFound) as not_found:
            engine.count("nope")
        assert not_found.value.index == "nope"
        with pytest.raises(TaskNotFound):
            engine.cancel_task("n1:1")
        with pytest.raises(EngineError) as refused:
            engine.create_index("taken", {"index.number_of_shards": 1}, {})
        assert refused.value.status == 400
        assert "resource_already_exists_exception: index [taken/abc] already exists" in str(
            refused.value
        )
        with pytest.raises(EngineUnreachable) as busy:
            engine.count("busy")
        assert busy.value.status == 503
        with pytest.raises(EngineError) as denied:
            engine.count("secret")
        assert denied.value.status == 401 and "credentials" in (denied.value.hint or "")
        assert "s3cr" not in denied.value.one_line()
    created = [r for r in stub.requests if r["path"] == "/taken"]
    assert created[0]["body"] == {"settings": {"index.number_of_shards": 1}, "mappings": {}}


def test_raw_request_sends_what_it_is_given_and_returns_the_answer(stub: _StubServer) -> None:
    with connect(stub.url, stub.flavor, **FAST) as engine:
        assert engine.request("get", "idx-1/_count", params={"q": "x"}) == {
            "count": 7,
            "_shards": {},
        }
        answer = engine.request(
            "POST",
            "/_reindex",
            body={"source": {"index": "a"}, "dest": {"index": "b"}},
            headers={"X-Opaque-Id": "bench-1"},
        )
        assert answer == {"task": "n1:42"}
    counted, reindexed = stub.requests[-2:]
    assert (counted["method"], counted["path"], counted["query"]) == (
        "GET",
        "/idx-1/_count",
        {"q": "x"},
    )
    assert counted["body"] is None
    assert reindexed["body"] == {"source": {"index": "a"}, "dest": {"index": "b"}}
    assert reindexed["headers"]["x-opaque-id"] == "bench-1"
    assert reindexed["headers"]["authorization"].startswith("Basic ")


def test_raw_request_errors_are_the_projects_errors(stub: _StubServer) -> None:
    with connect(stub.url, stub.flavor, **FAST) as engine:
        with pytest.raises(IndexNotFound) as missing:
            engine.request("GET", "/nope/_count")
        assert missing.value.index == "nope"
        with pytest.raises(EngineUnreachable) as busy:
            engine.request("GET", "/busy/_count")
        assert busy.value.status == 503
        with pytest.raises(EngineError) as denied:
            engine.request("GET", "/secret/_count")
        assert denied.value.status == 401
        assert "GET /secret/_count failed (HTTP 401)" in denied.value.one_line()
        assert "s3cr" not in denied.value.one_line()


def test_client_is_the_official_client(stub: _StubServer) -> None:
    from elasticsearch import Elasticsearch
    from opensearchpy import OpenSearch

    official = Elasticsearch if stub.flavor == "elasticsearch" else OpenSearch
    with connect(stub.url, stub.flavor, **FAST) as engine:
        assert isinstance(engine.client, official)
        assert engine.client.info()["version"]["number"] == stub.root["version"]["number"]
