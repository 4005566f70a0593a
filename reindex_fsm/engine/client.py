"""The Engine protocol once, on raw requests, for both official clients.

Elasticsearch and OpenSearch speak the same REST API, so :class:`ClientEngine`
implements every :class:`~reindex_fsm.engine.base.Engine` method once, on the raw
requests of :class:`~.transport.ClientTransport`, in the protocol's sections. A flavor
adapter (:mod:`.elasticsearch`, :mod:`.opensearch`) supplies its client and holds every
difference between the two engines: how to build the client and send one request, which
exceptions mean what, the point-in-time API's paths and bodies, the privilege check, and
how a task's stored result is deleted. The reading of the answers is in :mod:`.responses`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from ..errors import EngineError, EngineUnreachable, IndexNotFound, LeaseConflict, TaskNotFound
from .base import (
    LEASE_INDEX,
    LEASE_INDEX_MAPPINGS,
    LEASE_INDEX_SETTINGS,
    DiskWatermarks,
    IndexDefinition,
    IndexStatus,
    IndexSummary,
    NodeDisk,
    PrivilegeCheck,
    ReindexRequest,
    StoredLease,
    TaskStatus,
    watermarks_from_settings,
)
from .policies import ClusterPolicies
from .responses import (
    OPAQUE_ID_HEADER,
    is_sliced,
    one_line,
    parse_index_status,
    parse_index_summaries,
    parse_max_seq_nos,
    parse_mget,
    parse_node_disks,
    parse_task,
    parse_task_list,
    raise_task_action_failure,
)
from .transport import ClientTransport, request_path

__all__ = ["ClientEngine"]

# The OpenSearch security plugin's refusal: "no permissions for [indices:admin/aliases] and
# User [name=..., ...]".
_REFUSED_ACTION = re.compile(r"no permissions for \[([^\]]+)\]")

# Keys of a search request body: a ``scan`` query made only of these is a whole body,
# anything else is a query clause to wrap in {"query": ...}.
_SEARCH_BODY_KEYS = frozenset(
    {
        "query",
        "_source",
        "sort",
        "slice",
        "size",
        "stored_fields",
        "docvalue_fields",
        "fields",
        "track_total_hits",
        "runtime_mappings",
        "post_filter",
        "seq_no_primary_term",
        "version",
    }
)

_path = request_path


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class ClientEngine(ClusterPolicies, ClientTransport):
    """The :class:`~reindex_fsm.engine.base.Engine` protocol on an official Python client.

    ``start_reindex`` is never retried, so a lost answer cannot start a second task (the
    caller finds a started task again by its opaque ID).
    """

    # The point-in-time API: POST <index>/<pit_path...> opens one, whose ID is the answer's
    # pit_id_key; DELETE /<pit_path...> with _close_pit_body closes it.
    pit_path: ClassVar[tuple[str, ...]]
    pit_id_key: ClassVar[str]

    # -- what a flavor adapter supplies: the engines' differences ---------------------------

    def _close_pit_body(self, pit_id: str) -> dict[str, Any]:
        """The body of the request closing the point in time ``pit_id``."""
        raise NotImplementedError

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        """Each engine has its own security API: see the flavor adapters."""
        raise NotImplementedError

    # -- cluster and health -----------------------------------------------------------------

    def cluster_health(
        self, index: str | None = None, wait_for_status: str | None = None, timeout_s: float = 30
    ) -> dict[str, Any]:
        # The wait goes in the query string itself: opensearch-py would take a `timeout`
        # param for its own socket timeout. Keep waits below the client's request timeout.
        query = f"timeout={max(1, int(timeout_s))}s"
        if wait_for_status:
            query += f"&wait_for_status={quote(wait_for_status)}"
        path = _path("_cluster", "health", index) if index else "/_cluster/health"
        try:
            return dict(self._request("GET", f"{path}?{query}"))
        except EngineError as exc:
            if exc.status == 408:  # the wait ran out: say so, the caller decides
                return {"status": None, "timed_out": True}
            raise

    def plugins(self) -> set[str]:
        rows = self._request("GET", "/_cat/plugins", params={"format": "json"})
        return {str(row.get("component")) for row in rows or [] if isinstance(row, Mapping)}

    def data_node_disks(self) -> list[NodeDisk]:
        return parse_node_disks(self._request("GET", "/_nodes/stats/fs"))

    def disk_watermarks(self) -> DiskWatermarks:
        body = self._request(
            "GET",
            "/_cluster/settings",
            params={
                "include_defaults": "true",
                "filter_path": "*.cluster.routing.allocation.disk",  # nested: small
            },
        )
        return watermarks_from_settings(body)

    # -- indices and settings ---------------------------------------------------------------

    def index_exists(self, index: str) -> bool:
        """True only for a concrete index: ``GET <name>/_settings/index.uuid`` answers
        keyed by the concrete indices the name resolves to, which for an alias are
        other names (and for a missing index is a 404)."""
        try:
            body = self._request("GET", _path(index, "_settings", "index.uuid"))
        except IndexNotFound:
            return False
        return index in body

    def get_index(self, index: str) -> IndexDefinition:
        settings = self._request("GET", _path(index, "_settings"), params={"flat_settings": "true"})
        mappings = self._request("GET", _path(index, "_mapping"))
        if index not in settings or index not in mappings:
            raise IndexNotFound(index)  # an alias, not an index
        return IndexDefinition(
            settings=dict(settings[index].get("settings") or {}),
            mappings=dict(mappings[index].get("mappings") or {}),
        )

    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None:
        self._request(
            "PUT", _path(index), body={"settings": dict(settings), "mappings": dict(mappings)}
        )

    def put_settings(self, index: str, settings: Mapping[str, Any]) -> None:
        self._request("PUT", _path(index, "_settings"), body=dict(settings))

    def refresh(self, index: str) -> None:
        self._request("POST", _path(index, "_refresh"))

    def force_merge(self, index: str, max_num_segments: int) -> str | None:
        # in the background: a merge that builds vector graphs outlives a request's timeout
        params = {"max_num_segments": str(max_num_segments), "wait_for_completion": "false"}
        body = self._request("POST", _path(index, "_forcemerge"), params=params)
        task = body.get("task") if isinstance(body, dict) else None
        return str(task) if task else None

    def count(self, index: str) -> int:
        return int(self._request("GET", _path(index, "_count"))["count"])

    def delete_index(self, index: str) -> None:
        if any(c in index for c in "*,?") or index.startswith("_"):
            raise ValueError(f"refusing to delete {index!r}: not a single index name")
        self._request("DELETE", _path(index))

    def index_status(self, index: str) -> IndexStatus:
        rows = self._request(
            "GET",
            _path("_cat", "indices", index),
            params={
                "format": "json",
                "bytes": "b",
                "h": "index,status,health,pri.store.size",
                "expand_wildcards": "all",
            },
        )
        return parse_index_status(rows, index)

    def describe_indices(self, pattern: str) -> list[IndexSummary]:
        """``_cat/indices`` (status, creation date), then the aliases and the mappings'
        ``_meta`` of the same indices; open and closed, hidden ones left out."""
        wildcards = {"expand_wildcards": "open,closed"}
        try:
            rows = self._request(
                "GET",
                _path("_cat", "indices", pattern),
                params={"format": "json", "h": "index,status,creation.date", **wildcards},
            )
            aliases = self._request("GET", _path(pattern, "_alias"), params=wildcards)
            # Only the _meta of each mapping (a whole cluster's mappings can be large). An
            # index whose name has a dot is missed by the filter: it looks foreign, so kept.
            mappings = self._request(
                "GET",
                _path(pattern, "_mapping"),
                params={**wildcards, "filter_path": "*.mappings._meta"},
            )
        except IndexNotFound:
            return []
        return parse_index_summaries(rows, aliases, mappings)

    def max_seq_nos(self, index: str) -> dict[str, int]:
        """From the shard-level stats (``seq_no`` is there whatever metric is asked; docs
        is the smallest): the primary copy of each shard."""
        body = self._request("GET", _path(index, "_stats", "docs"), params={"level": "shards"})
        return parse_max_seq_nos(body, index)

    # -- aliases ----------------------------------------------------------------------------

    def get_alias(self, alias: str) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            body = self._request("GET", _path("_alias", alias))
        except EngineError as exc:
            if exc.status == 404:  # "alias [x] missing"
                return {}
            raise
        return {index: dict(entry.get("aliases") or {}) for index, entry in body.items()}

    def get_index_aliases(self, index: str) -> dict[str, dict[str, Any]]:
        """Aliases of the concrete index ``index``; IndexNotFound if it is no index
        (an alias name resolves to other indices, which is not what was asked)."""
        body = self._request("GET", _path(index, "_alias"))
        if index not in body:
            raise IndexNotFound(index)
        return dict(body[index].get("aliases") or {})

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        self._request("POST", "/_aliases", body={"actions": list(actions)})

    # -- write blocks -----------------------------------------------------------------------

    def add_write_block(self, index: str) -> None:
        body = self._request("PUT", _path(index, "_block", "write"))
        if isinstance(body, Mapping) and not body.get("shards_acknowledged", True):
            # Either the index was blocked already (the engines answer so, with no index
            # listed, e.g. on resume), or not every shard confirmed the block yet and
            # writes in flight may still land. The setting is written only once every
            # shard has confirmed the block: it tells the two apart.
            settings = self._request(
                "GET",
                _path(index, "_settings", "index.blocks.write"),
                params={"flat_settings": "true"},
            )
            value = (settings.get(index) or {}).get("settings", {}).get("index.blocks.write")
            if str(value).lower() != "true":
                raise EngineError(
                    f"write block on {index} was not acknowledged by every shard",
                    hint="check the cluster's health, then resume the run",
                )

    def remove_write_block(self, index: str) -> None:
        self._request("PUT", _path(index, "_settings"), body={"index.blocks.write": None})

    # -- documents and search ---------------------------------------------------------------

    def bulk(self, actions: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        with self._translating("bulk"):
            ok, errors = self.helpers.bulk(
                self._client, actions, raise_on_error=False, stats_only=False
            )
        return int(ok), list(errors)

    def scan(
        self, index: str, query: Mapping[str, Any] | None = None, preserve_order: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every hit (scroll, unordered, 1000 a page). ``query`` is either a query clause
        (``{"term": {...}}``) or a search body whose keys are all search-body keys
        (``{"query": ..., "_source": ...}``)."""
        if not query:
            body: dict[str, Any] | None = None
        elif set(query) <= _SEARCH_BODY_KEYS:
            body = dict(query)
        else:
            body = {"query": dict(query)}
        with self._translating(f"scan of {index}"):
            yield from self.helpers.scan(
                self._client, query=body, index=index, size=1000, preserve_order=preserve_order
            )

    def search(self, index: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        path = _path(index, "_search") if index else "/_search"
        return dict(self._request("POST", path, body=dict(body)))

    def open_pit(self, index: str, keep_alive: str) -> str | None:
        try:
            body = self._request(
                "POST", _path(index, *self.pit_path), params={"keep_alive": keep_alive}
            )
        except EngineError as exc:
            # An engine without the PIT API answers "no handler found for uri" (400, or
            # 404/405); any other refusal (e.g. keep_alive above the maximum) is an error.
            unknown_endpoint = exc.status in (404, 405) or (
                exc.status == 400 and "no handler found" in exc.message.lower()
            )
            if unknown_endpoint and not isinstance(exc, IndexNotFound):
                return None  # the caller scrolls instead
            raise
        return str(body[self.pit_id_key])

    def close_pit(self, pit_id: str) -> None:
        try:
            self._request(
                "DELETE", "/" + "/".join(self.pit_path), body=self._close_pit_body(pit_id)
            )
        except IndexNotFound:
            pass
        except EngineError as exc:
            if exc.status != 404:
                raise

    def mget(
        self, index: str, docs: Sequence[tuple[str, str | None]], source: bool = True
    ) -> dict[str, dict[str, Any] | None]:
        """One ``POST <index>/_mget``; each document carries its routing when it has one
        (a routed document is only found on its own shard). A per-document error
        (a shard that cannot answer) fails the whole lookup: a check must not guess."""
        if not docs:
            return {}
        wanted = []
        for doc_id, routing in docs:
            item: dict[str, Any] = {"_id": doc_id, "_source": source}
            if routing is not None:
                item["routing"] = routing
            wanted.append(item)
        path = _path(index, "_mget")
        body = self._request("POST", path, body={"docs": wanted})
        return parse_mget(body, index, [d for d, _ in docs], f"POST {path}", self._scrub)

    # -- reindex and tasks ------------------------------------------------------------------

    def start_reindex(self, request: ReindexRequest) -> str:
        params = {"wait_for_completion": "false", "slices": str(request.slices)}
        if request.requests_per_second is not None:
            params["requests_per_second"] = _number(request.requests_per_second)
        body = self._request(
            "POST",
            "/_reindex",
            params=params,
            body=request.body(),
            headers={OPAQUE_ID_HEADER: request.opaque_id},
            retry=False,
        )
        task = body.get("task") if isinstance(body, Mapping) else None
        if not task:
            raise EngineError(f"POST /_reindex answered without a task ID: {one_line(body)}")
        return str(task)

    def get_task(self, task_id: str) -> TaskStatus | None:
        """None when the engine does not know the task (404: it is not running and has no
        stored result). A finished task started with wait_for_completion=false keeps its
        result in the ``.tasks`` index, so it is found with ``completed=True``."""
        try:
            body = self._request("GET", _path("_tasks", task_id))
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        children = None
        if not body.get("completed") and is_sliced(body.get("task") or {}):
            children = self._slice_progress(task_id)
        return parse_task(body, task_id, children)

    def _slice_progress(self, task_id: str) -> Any:
        """The running slices of a sliced copy (``GET _tasks?parent_task_id=``), for its
        progress; None when the engine does not answer (best effort, but for an
        unreachable engine)."""
        try:
            return self._request(
                "GET",
                "/_tasks",
                params={"parent_task_id": task_id, "actions": "*reindex", "detailed": "true"},
            )
        except EngineError as exc:
            if isinstance(exc, EngineUnreachable):
                raise
            return None

    def list_reindex_tasks(self, opaque_id: str | None = None) -> list[TaskStatus]:
        body = self._request("GET", "/_tasks", params={"actions": "*reindex", "detailed": "true"})
        return parse_task_list(body, opaque_id)

    def cancel_task(self, task_id: str) -> None:
        """Ask the task to stop (it stops at its next batch); TaskNotFound if unknown."""
        self._task_action(task_id, "POST", _path("_tasks", task_id, "_cancel"))

    def rethrottle(self, task_id: str, requests_per_second: float) -> None:
        """Change a running reindex's throttle; <= 0 or infinity means unthrottled."""
        rps = requests_per_second
        value = "-1" if rps <= 0 or rps == float("inf") else _number(rps)
        self._task_action(
            task_id,
            "POST",
            _path("_reindex", task_id, "_rethrottle"),
            params={"requests_per_second": value},
        )

    def _task_action(
        self, task_id: str, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> None:
        try:
            body = self._request(method, path, params=params)
        except EngineError as exc:
            if exc.status == 404:
                raise TaskNotFound(task_id) from exc
            raise
        raise_task_action_failure(body, task_id, f"{method} {path}", self._scrub)

    def delete_task_result(self, task_id: str) -> bool:
        """The document of the ``.tasks`` system index (Elasticsearch has no delete-task
        API; 8.x restricts system indices and may refuse: EngineError). OpenSearch asks
        its own API first (see its adapter)."""
        try:
            with warnings.catch_warnings():
                # Expected, and said in the README: "this request accesses system indices"
                warnings.filterwarnings("ignore", message=".*system ind")
                body = self._request("DELETE", _path(".tasks", "_doc", task_id))
        except IndexNotFound:
            return False  # no task result was ever stored
        except EngineError as exc:
            if exc.status == 404:
                return False
            raise
        return body.get("result") == "deleted"

    # -- lease --------------------------------------------------------------------------------

    def get_lease(self, key: str) -> StoredLease | None:
        try:  # a GET by ID is realtime: no refresh needed to see the latest write
            body = self._request("GET", _path(LEASE_INDEX, "_doc", key))
        except EngineError as exc:
            if exc.status == 404:  # no such document, or no lease index yet
                return None
            raise
        if not body.get("found"):
            return None
        return StoredLease(dict(body["_source"]), int(body["_seq_no"]), int(body["_primary_term"]))

    def _ensure_lease_index(self) -> None:
        """Create the hidden lease index on first use (another process may race us)."""
        if self.index_exists(LEASE_INDEX):
            return
        try:
            self.create_index(LEASE_INDEX, LEASE_INDEX_SETTINGS, LEASE_INDEX_MAPPINGS)
        except EngineError as exc:
            if "already_exists" not in exc.message:
                raise

    def put_lease(
        self,
        key: str,
        doc: Mapping[str, Any],
        *,
        seq_no: int | None = None,
        primary_term: int | None = None,
    ) -> StoredLease:
        if seq_no is None:
            self._ensure_lease_index()
            path, params = _path(LEASE_INDEX, "_create", key), None
        else:
            path = _path(LEASE_INDEX, "_doc", key)
            params = {"if_seq_no": str(seq_no), "if_primary_term": str(primary_term)}
        try:
            body = self._request("PUT", path, params=params, body=dict(doc))
        except EngineError as exc:
            if exc.status == 409:
                raise LeaseConflict(key) from exc
            raise
        return StoredLease(dict(doc), int(body["_seq_no"]), int(body["_primary_term"]))

    def delete_lease(self, key: str, seq_no: int, primary_term: int) -> None:
        params = {"if_seq_no": str(seq_no), "if_primary_term": str(primary_term)}
        try:
            self._request("DELETE", _path(LEASE_INDEX, "_doc", key), params=params)
        except EngineError as exc:
            if exc.status == 409:
                raise LeaseConflict(key) from exc
            if exc.status != 404:  # already gone
                raise

    # -- ingest pipelines -----------------------------------------------------------------

    def pipeline_exists(self, name: str) -> bool:
        try:
            body = self._request("GET", _path("_ingest", "pipeline", name))
        except EngineError as exc:
            if exc.status == 404:  # both engines answer {} with a 404
                return False
            raise
        return name in body

    # -- OpenSearch security: a privilege probed by a request that can change nothing ------

    def privilege_refusal(
        self, action: str, method: str, path: str, body: Any = None
    ) -> str | None:
        try:
            self._request(method, path, body=body, retry=False)
        except EngineError as exc:
            if exc.status == 403 and "security_exception" in exc.message:
                found = _REFUSED_ACTION.search(exc.message)
                return found.group(1) if found else action
            if exc.status == 401:
                raise
        return None

    # -- another cluster as the source ------------------------------------------------------

    def reindex_now(self, body: Mapping[str, Any]) -> dict[str, Any]:
        answer = self._request(
            "POST",
            "/_reindex",
            params={"wait_for_completion": "true"},
            body=dict(body),
            retry=False,
        )
        return dict(answer) if isinstance(answer, Mapping) else {}
