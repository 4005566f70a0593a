"""A FakeEngine behind the REST API the real adapters speak, for contract tests.

:class:`ContractServer` is an in-process HTTP server (127.0.0.1, a free port) that
answers as Elasticsearch 8.x (with the ``X-Elastic-Product: Elasticsearch`` header the
official client checks) or as OpenSearch 2.19, and turns every request the adapters of
:mod:`reindex_fsm.engine` make into calls on one :class:`FakeEngine`:

==========================================  ============================================
request                                     FakeEngine
==========================================  ============================================
GET /                                       info (the body is the flavor's own)
GET _alias/{name}                           get_alias (404 "alias [x] missing" if none)
GET {index}/_alias                          get_index_aliases
GET {index}/_settings[/{name}]              get_index, or index_exists with a name filter
GET {index}/_mapping                        (read from the fake's state, not recorded)
PUT {index}, PUT {index}/_settings          create_index, put_settings
PUT {index}/_block/write                    add_write_block
PUT {index}/_settings {blocks.write: null}  remove_write_block
POST {index}/_refresh, GET {index}/_count   refresh, count
POST _aliases                               update_aliases
GET _cluster/health[/{index}]               cluster_health
DELETE {index}                              delete_index
POST _reindex?wait_for_completion=false     start_reindex (X-Opaque-Id read from headers)
GET _tasks/{id}                             get_task (the task progresses as polled)
GET _tasks?actions=*reindex&detailed=true   list_reindex_tasks
POST _tasks/{id}/_cancel                    cancel_task
POST _reindex/{id}/_rethrottle              rethrottle
POST [{index}/]_bulk                        bulk (one fake call per item)
{index}/_search?scroll, _search/scroll      scan (recorded once; pages served from a
                                            scroll context), DELETE _search/scroll
POST {index}/_search (no scroll)            search (match_all, ids, function_score with
                                            random_score; the sample of a verify)
ES: POST {index}/_pit?keep_alive=           open_pit, answering {"id"}; a fake without
OS: POST {index}/_search/point_in_time      PIT (open_pit None) answers 400 "no handler
                                            found", as an engine without the API does
POST _search {"pit", "sort", ...}           search with a point in time: ``pit_id`` in the
                                            answer; 404 search_context_missing_exception
                                            (in a search_phase_execution_exception) for a
                                            closed or unknown PIT
ES: DELETE _pit {"id": str}                 close_pit, {"succeeded", "num_freed"}
OS: DELETE _search/point_in_time            close_pit, {"pits": [{"successful", "pit_id"}]}
    {"pit_id": [str, ...]}
GET _cat/plugins?format=json                plugins, rows of {name, component, version}
POST {index}/_mget {"docs": [...]}          mget (found, _source unless asked false;
                                            routing passed on; a missing index: 200 with
                                            a per-document index_not_found_exception)
reindex-fsm-leases: GET _doc/{id},          get_lease, put_lease (create, or if_seq_no +
PUT _create/{id}, PUT _doc/{id}?if_seq_no,  if_primary_term; a 409 version conflict),
DELETE _doc/{id}?if_seq_no                  delete_lease; the index's own GET _settings
                                            and PUT (hidden, required) are answered
                                            from the fake's state, unrecorded
GET _cat/indices/{index}?format=json        index_status (open/close, pri.store.size)
GET _nodes/stats/fs                         data_node_disks (plus a node without the data
                                            role, which the adapter must leave out)
GET _cluster/settings?include_defaults=     disk_watermarks: the fake's transient,
  true&filter_path=*.<prefix>               persistent and default layers, nested
ES: POST _security/user/_has_privileges     check_privileges; security off: the 500
                                            "Security must be explicitly enabled"
OS: GET _plugins/_security/authinfo         (unrecorded) only with the opensearch-security
                                            plugin in the fake's plugin list
GET _ingest/pipeline/{name}                 pipeline_exists ({} and 404 when missing)
GET _cat/indices/{pattern}?format=json,     describe_indices (one call; the _alias and
  {pattern}/_alias, {pattern}/_mapping      _mapping reads that follow are not recorded)
DELETE _tasks/{id}                          405: OpenSearch 2.19 has no such API (3.9 has)
DELETE .tasks/_doc/{id}                     delete_task_result; Elasticsearch refuses
                                            (403: .tasks is a restricted system index)
GET {index}/_stats/docs?level=shards        max_seq_nos (a primary and a lagging replica
                                            copy of each shard)
==========================================  ============================================

Each flavor has only its own PIT endpoints (the other flavor's path has no route), and
sorts as it does: ``_shard_doc`` only with a PIT and only on Elasticsearch (OpenSearch
2.19 has no mapping for it), an implicit ``_shard_doc`` tiebreaker at the end of every
Elasticsearch PIT search, and ``_id`` refused on Elasticsearch 8 (no fielddata on _id;
``id_fielddata=True`` is the cluster setting ``indices.id_field_data.enabled: true``).
PIT IDs are opaque base64 strings wrapping the fake's own. A request a real engine
refuses as malformed (a close-PIT body with the other flavor's key, say) is answered
with the engine's refusal and recorded in :attr:`ContractServer.problems` too: the
adapters must never send one, and some of their callers ignore errors (closing a PIT).

Like the real engines, names that are aliases are resolved to their indices where a read
API allows it (``_alias``, ``_settings``, ``_mapping``, ``_count``, ``_refresh``,
``_search``), and settings are stored and answered as flat ``index.*`` keys with string
values. FakeEngine errors become the engines' error bodies: ``IndexNotFound`` is a 404
``index_not_found_exception``, an ``EngineError("type_exception: reason", status=N)``
is an N with that type, an unknown task is a 404 ``resource_not_found_exception``
(for cancel/rethrottle, by default, a 200 with ``node_failures`` as the engines answer).
An ``EngineUnreachable`` from the fake (``refuse_connections`` or ``fail_on``) closes the
connection without an answer. Anything the server does not implement, and any other
exception, is answered with an error and recorded in :attr:`ContractServer.problems`.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import itertools
import json
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from reindex_fsm.engine.base import LEASE_INDEX, ReindexRequest
from reindex_fsm.errors import EngineError, EngineUnreachable, IndexNotFound
from reindex_fsm.testing.fake import FakeEngine, FakeTask

FLAVORS = ("elasticsearch", "opensearch")
VERSIONS = {"elasticsearch": "8.15.3", "opensearch": "2.19.1"}
REINDEX_ACTION = "indices:data/write/reindex"
START_MILLIS = 1_700_000_000_000
_ES_MIMETYPE = "application/vnd.elasticsearch+json"
_TYPED_MESSAGE = re.compile(r"^([a-z_]+_exception): (.*)$", re.S)
_DEFAULT_TYPES = {
    400: "illegal_argument_exception",
    404: "resource_not_found_exception",
    409: "version_conflict_engine_exception",
}
_HEALTH_RANK = {"red": 0, "yellow": 1, "green": 2}

Json = Any
Answer = tuple[int, Json]


class ApiError(Exception):
    """An error answer of the engine: an HTTP status and the error object."""

    def __init__(
        self,
        status: int,
        etype: str,
        reason: str,
        *,
        root_cause: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {etype}: {reason}")
        self.status = status
        self.error = {"type": etype, "reason": reason, **extra}
        self.root_cause = root_cause

    def body(self) -> dict[str, Any]:
        root_cause = self.root_cause or [dict(self.error)]
        return {"error": {"root_cause": root_cause, **self.error}, "status": self.status}


def _nest(into: dict[str, Any], prefix: str, key: str, value: Any) -> None:
    """Put flat setting ``key`` into nested ``into`` as the engines' Settings do: where a
    key is both a value and a prefix ("watermark.low", "watermark.low.max_headroom"), the
    longer one stays dotted at the level of the value ("low.max_headroom")."""
    head, dot, rest = key.partition(".")
    if not dot:
        inner = into.get(prefix + head)
        if isinstance(inner, dict):
            for sub, sub_value in inner.items():
                into[f"{prefix}{head}.{sub}"] = sub_value
        into[prefix + head] = value
        return
    existing = into.get(prefix + head)
    if existing is None:
        into[prefix + head] = {}
        _nest(into[prefix + head], "", rest, value)
    elif isinstance(existing, dict):
        _nest(existing, "", rest, value)
    else:
        _nest(into, f"{prefix}{head}.", rest, value)


class Unsupported(ApiError):
    """A request the contract server does not implement (recorded as a problem)."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, "illegal_argument_exception", f"contract server: {reason}")


class BadRequest(ApiError):
    """A request a real engine refuses as malformed: answered as the engine would, and
    recorded as a problem (the adapters must never send one)."""


def search_phase_error(status: int, etype: str, reason: str, index: str | None = None) -> ApiError:
    """A search failing on its shard: how the engines wrap a shard-level error."""
    cause = {"type": etype, "reason": reason}
    return ApiError(
        status,
        "search_phase_execution_exception",
        "all shards failed",
        root_cause=[dict(cause)],
        phase="query",
        grouped=True,
        failed_shards=[{"shard": 0, "index": index, "node": "fake-node", "reason": dict(cause)}],
        caused_by=dict(cause),
    )


def index_not_found(index: str) -> ApiError:
    return ApiError(
        404,
        "index_not_found_exception",
        f"no such index [{index}]",
        **{"resource.type": "index_or_alias", "resource.id": index, "index_uuid": "_na_"},
        index=index,
    )


def from_fake_error(exc: EngineError) -> ApiError:
    """The error answer a real engine gives where the FakeEngine raises ``exc``."""
    if isinstance(exc, IndexNotFound):
        return index_not_found(exc.index)
    status = exc.status or 500
    match = _TYPED_MESSAGE.match(exc.message)
    if match:
        return ApiError(status, match[1], match[2])
    return ApiError(status, _DEFAULT_TYPES.get(status, "exception"), exc.message)


# -- settings ---------------------------------------------------------------------------


def _setting_value(value: Any) -> Any:
    """A setting value as the engines store it: a string (lists of strings stay lists)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [_setting_value(v) for v in value]
    return str(value)


def flat_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or flat settings as flat ``index.*`` keys with engine (string) values."""
    if set(settings) == {"settings"} and isinstance(settings["settings"], Mapping):
        settings = settings["settings"]
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            key = prefix if prefix.startswith("index.") else f"index.{prefix}"
            out[key] = _setting_value(value)

    walk("", settings)
    return out


def nested_settings(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return out


# -- queries (scan) -----------------------------------------------------------------------


def _field(source: Mapping[str, Any], path: str) -> Any:
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def matches(query: Mapping[str, Any] | None, doc_id: str, source: Mapping[str, Any]) -> bool:
    """match_all, ids and term queries; anything else is :class:`Unsupported`."""
    if not query:
        return True
    if len(query) != 1:
        raise Unsupported(f"query {query!r}")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "ids":
        return doc_id in spec.get("values", ())
    if kind == "term":
        ((name, wanted),) = spec.items()
        if isinstance(wanted, Mapping):
            wanted = wanted.get("value")
        value = _field(source, name)
        return wanted in value if isinstance(value, list) else value == wanted
    raise Unsupported(f"query {kind!r}")


# -- the server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any = None


@dataclass
class _Scroll:
    hits: list[dict[str, Any]]  # still to serve
    size: int
    total: int


@dataclass
class Call:
    method: str
    path: tuple[str, ...]
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    raw: bytes = b""
    params: dict[str, str] = field(default_factory=dict)


class ContractServer(ThreadingHTTPServer):
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

    def _routes(self) -> list[tuple[str, tuple[str, ...], Callable[[Call], Answer]]]:
        if self.flavor == "elasticsearch":
            pit = [
                ("POST", ("{index}", "_pit"), self._open_pit),
                ("DELETE", ("_pit",), self._close_pit),
            ]
        else:
            pit = [
                ("POST", ("{index}", "_search", "point_in_time"), self._open_pit),
                ("DELETE", ("_search", "point_in_time"), self._close_pit),
            ]
        return [
            *pit,
            *self._lease_and_preflight_routes(),
            ("GET|POST", ("_search",), self._search),
            ("GET", ("_cat", "plugins"), self._cat_plugins),
            ("GET|HEAD", (), self._root),
            ("GET", ("_alias", "{name}"), self._get_alias),
            ("GET", ("{index}", "_alias"), self._get_index_aliases),
            ("GET", ("{index}", "_settings"), self._get_settings),
            ("GET", ("{index}", "_settings", "{name}"), self._get_settings),
            ("PUT", ("{index}", "_settings"), self._put_settings),
            ("GET", ("{index}", "_mapping"), self._get_mapping),
            ("PUT", ("{index}",), self._create_index),
            ("DELETE", ("{index}",), self._delete_index),
            ("POST", ("{index}", "_refresh"), self._refresh),
            ("GET|POST", ("{index}", "_count"), self._count),
            ("POST", ("_aliases",), self._update_aliases),
            ("GET", ("_cluster", "health"), self._health),
            ("GET", ("_cluster", "health", "{index}"), self._health),
            ("POST", ("_reindex",), self._start_reindex),
            ("GET", ("_tasks",), self._list_tasks),
            ("GET", ("_tasks", "{task}"), self._get_task),
            ("POST", ("_tasks", "{task}", "_cancel"), self._cancel_task),
            ("POST", ("_reindex", "{task}", "_rethrottle"), self._rethrottle),
            ("POST|PUT", ("_bulk",), self._bulk),
            ("POST|PUT", ("{index}", "_bulk"), self._bulk),
            ("GET|POST", ("{index}", "_search"), self._search),
            ("GET|POST", ("_search", "scroll"), self._scroll),
            ("GET|POST", ("_search", "scroll", "{scroll_id}"), self._scroll),
            ("DELETE", ("_search", "scroll"), self._clear_scroll),
            # -- write policy (issue 5) --
            ("PUT", ("{index}", "_block", "{block}"), self._add_block),
            # -- deep verification (issue 5) --
            ("GET|POST", ("{index}", "_mget"), self._mget),
            *self._issue5_routes(),
        ]

    # -- helpers --------------------------------------------------------------------------

    def _alias_targets(self, name: str, exc: IndexNotFound) -> list[str]:
        """The indices alias ``name`` is on; ``exc`` again when it is not an alias."""
        found = sorted(i for i, idx in self.fake.indices.items() if name in idx.aliases)
        if not found:
            raise exc
        return found

    def _body(self, call: Call) -> dict[str, Any]:
        if call.body is None:
            return {}
        if not isinstance(call.body, Mapping):
            raise ApiError(400, "parse_exception", "request body must be a JSON object")
        return dict(call.body)

    # -- GET / ----------------------------------------------------------------------------

    def _root(self, call: Call) -> Answer:
        info = self.fake.info()
        cluster_name = info.cluster_name
        if self.flavor == "elasticsearch":
            version = {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2024-10-01T00:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            }
            tagline = "You Know, for Search"
        else:
            version = {
                "distribution": "opensearch",
                "number": self.version,
                "build_type": "tar",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2025-03-01T00:00:00.000000000Z",
                "build_snapshot": False,
                "lucene_version": "9.12.1",
                "minimum_wire_compatibility_version": "7.10.0",
                "minimum_index_compatibility_version": "7.0.0",
            }
            tagline = "The OpenSearch Project: https://opensearch.org/"
        return 200, {
            "name": "fake-node",
            "cluster_name": cluster_name,
            "cluster_uuid": info.cluster_uuid or "_na_",
            "version": version,
            "tagline": tagline,
        }

    # -- aliases and indices --------------------------------------------------------------

    def _get_alias(self, call: Call) -> Answer:
        name = call.params["name"]
        found = self.fake.get_alias(name)
        if not found:
            return 404, {"error": f"alias [{name}] missing", "status": 404}
        return 200, {index: {"aliases": aliases} for index, aliases in found.items()}

    def _get_index_aliases(self, call: Call) -> Answer:
        index = call.params["index"]
        matching = self._matching(index)
        if matching is not None:
            return 200, {
                i: {"aliases": copy.deepcopy(self.fake.indices[i].aliases)} for i in matching
            }
        try:
            return 200, {index: {"aliases": self.fake.get_index_aliases(index)}}
        except IndexNotFound as exc:  # an alias: the aliases of the indices it is on
            return 200, {
                i: {"aliases": copy.deepcopy(self.fake.indices[i].aliases)}
                for i in self._alias_targets(index, exc)
            }

    def _get_settings(self, call: Call) -> Answer:
        index, name = call.params["index"], call.params.get("name")
        if name is None:
            try:
                per_index = {index: self.fake.get_index(index).settings}
            except IndexNotFound as exc:
                per_index = {
                    i: copy.deepcopy(self.fake.indices[i].settings)
                    for i in self._alias_targets(index, exc)
                }
        else:
            concrete = (
                [index]
                if self.fake.index_exists(index)
                else self._alias_targets(index, IndexNotFound(index))
            )
            patterns = name.split(",")
            per_index = {
                i: {
                    k: copy.deepcopy(v)
                    for k, v in self.fake.indices[i].settings.items()
                    if any(fnmatch.fnmatchcase(k, p) for p in patterns)
                }
                for i in concrete
            }
        flat = call.query.get("flat_settings") == "true"
        return 200, {
            i: {"settings": settings if flat else nested_settings(settings)}
            for i, settings in per_index.items()
        }

    def _get_mapping(self, call: Call) -> Answer:
        index = call.params["index"]
        concrete = self._matching(index)
        if concrete is None:
            concrete = (
                [index]
                if index in self.fake.indices
                else self._alias_targets(index, IndexNotFound(index))
            )
        return 200, {
            i: {"mappings": copy.deepcopy(self.fake.indices[i].mappings)} for i in concrete
        }

    def _create_index(self, call: Call) -> Answer:
        index = call.params["index"]
        body = self._body(call)
        settings = {
            k: v for k, v in flat_settings(body.get("settings") or {}).items() if v is not None
        }
        self.fake.create_index(index, settings, dict(body.get("mappings") or {}))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": index}

    def _put_settings(self, call: Call) -> Answer:
        settings = flat_settings(self._body(call))
        if settings == {"index.blocks.write": None}:  # how the adapters lift a write block
            self.fake.remove_write_block(call.params["index"])
            return 200, {"acknowledged": True}
        self.fake.put_settings(call.params["index"], settings)
        return 200, {"acknowledged": True}

    def _refresh(self, call: Call) -> Answer:
        index = call.params["index"]
        try:
            self.fake.refresh(index)
            n = 1
        except IndexNotFound as exc:
            n = len(self._alias_targets(index, exc))
        return 200, {"_shards": {"total": 2 * n, "successful": n, "failed": 0}}

    def _count(self, call: Call) -> Answer:
        index = call.params["index"]
        query = self._body(call).get("query")
        if query:
            count = sum(
                matches(query, doc_id, source)
                for i in self._concrete(index)
                for doc_id, source in self.fake.indices[i].docs.items()
            )
        else:
            try:
                count = self.fake.count(index)
            except IndexNotFound as exc:
                count = sum(len(self.fake.indices[i].docs) for i in self._alias_targets(index, exc))
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        return 200, {"count": count, "_shards": shards}

    def _concrete(self, name: str) -> list[str]:
        if name in self.fake.indices:
            return [name]
        return self._alias_targets(name, IndexNotFound(name))

    def _update_aliases(self, call: Call) -> Answer:
        actions = self._body(call).get("actions")
        if not isinstance(actions, list) or not all(
            isinstance(a, Mapping) and len(a) == 1 and next(iter(a)) in ("add", "remove")
            for a in actions
        ):
            raise Unsupported(f"_aliases actions {actions!r} (only single add/remove actions)")
        self.fake.update_aliases([dict(a) for a in actions])
        return 200, {"acknowledged": True}

    def _health(self, call: Call) -> Answer:
        index = call.params.get("index")
        wait_for = call.query.get("wait_for_status")
        timeout = _seconds(call.query.get("timeout", "30s"))
        result = self.fake.cluster_health(index, wait_for, timeout)
        body = {
            "cluster_name": self.cluster_name,
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": len(self.fake.indices),
            "active_shards": len(self.fake.indices),
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
            **result,
        }
        if wait_for and _HEALTH_RANK[body["status"]] < _HEALTH_RANK[wait_for]:
            body["timed_out"] = True
        return (408 if body["timed_out"] else 200), body

    def _delete_index(self, call: Call) -> Answer:
        self.fake.delete_index(call.params["index"])
        return 200, {"acknowledged": True}

    # -- tasks ----------------------------------------------------------------------------

    def _start_reindex(self, call: Call) -> Answer:
        if call.query.get("wait_for_completion", "true") != "false":
            raise Unsupported("_reindex only with wait_for_completion=false")
        body = self._body(call)
        source, dest = body.get("source") or {}, body.get("dest") or {}
        if not isinstance(source.get("index"), str) or not set(source) <= {"index", "query"}:
            raise Unsupported(f"reindex source {source!r} (one index and a query)")
        slices = call.query.get("slices", "1")
        rps = float(call.query.get("requests_per_second", "-1"))
        request = ReindexRequest(
            source=source["index"],
            dest=dest["index"],
            opaque_id=call.headers.get("x-opaque-id", ""),
            op_type=dest.get("op_type", "index"),
            conflicts=body.get("conflicts", "abort"),
            slices=int(slices) if slices.isdigit() else slices,
            requests_per_second=None if rps <= 0 else rps,
            extra={
                **{
                    k: v
                    for k, v in body.items()
                    if k not in ("source", "dest", "conflicts", "script")
                },
                **({"source": source} if "query" in source else {}),
            },
            pipeline=dest.get("pipeline"),
            script=body.get("script"),
        )
        return 200, {"task": self.fake.start_reindex(request)}

    def _task_info(self, task: FakeTask, detailed: bool = True) -> dict[str, Any]:
        node, _, number = task.task_id.partition(":")
        info: dict[str, Any] = {
            "node": node,
            "id": int(number),
            "type": "transport",
            "action": REINDEX_ACTION,
        }
        if detailed:
            status: dict[str, Any] = {
                "total": task.total,
                "updated": 0,
                "created": task.created,
                "deleted": 0,
                "batches": task.polls,
                "version_conflicts": task.version_conflicts,
                "noops": 0,
                "retries": {"bulk": 0, "search": 0},
                "throttled_millis": 0,
                "requests_per_second": _rps_value(task.rps),
                "throttled_until_millis": 0,
            }
            if task.cancelled:
                status["canceled"] = "by user request"
            info["status"] = status
            info["description"] = f"reindex from [{task.request.source}] to [{task.request.dest}]"
        info.update(
            {
                "start_time_in_millis": START_MILLIS + int(number),
                "running_time_in_nanos": 500_000_000 * task.polls,
                "cancellable": True,
                "cancelled": task.cancelled,
                "headers": {"X-Opaque-Id": task.request.opaque_id}
                if task.request.opaque_id
                else {},
            }
        )
        return info

    def _task_response(self, task: FakeTask) -> dict[str, Any]:
        response: dict[str, Any] = {
            "took": 500 * task.polls,
            "timed_out": False,
            "total": task.total,
            "updated": 0,
            "created": task.created,
            "deleted": 0,
            "batches": task.polls,
            "version_conflicts": task.version_conflicts,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled": "0s",
            "throttled_millis": 0,
            "requests_per_second": _rps_value(task.rps),
            "throttled_until": "0s",
            "throttled_until_millis": 0,
            "failures": [
                {
                    "index": task.request.dest,
                    **copy.deepcopy(f),
                    "status": 409
                    if (f.get("cause") or {}).get("type") == "version_conflict_engine_exception"
                    else 400,
                }
                for f in task.failures
            ],
        }
        if task.cancelled:
            response["canceled"] = "by user request"
        return response

    def _nodes(self, tasks: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for task_id, info in tasks.items():
            node = nodes.setdefault(
                info["node"],
                {
                    "name": info["node"],
                    "transport_address": "127.0.0.1:9300",
                    "host": "127.0.0.1",
                    "ip": "127.0.0.1:9300",
                    "roles": ["data", "ingest", "master", "remote_cluster_client"],
                    "tasks": {},
                },
            )
            node["tasks"][task_id] = info
        return {"nodes": nodes}

    def _task_not_found(self, task_id: str) -> Answer:
        node = task_id.partition(":")[0]
        reason = f"task [{task_id}] is not found"
        if self.task_not_found == "404":
            raise ApiError(404, "resource_not_found_exception", reason)
        return 200, {
            "node_failures": [
                {
                    "type": "failed_node_exception",
                    "reason": f"Failed node [{node}]",
                    "node_id": node,
                    "caused_by": {"type": "resource_not_found_exception", "reason": reason},
                }
            ],
            "nodes": {},
        }

    def _get_task(self, call: Call) -> Answer:
        task_id = _task_id(call.params["task"])
        if self.fake.get_task(task_id) is None:
            raise ApiError(
                404,
                "resource_not_found_exception",
                f"task [{task_id}] isn't running and hasn't stored its results",
            )
        task = self.fake.tasks[task_id]
        body: dict[str, Any] = {"completed": task.completed, "task": self._task_info(task)}
        if task.completed:
            body["response"] = self._task_response(task)
        return 200, body

    def _list_tasks(self, call: Call) -> Answer:
        actions = call.query.get("actions", "*").split(",")
        if "parent_task_id" in call.query or not any(
            fnmatch.fnmatchcase(REINDEX_ACTION, a) for a in actions
        ):
            return 200, {"nodes": {}}  # the fake's tasks have no children, and are reindexes
        detailed = call.query.get("detailed") == "true"
        tasks = {
            s.task_id: self._task_info(self.fake.tasks[s.task_id], detailed)
            for s in self.fake.list_reindex_tasks(None)
        }
        group_by = call.query.get("group_by", "nodes")
        if group_by == "none":
            return 200, {"tasks": list(tasks.values())}
        if group_by == "parents":
            return 200, {"tasks": tasks}
        return 200, self._nodes(tasks)

    def _cancel_task(self, call: Call) -> Answer:
        task_id = _task_id(call.params["task"])
        try:
            self.fake.cancel_task(task_id)
        except EngineError as exc:
            if exc.status != 404:
                raise
            return self._task_not_found(task_id)
        return 200, self._nodes({task_id: self._task_info(self.fake.tasks[task_id])})

    def _rethrottle(self, call: Call) -> Answer:
        task_id = _task_id(call.params["task"])
        if "requests_per_second" not in call.query:
            raise ApiError(400, "action_request_validation_exception", "requests_per_second set")
        rps = float(call.query["requests_per_second"])
        task = self.fake.tasks.get(task_id)
        if task is None or task.completed or task.vanished:
            return self._task_not_found(task_id)
        self.fake.rethrottle(task_id, float("inf") if rps <= 0 else rps)
        return 200, self._nodes({task_id: self._task_info(task)})

    # -- documents ------------------------------------------------------------------------

    def _bulk(self, call: Call) -> Answer:
        lines = [json.loads(line) for line in call.raw.splitlines() if line.strip()]
        default_index = call.params.get("index")
        items: list[dict[str, Any]] = []
        while lines:
            ((op, meta),) = lines.pop(0).items()
            if op not in ("index", "create", "delete"):
                raise Unsupported(f"bulk {op!r} (only index, create, delete)")
            index = meta.get("_index", default_index)
            doc_id = str(meta.get("_id") or f"auto-{next(self._ids)}")
            action: dict[str, Any] = {"_op_type": op, "_index": index, "_id": doc_id}
            if op != "delete":
                action["_source"] = lines.pop(0)
            items.append({op: self._bulk_item(action)})
        errors = any("error" in item for entry in items for item in entry.values())
        return 200, {"took": 1, "errors": errors, "items": items}

    def _bulk_item(self, action: dict[str, Any]) -> dict[str, Any]:
        index, doc_id, op = action["_index"], action["_id"], action["_op_type"]
        item: dict[str, Any] = {"_index": index, "_id": doc_id}
        existed = index in self.fake.indices and doc_id in self.fake.indices[index].docs
        try:
            _ok, errors = self.fake.bulk([action])
        except IndexNotFound as exc:
            error = index_not_found(exc.index)
            return {**item, "status": 404, "error": error.error}
        if errors:
            status = errors[0][op].get("status", 400)
            etype = "version_conflict_engine_exception" if status == 409 else "exception"
            reason = f"[{doc_id}]: version conflict, document already exists"
            return {**item, "status": status, "error": {"type": etype, "reason": reason}}
        result = "deleted" if op == "delete" else "updated" if existed else "created"
        shards = {"total": 2, "successful": 1, "failed": 0}
        status = 201 if result == "created" else 200
        return {**item, "_version": 1, "result": result, "_shards": shards, "status": status}

    def _search(self, call: Call) -> Answer:
        if "scroll" in call.query:
            return self._scroll_search(call)
        body = self._body(call)
        unknown = set(body) - _SEARCH_KEYS
        if unknown:
            raise Unsupported(f"search body keys {sorted(unknown)}")
        index = call.params.get("index")
        if "pit" in body:
            if index is not None:
                raise BadRequest(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [indices] cannot be used with point in time. Do "
                    "not specify any index with point in time.;",
                )
            return self._pit_search(call, body)
        if index is None:
            raise Unsupported("a search of every index")
        concrete = self._concrete(index)
        if len(concrete) != 1:
            raise Unsupported(f"a search of {index} ({len(concrete)} indices)")
        keys = self._sort_keys(body.get("sort"), pit=False, index=concrete[0])
        if body.get("search_after") is not None:
            raise Unsupported("search_after without a point in time")
        query = _fake_query(body.get("query"))
        size = _size(call, body)
        hits = self.fake.search(concrete[0], {**_fake_body(query), "size": size})["hits"]
        docs = self.fake.indices[concrete[0]].docs
        total = sum(matches(_filter_of(query), doc_id, src) for doc_id, src in docs.items())
        return 200, self._answer(body, hits["hits"], keys, total, positions={})

    def _pit_search(self, call: Call, body: dict[str, Any]) -> Answer:
        pit = body["pit"]
        if not isinstance(pit, Mapping) or not isinstance(pit.get("id"), str):
            raise BadRequest(400, "parsing_exception", "[pit] needs an [id] string")
        if "keep_alive" in pit:
            _seconds(str(pit["keep_alive"]))
        rest_id = pit["id"]
        fake_id = _fake_pit_id(rest_id)
        if body.get("sort") is None:
            raise Unsupported("a point-in-time search without a sort")
        keys = self._sort_keys(body["sort"], pit=True, index=None)
        query = _fake_query(body.get("query"))
        snapshot = self.fake.pits.get(fake_id) or []
        positions = {doc_id: n for n, (doc_id, _) in enumerate(snapshot)}
        fake_body: dict[str, Any] = {
            **_fake_body(query),
            "size": _size(call, body),
            "pit": {"id": fake_id, "keep_alive": pit.get("keep_alive")},
        }
        after = body.get("search_after")
        if after is not None:
            fake_body["search_after"] = [self._after_id(keys, after, snapshot)]
        try:
            answer = self.fake.search(None, fake_body)
        except EngineError as exc:
            if exc.status == 404 and "search_context_missing_exception" in exc.message:
                raise search_phase_error(
                    404,
                    "search_context_missing_exception",
                    f"No search context found for id [{rest_id}]",
                ) from exc
            raise
        index = self._pit_index.get(fake_id)
        hits = [{**hit, "_index": index or hit.get("_index")} for hit in answer["hits"]["hits"]]
        total = sum(matches(_filter_of(query), doc_id, src) for doc_id, src in snapshot)
        return 200, {"pit_id": rest_id, **self._answer(body, hits, keys, total, positions)}

    def _sort_keys(self, sort: Any, *, pit: bool, index: str | None) -> list[str]:
        """The sort keys of a search (ascending all), refused as the flavor refuses them;
        on Elasticsearch a PIT search ends with an implicit ``_shard_doc`` tiebreaker."""
        if sort is None:
            return []
        keys: list[str] = []
        for item in sort if isinstance(sort, list) else [sort]:
            if isinstance(item, str):
                name, order = item, "asc"
            elif isinstance(item, Mapping) and len(item) == 1:
                ((name, spec),) = item.items()
                order = spec.get("order", "asc") if isinstance(spec, Mapping) else spec
            else:
                raise Unsupported(f"sort {sort!r}")
            if order != "asc" or name not in ("_id", "_shard_doc", "_doc"):
                raise Unsupported(f"sort {sort!r} (only _id, _shard_doc or _doc ascending)")
            if name == "_id" and not self.id_fielddata:
                raise search_phase_error(
                    400,
                    "illegal_argument_exception",
                    "Fielddata access on the _id field is disallowed, you can re-enable it by "
                    "updating the dynamic cluster setting: indices.id_field_data.enabled",
                    index,
                )
            if name == "_shard_doc" and self.flavor == "opensearch":
                raise search_phase_error(
                    400,
                    "query_shard_exception",
                    "No mapping found for [_shard_doc] in order to sort on",
                    index,
                )
            if name == "_shard_doc" and not pit:
                raise ApiError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [_shard_doc] sort field cannot be used without "
                    "[point in time];",
                )
            keys.append(name)
        if pit and self.flavor == "elasticsearch" and "_shard_doc" not in keys:
            keys.append("_shard_doc")  # the implicit tiebreaker of every PIT search
        return keys

    def _after_id(self, keys: list[str], after: Any, snapshot: list[tuple[str, Any]]) -> str:
        """The document ID the fake reads on after, from a ``search_after`` on ``keys``."""
        if not isinstance(after, list) or len(after) != len(keys) or not keys:
            raise BadRequest(
                400,
                "illegal_argument_exception",
                f"search_after has {len(after) if isinstance(after, list) else 0} value(s) "
                f"but sort has {len(keys)}.",
            )
        if keys[0] == "_id":
            return str(after[0])
        if keys[0] == "_shard_doc":
            n = after[0]
            if not isinstance(n, int):
                raise BadRequest(400, "illegal_argument_exception", f"invalid _shard_doc {n!r}")
            return snapshot[n][0] if 0 <= n < len(snapshot) else "\U0010ffff"
        raise Unsupported(f"search_after on {keys[0]}")

    def _answer(
        self,
        body: Mapping[str, Any],
        hits: list[dict[str, Any]],
        keys: list[str],
        total: int,
        positions: Mapping[str, int],
    ) -> dict[str, Any]:
        """A search answer: hits as the engines give them (``sort`` values when sorted,
        ``_score`` otherwise), ``hits.total`` unless ``track_total_hits`` is false."""
        wanted = body.get("_source", True)
        out: list[dict[str, Any]] = []
        for n, hit in enumerate(hits):
            doc_id = hit["_id"]
            shaped: dict[str, Any] = {"_index": hit["_index"], "_id": doc_id}
            if keys:
                shaped["_score"] = None
            else:  # relevance order: the fake's order, as descending scores
                shaped["_score"] = round(1.0 - n / (len(hits) + 1), 6)
            if wanted is not False:
                source = hit["_source"]
                if isinstance(wanted, list):
                    source = {k: v for k, v in source.items() if k in wanted}
                shaped["_source"] = source
            if keys:
                values = {"_id": doc_id, "_shard_doc": positions.get(doc_id, n), "_doc": n}
                shaped["sort"] = [values[k] for k in keys]
            out.append(shaped)
        hits_part: dict[str, Any] = {
            "max_score": None if keys or not out else out[0]["_score"],
            "hits": out,
        }
        if body.get("track_total_hits", True) is not False:
            hits_part = {"total": {"value": total, "relation": "eq"}, **hits_part}
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": hits_part,
        }

    def _scroll_search(self, call: Call) -> Answer:
        index = call.params.get("index")
        if index is None:
            raise Unsupported("a scroll of every index")
        body = self._body(call)
        size = _size(call, body)
        keys = self._sort_keys(body.get("sort"), pit=False, index=index)
        try:
            hits = list(self.fake.scan(index))
        except IndexNotFound as exc:
            hits = [
                {"_index": i, "_id": doc_id, "_source": copy.deepcopy(source)}
                for i in self._alias_targets(index, exc)
                for doc_id, source in sorted(self.fake.indices[i].docs.items())
            ]
        query = body.get("query")
        hits = [h for h in hits if matches(query, h["_id"], h["_source"])]
        if keys == ["_id"]:
            hits.sort(key=lambda h: h["_id"])
        wanted = body.get("_source", True)
        for n, hit in enumerate(hits):
            hit.update({"_score": None, "sort": [hit["_id"] if keys == ["_id"] else n]})
            if wanted is False:
                del hit["_source"]
            elif isinstance(wanted, list):
                hit["_source"] = {k: v for k, v in hit["_source"].items() if k in wanted}
        answer = self._page(hits, size, len(hits))
        scroll_id = f"fake-scroll-{next(self._ids)}"
        self._scrolls[scroll_id] = _Scroll(hits[size:], size, len(hits))
        answer["_scroll_id"] = scroll_id
        return 200, answer

    # -- points in time and plugins -------------------------------------------------------

    def _open_pit(self, call: Call) -> Answer:
        index = call.params["index"]
        keep_alive = call.query.get("keep_alive")
        if not keep_alive:
            raise BadRequest(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [keep_alive] is not specified;",
            )
        _seconds(keep_alive)
        name = index
        if index not in self.fake.indices:  # an alias: the one index it is on
            on = sorted(i for i, idx in self.fake.indices.items() if index in idx.aliases)
            if len(on) > 1:
                raise Unsupported(f"a point in time on {index} ({len(on)} indices)")
            name = on[0] if on else index
        fake_id = self.fake.open_pit(name, keep_alive)
        if fake_id is None:  # an engine without the PIT API has no route for it
            uri = "/" + "/".join(call.path)
            return 400, {
                "error": f"no handler found for uri [{uri}?keep_alive={keep_alive}] and "
                "method [POST]",
                "status": 400,
            }
        self._pit_index[fake_id] = name
        rest_id = _rest_pit_id(fake_id)
        if self.flavor == "elasticsearch":
            return 200, {"id": rest_id}
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        return 200, {"pit_id": rest_id, "_shards": shards, "creation_time": START_MILLIS}

    def _close_pit(self, call: Call) -> Answer:
        body = self._body(call)
        if self.flavor == "elasticsearch":
            if set(body) != {"id"} or not isinstance(body["id"], str):
                raise BadRequest(
                    400,
                    "x_content_parse_exception",
                    f"[close_point_in_time] takes one [id] string, not {body!r}",
                )
            rest_ids = [body["id"]]
        else:
            ids = body.get("pit_id")
            ids = [ids] if isinstance(ids, str) else ids
            if set(body) != {"pit_id"} or not ids or not all(isinstance(i, str) for i in ids):
                raise BadRequest(
                    400,
                    "action_request_validation_exception",
                    f"Validation Failed: 1: no pit ids specified; (body {body!r})",
                )
            rest_ids = list(ids)
        freed = 0
        for rest_id in rest_ids:
            fake_id = _fake_pit_id(rest_id)
            freed += fake_id in self.fake.pits
            self.fake.close_pit(fake_id)
            self._pit_index.pop(fake_id, None)
        if self.flavor == "elasticsearch":  # 200 even when nothing was freed (8.8+)
            return 200, {"succeeded": True, "num_freed": freed}
        # OpenSearch: a missing PIT counts as deleted
        return 200, {"pits": [{"successful": True, "pit_id": i} for i in rest_ids]}

    def _cat_plugins(self, call: Call) -> Answer:
        if call.query.get("format") != "json":
            raise Unsupported("_cat/plugins only with format=json")
        version = self.version if self.flavor == "elasticsearch" else f"{self.version}.0"
        return 200, [
            {"name": "fake-node", "component": component, "version": version}
            for component in sorted(self.fake.plugins())
        ]

    def _page(self, hits: list[dict[str, Any]], size: int, total: int) -> dict[str, Any]:
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": None,
                "hits": hits[:size],
            },
        }

    def _scroll(self, call: Call) -> Answer:
        scroll_id = call.params.get("scroll_id") or self._body(call).get("scroll_id")
        scroll = self._scrolls.get(str(scroll_id))
        if scroll is None:
            raise ApiError(
                404,
                "search_context_missing_exception",
                f"No search context found for id [{scroll_id}]",
            )
        page, scroll.hits = scroll.hits[: scroll.size], scroll.hits[scroll.size :]
        return 200, {"_scroll_id": scroll_id, **self._page(page, scroll.size, scroll.total)}

    def _clear_scroll(self, call: Call) -> Answer:
        ids = self._body(call).get("scroll_id") or []
        ids = [ids] if isinstance(ids, str) else ids
        freed = sum(self._scrolls.pop(i, None) is not None for i in ids)
        return 200, {"succeeded": True, "num_freed": freed}

    # -- write policy (issue 5) --------------------------------------------------------------
    def _add_block(self, call: Call) -> Answer:
        index, block = call.params["index"], call.params["block"]
        if block != "write":
            raise Unsupported(f"block {block!r} (only write)")
        if self.fake.write_blocked(index):  # both engines: nothing to do, nothing listed
            self.fake.add_write_block(index)
            return 200, {"acknowledged": True, "shards_acknowledged": False, "indices": []}
        self.fake.add_write_block(index)
        # Both engines answer so (OpenSearch 2.x, Elasticsearch 7.9+).
        return 200, {
            "acknowledged": True,
            "shards_acknowledged": True,
            "indices": [{"name": index, "blocked": True}],
        }

    # -- deep verification (issue 5) --------------------------------------------------------

    def _mget(self, call: Call) -> Answer:
        """As both engines answer: per document ``found`` (with ``_source`` unless the
        document asks ``"_source": false``); a missing index is a 200 whose every
        document carries the index_not_found_exception."""
        index = call.params["index"]
        docs = self._body(call).get("docs")
        if not isinstance(docs, list) or not docs:
            raise BadRequest(400, "action_request_validation_exception", "no documents to get")
        for doc in docs:
            unknown = set(doc) - {"_id", "_source", "routing"}
            if unknown or not isinstance(doc.get("_id"), str):
                raise Unsupported(f"mget document {doc!r}")
        try:
            found = self.fake.mget(index, [(d["_id"], d.get("routing")) for d in docs])
        except IndexNotFound as exc:
            error = index_not_found(exc.index).body()["error"]
            return 200, {"docs": [{"_index": index, "_id": d["_id"], "error": error} for d in docs]}
        out = []
        for doc in docs:
            source = found[doc["_id"]]
            item: dict[str, Any] = {"_index": index, "_id": doc["_id"]}
            if source is None:
                out.append({**item, "found": False})
                continue
            item.update({"_version": 1, "_seq_no": 0, "_primary_term": 1, "found": True})
            if doc.get("_source", True) is not False:
                item["_source"] = source
            out.append(item)
        return 200, {"docs": out}

    # -- lease and preflight (issue 5) --

    def _lease_and_preflight_routes(
        self,
    ) -> list[tuple[str, tuple[str, ...], Callable[[Call], Answer]]]:
        lease = LEASE_INDEX
        security = (
            ("POST|GET", ("_security", "user", "_has_privileges"), self._has_privileges)
            if self.flavor == "elasticsearch"
            else ("GET|POST", ("_plugins", "_security", "authinfo"), self._authinfo)
        )
        return [
            ("GET", (lease, "_settings", "index.uuid"), self._lease_index_exists),
            ("PUT", (lease,), self._create_lease_index),
            ("GET", (lease, "_doc", "{id}"), self._get_lease),
            ("PUT|POST", (lease, "_create", "{id}"), self._put_lease),
            ("PUT|POST", (lease, "_doc", "{id}"), self._put_lease),
            ("DELETE", (lease, "_doc", "{id}"), self._delete_lease),
            ("GET", ("_cat", "indices", "{index}"), self._cat_indices),
            ("GET", ("_nodes", "stats", "fs"), self._nodes_fs),
            ("GET", ("_cluster", "settings"), self._cluster_settings),
            security,
        ]

    def _lease_index_exists(self, call: Call) -> Answer:
        if not self.fake.lease_index_created:
            raise index_not_found(LEASE_INDEX)
        return 200, {LEASE_INDEX: {"settings": {"index": {"uuid": "lease-index-uuid"}}}}

    def _create_lease_index(self, call: Call) -> Answer:
        if self.fake.lease_index_created:
            raise ApiError(
                400,
                "resource_already_exists_exception",
                f"index [{LEASE_INDEX}/lease-index-uuid] already exists",
            )
        settings = flat_settings(self._body(call).get("settings") or {})
        if settings.get("index.hidden") != "true":
            raise Unsupported(f"the lease index must be created hidden, not with {settings}")
        self.fake.lease_index_created = True
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": LEASE_INDEX}

    def _lease_answer(self, doc_id: str, seq_no: int, **extra: Any) -> dict[str, Any]:
        return {
            "_index": LEASE_INDEX,
            "_id": doc_id,
            "_version": seq_no + 1,
            "_seq_no": seq_no,
            "_primary_term": 1,
            **extra,
        }

    def _get_lease(self, call: Call) -> Answer:
        doc_id = call.params["id"]
        stored = self.fake.get_lease(doc_id)
        if not self.fake.lease_index_created:
            raise index_not_found(LEASE_INDEX)
        if stored is None:
            return 404, {"_index": LEASE_INDEX, "_id": doc_id, "found": False}
        return 200, self._lease_answer(doc_id, stored.seq_no, found=True, _source=stored.doc)

    def _put_lease(self, call: Call) -> Answer:
        doc_id = call.params["id"]
        create = call.path[1] == "_create" or call.query.get("op_type") == "create"
        if not self.fake.lease_index_created:  # a real engine would auto-create it, visible
            raise Unsupported("a lease written before its hidden index was created")
        if create:
            stored = self.fake.put_lease(doc_id, self._body(call))
        elif "if_seq_no" in call.query and "if_primary_term" in call.query:
            stored = self.fake.put_lease(
                doc_id,
                self._body(call),
                seq_no=int(call.query["if_seq_no"]),
                primary_term=int(call.query["if_primary_term"]),
            )
        else:
            raise Unsupported("a lease overwritten without if_seq_no/if_primary_term")
        return (201 if create else 200), self._lease_answer(
            doc_id, stored.seq_no, result="created" if create else "updated"
        )

    def _delete_lease(self, call: Call) -> Answer:
        doc_id = call.params["id"]
        if "if_seq_no" not in call.query or "if_primary_term" not in call.query:
            raise Unsupported("a lease deleted without if_seq_no/if_primary_term")
        existed = doc_id in self.fake.leases
        seq_no = int(call.query["if_seq_no"])
        self.fake.delete_lease(doc_id, seq_no, int(call.query["if_primary_term"]))
        if not existed:
            return 404, self._lease_answer(doc_id, seq_no, result="not_found")
        return 200, self._lease_answer(doc_id, seq_no + 1, result="deleted")

    def _cat_indices(self, call: Call) -> Answer:
        """One route, two callers: index_status asks sizes in bytes (``bytes=b``) of one
        index; describe_indices asks names, status and creation dates for a pattern."""
        if "bytes" in call.query:
            return self._cat_index_status(call)
        return self._cat_indices_described(call)

    def _cat_index_status(self, call: Call) -> Answer:
        if call.query.get("format") != "json" or call.query.get("bytes") != "b":
            raise Unsupported("_cat/indices only with format=json and bytes=b")
        index = call.params["index"]
        status = self.fake.index_status(index)
        size = status.primary_store_bytes
        return 200, [
            {
                "index": index,
                "status": status.status,
                "health": status.health or "red",
                "pri.store.size": str(size) if size is not None else None,
            }
        ]

    def _nodes_fs(self, call: Call) -> Answer:
        master_role = "master" if self.flavor == "elasticsearch" else "cluster_manager"
        data_role = "data_content" if self.flavor == "elasticsearch" else "data"  # both count
        nodes: dict[str, Any] = {
            "coordinating-only": {
                "name": "coordinating-only",
                "roles": [],
                "fs": {"total": {"total_in_bytes": 1, "available_in_bytes": 1}},
            }
        }
        for i, disk in enumerate(self.fake.data_node_disks()):
            nodes[f"node-id-{i}"] = {
                "name": disk.name,
                "roles": [master_role, data_role],
                "fs": {
                    "total": {
                        "total_in_bytes": disk.total_bytes,
                        "free_in_bytes": disk.available_bytes,
                        "available_in_bytes": disk.available_bytes,
                    }
                },
            }
        total = len(nodes)
        return 200, {
            "_nodes": {"total": total, "successful": total, "failed": 0},
            "cluster_name": self.cluster_name,
            "nodes": nodes,
        }

    def _cluster_settings(self, call: Call) -> Answer:
        """The fake's cluster settings layers, nested as the engines answer by default
        (``flat_settings`` is not asked for); ``defaults`` only with include_defaults;
        ``filter_path`` honoured for the one prefix the adapter asks for."""
        self.fake.disk_watermarks()  # recorded as the adapter's call
        if call.query.get("flat_settings") == "true":
            raise Unsupported("_cluster/settings only nested")
        wanted = call.query.get("filter_path", "")
        prefix = wanted.removeprefix("*.") if wanted.startswith("*.") else None
        if wanted and prefix is None:
            raise Unsupported(f"_cluster/settings filter_path {wanted!r}")
        layers = ["transient", "persistent"]
        if call.query.get("include_defaults") == "true":
            layers.append("defaults")
        body: dict[str, Any] = {}
        for layer in layers:
            nested: dict[str, Any] = {}
            for key, value in self.fake.cluster_settings[layer].items():
                if prefix and not key.startswith(prefix):
                    continue
                _nest(nested, "", key, value)
            if nested or not prefix:
                body[layer] = nested
        return 200, body

    def _has_privileges(self, call: Call) -> Answer:
        body = self._body(call)
        cluster = list(body.get("cluster") or [])
        index = [(list(e["names"]), list(e["privileges"])) for e in body.get("index") or []]
        result = self.fake.has_privileges(cluster, index)
        if result is None:
            reason = (
                "Security must be explicitly enabled when using a [basic] license. Enable "
                "security by setting [xpack.security.enabled] to [true] in the "
                "elasticsearch.yml file and restart the node."
            )
            raise ApiError(500, "exception", reason)
        missing = set(result.missing)
        return 200, {
            "username": result.user,
            "has_all_requested": not missing,
            "cluster": {p: f"cluster:{p}" not in missing for p in cluster},
            "index": {
                name: {p: f"{name}:{p}" not in missing for p in privileges}
                for names, privileges in index
                for name in names
            },
            "application": {},
        }

    def _authinfo(self, call: Call) -> Answer:
        if "opensearch-security" not in self.fake.plugin_names:
            raise ApiError(
                400,
                "illegal_argument_exception",
                "no handler found for uri [/_plugins/_security/authinfo] "
                f"and method [{call.method}]",
            )
        return 200, {
            "user": f"User [name={self.fake.security_user}, backend_roles=[]]",
            "user_name": self.fake.security_user,
            "backend_roles": [],
            "roles": list(self.fake.security_roles),
            "tenants": {},
        }

    # -- transforms, undo, retention, task records (issue 5) ------------------------------

    def _issue5_routes(self) -> list[tuple[str, tuple[str, ...], Callable[[Call], Answer]]]:
        return [
            ("GET", ("_ingest", "pipeline", "{name}"), self._get_pipeline),
            *(
                [("DELETE", ("_tasks", "{task}"), self._delete_task_api)]
                if self.flavor == "opensearch"
                else []
            ),
            ("DELETE", (".tasks", "_doc", "{task}"), self._delete_task_doc),
            ("GET", ("{index}", "_stats", "{metric}"), self._shard_stats),
        ]

    def _shard_stats(self, call: Call) -> Answer:
        """``GET {index}/_stats/docs?level=shards``: per shard, the primary copy and a
        replica lagging one operation behind (the adapter must read the primary)."""
        if call.query.get("level") != "shards":
            raise Unsupported("_stats without level=shards")
        indices = {}
        for name in self._concrete(call.params["index"]):
            shards = {}
            for number, max_seq_no in self.fake.max_seq_nos(name).items():
                docs = {"count": len(self.fake.indices[name].docs), "deleted": 0}
                shards[number] = [
                    {
                        "routing": {"state": "STARTED", "primary": primary, "node": node},
                        "docs": docs,
                        "seq_no": {
                            "max_seq_no": seq,
                            "local_checkpoint": seq,
                            "global_checkpoint": seq,
                        },
                    }
                    for primary, node, seq in (
                        (False, "node-2", max(max_seq_no - 1, -1)),
                        (True, "node-1", max_seq_no),
                    )
                ]
            uuid = self.fake.indices[name].settings.get("index.uuid")
            indices[name] = {"uuid": uuid, "primaries": {}, "total": {}, "shards": shards}
        return 200, {"_shards": {"total": 2, "successful": 2, "failed": 0}, "indices": indices}

    def _get_pipeline(self, call: Call) -> Answer:
        name = call.params["name"]
        if not self.fake.pipeline_exists(name):
            return 404, {}
        return 200, {name: copy.deepcopy(self.fake.pipelines[name])}

    def _cat_indices_described(self, call: Call) -> Answer:
        if call.query.get("format") != "json":
            raise Unsupported("_cat/indices only with format=json")
        pattern = call.params["index"]
        found = self.fake.describe_indices(pattern)
        if not found and not any(c in pattern for c in "*?,"):
            raise index_not_found(pattern)
        columns = call.query.get("h", "index,status,creation.date").split(",")
        rows = [
            {
                "index": i.name,
                "status": "open" if i.open else "close",
                "creation.date": str(i.created_ms),
            }
            for i in found
        ]
        return 200, [{k: row[k] for k in columns if k in row} for row in rows]

    def _delete_task_api(self, call: Call) -> Answer:
        reason = (
            f"Incorrect HTTP method for uri [/_tasks/{call.params['task']}] and method "
            "[DELETE], allowed: [GET]"
        )
        return 405, {"error": reason, "status": 405}

    def _matching(self, pattern: str) -> list[str] | None:
        """The indices a wildcard pattern matches (an unrecorded read); None when
        ``pattern`` is a plain name (the caller's own handling applies)."""
        if not any(c in pattern for c in "*?"):
            return None
        return sorted(i for i in self.fake.indices if fnmatch.fnmatchcase(i, pattern))

    def _delete_task_doc(self, call: Call) -> Answer:
        task_id = _task_id(call.params["task"])
        if not self.fake.delete_task_result(task_id):
            return 404, {"_index": ".tasks", "_id": task_id, "result": "not_found"}
        return 200, {"_index": ".tasks", "_id": task_id, "result": "deleted"}


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


def _task_id(task_id: str) -> str:
    node, sep, number = task_id.partition(":")
    if not (node and sep and number.isdigit()):
        raise ApiError(400, "illegal_argument_exception", f"malformed task id {task_id}")
    return task_id


def _rps_value(rps: float | None) -> float:
    return -1.0 if rps is None or rps == float("inf") or rps <= 0 else float(rps)


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value)
    if match is None:
        raise ApiError(400, "illegal_argument_exception", f"failed to parse time [{value}]")
    return float(match[1]) * units[match[2] or "ms"]


_SEARCH_KEYS = frozenset(
    {"query", "size", "sort", "pit", "search_after", "track_total_hits", "_source"}
)


def _size(call: Call, body: Mapping[str, Any]) -> int:
    return int(call.query.get("size", body.get("size", 10)))


def _fake_query(query: Any) -> dict[str, Any] | None:
    """``query`` if FakeEngine.search answers it as the engines do (match_all, ids, a
    function_score of random_score over match_all); else :class:`Unsupported`."""
    if query is None:
        return None
    if not isinstance(query, Mapping) or len(query) != 1:
        raise Unsupported(f"query {query!r}")
    ((kind, spec),) = query.items()
    if kind == "match_all" or (kind == "ids" and isinstance(spec.get("values"), list)):
        return dict(query)
    if kind == "function_score":
        inner = spec.get("query", {"match_all": {}})
        random_score = spec.get("random_score")
        if (
            set(spec) <= {"query", "random_score", "boost_mode"}
            and isinstance(random_score, Mapping)
            and set(random_score) <= {"seed", "field"}
            and set(inner) == {"match_all"}
        ):
            return dict(query)
    raise Unsupported(f"query {query!r} (the fake searches match_all, ids, random_score)")


def _filter_of(query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Which documents ``query`` matches (a function_score only scores its query's)."""
    if query and "function_score" in query:
        return dict(query["function_score"].get("query") or {"match_all": {}})
    return query


def _fake_body(query: dict[str, Any] | None) -> dict[str, Any]:
    return {"query": query} if query is not None else {}


def _rest_pit_id(fake_id: str) -> str:
    """A PIT ID as the engines give one: opaque URL-safe base64."""
    return base64.urlsafe_b64encode(f"fake-pit:{fake_id}".encode()).decode()


def _fake_pit_id(rest_id: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(rest_id.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("fake-pit:"):
        raise Unsupported(400, "illegal_argument_exception", f"invalid id: [{rest_id}]")
    return raw.removeprefix("fake-pit:")


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
