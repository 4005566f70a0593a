"""The contract server's HTTP plumbing: the server (a FakeEngine answering as one
flavor), the routing table made of every API family's routes, the request handler that
turns the fake's errors into the engines' error answers."""

from __future__ import annotations

import itertools
import json
import threading
import traceback
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from reindex_fsm.errors import EngineError, EngineUnreachable
from reindex_fsm.testing.fake import FakeEngine

from .aliases import AliasApi
from .cluster import ClusterApi
from .data_streams import DataStreamApi
from .documents import DocumentApi
from .indices import IndexApi
from .lease import LeaseApi
from .lifecycle import LifecycleApi
from .reindex import ReindexApi
from .search import SearchApi, _Scroll
from .security import SecurityApi
from .tasks import TaskApi
from .templates import TemplateApi
from .wire import (
    Answer,
    ApiError,
    BadRequest,
    Call,
    Json,
    Request,
    Route,
    Unsupported,
    from_fake_error,
)

FLAVORS = ("elasticsearch", "opensearch")
# Each flavor's emulated version; "elasticsearch-9.5" answers as Elasticsearch 9.5, with the
# reindex management API and tasks that relocate (ContractServer(..., version=...)).
VERSIONS = {"elasticsearch": "8.15.3", "opensearch": "2.19.1", "elasticsearch-9.5": "9.5.0"}
ES_7_17 = "7.17.29"  # the oldest Elasticsearch supported (``version=ES_7_17``)
_ES_MIMETYPE = "application/vnd.elasticsearch+json"


class ContractServer(
    ThreadingHTTPServer,
    LeaseApi,
    ClusterApi,
    IndexApi,
    AliasApi,
    DocumentApi,
    SearchApi,
    ReindexApi,
    TaskApi,
    SecurityApi,
    DataStreamApi,
    LifecycleApi,
    TemplateApi,
):
    """A FakeEngine answering HTTP as ``flavor``. Use as a context manager."""

    daemon_threads = True

    def __init__(
        self,
        fake: FakeEngine,
        flavor: Literal["elasticsearch", "opensearch"],
        *,
        version: str | None = None,
        task_not_found: Literal["node_failures", "404"] = "node_failures",
        id_fielddata: bool | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}")
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.flavor = flavor
        self.version = version or VERSIONS[flavor]
        self.task_not_found = task_not_found
        # Sorting on _id: OpenSearch allows it, Elasticsearch 8 not by default.
        self.id_fielddata = flavor == "opensearch" if id_fielddata is None else id_fielddata
        self.cluster_name = fake._info.cluster_name  # what fake.info() says, unrecorded
        self.requests: list[Request] = []
        self.problems: list[str] = []
        self.lock = threading.Lock()
        self._scrolls: dict[str, _Scroll] = {}
        self._pit_index: dict[str, str] = {}  # the fake's PIT ID -> the index it is on
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        if flavor == "elasticsearch":  # ES 8 forbids writes to the .tasks system index
            fake.task_results_deletable = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ContractServer:
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.01,), name="contract-server", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (with ``method`` only when given)."""
        return [r.path for r in self.requests if method is None or r.method == method]

    # -- dispatching ----------------------------------------------------------------------

    def answer(self, call: Call) -> Answer:
        """The status and body for one request; raises ApiError or the fake's errors."""
        for method, pattern, handler in self._routes():
            params = _match(pattern, call.path)
            if call.method in method.split("|") and params is not None:
                call.params = params
                return handler(call)
        raise Unsupported(f"no route for {call.method} /{'/'.join(call.path)}")

    def _routes(self) -> list[Route]:
        """Every family's routes, the first match wins: the lease index's routes name an
        index, so they go before the generic ``{index}`` routes. Made per request, so a
        test may replace a handler on the instance."""
        return [
            *self.lease_routes(),
            *self.lifecycle_routes(),
            *self.search_routes(),
            *self.cluster_routes(),
            *self.alias_routes(),
            *self.index_routes(),
            *self.document_routes(),
            *self.reindex_routes(),
            *self.task_routes(),
            *self.security_routes(),
            *self.data_stream_routes(),
            *self.template_routes(),
        ]


def _match(pattern: tuple[str, ...], path: tuple[str, ...]) -> dict[str, str] | None:
    """``{placeholder: value}`` when ``path`` fits ``pattern``; ``{index}`` never takes
    a name starting with ``_`` (those are APIs)."""
    if len(pattern) != len(path):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, path, strict=True):
        if want.startswith("{"):
            if want == "{index}" and got.startswith("_"):
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class _Handler(BaseHTTPRequestHandler):
    server: ContractServer

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = tuple(unquote(p) for p in url.path.split("/") if p)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        is_bulk = path[-1:] == ("_bulk",)
        server = self.server
        try:
            body = json.loads(raw) if raw and not is_bulk else None
        except ValueError:
            body = None
        server.requests.append(Request(self.command, url.path, query, headers, body))
        call = Call(self.command, path, query, body, headers, raw)
        try:
            with server.lock:
                status, answer = server.answer(call)
        except EngineUnreachable:
            self.close_connection = True  # no answer at all: the client sees a dead server
            return
        except (Unsupported, BadRequest) as exc:
            server.problems.append(f"{self.command} {self.path}: {exc}")
            status, answer = exc.status, exc.body()
        except ApiError as exc:
            status, answer = exc.status, exc.body()
        except EngineError as exc:
            error = from_fake_error(exc)
            status, answer = error.status, error.body()
        except BaseException as exc:  # a bug in the server, the fake or the tool
            server.problems.append(
                f"{self.command} {self.path}: {''.join(traceback.format_exception(exc))}"
            )
            error = ApiError(500, "exception", f"{type(exc).__name__}: {exc}")
            status, answer = error.status, error.body()
        self._reply(status, answer, headers)

    def _reply(self, status: int, answer: Json, request_headers: Mapping[str, str]) -> None:
        data = b"" if self.command == "HEAD" else json.dumps(answer).encode()
        mimetype = "application/json"
        if self.server.flavor == "elasticsearch" and request_headers.get("accept", "").startswith(
            _ES_MIMETYPE
        ):
            mimetype = f"{_ES_MIMETYPE};compatible-with=8"
        if self.server.version.startswith("7."):  # 7.17: plain JSON, whatever was asked for
            mimetype = "application/json"
        self.send_response(status)
        self.send_header("content-type", mimetype)
        self.send_header("content-length", str(len(data)))
        if self.server.flavor == "elasticsearch":
            self.send_header("x-elastic-product", "Elasticsearch")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass
