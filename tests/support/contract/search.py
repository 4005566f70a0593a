"""The search APIs: searches (match_all, ids, a random_score sample) sorted and refused
as each flavor sorts and refuses, scrolls served from a context, and points in time on
each flavor's own endpoints (opaque base64 IDs wrapping the fake's own)."""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reindex_fsm.errors import EngineError, IndexNotFound

from .documents import matches
from .wire import (
    START_MILLIS,
    Answer,
    ApiError,
    BadRequest,
    Call,
    Family,
    Route,
    Unsupported,
    search_phase_error,
    seconds,
)

_SEARCH_KEYS = frozenset(
    {"query", "size", "sort", "pit", "search_after", "track_total_hits", "_source"}
)


@dataclass
class _Scroll:
    hits: list[dict[str, Any]]  # still to serve
    size: int
    total: int


class SearchApi(Family):
    """_search, _search/scroll, and the flavor's point-in-time endpoints."""

    _scrolls: dict[str, _Scroll]
    _pit_index: dict[str, str]  # the fake's PIT ID -> the index it is on

    def search_routes(self) -> list[Route]:
        if self.flavor == "elasticsearch":
            pit: list[Route] = [
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
            ("GET|POST", ("_search",), self._search),
            ("GET|POST", ("{index}", "_search"), self._search),
            ("GET|POST", ("_search", "scroll"), self._scroll),
            ("GET|POST", ("_search", "scroll", "{scroll_id}"), self._scroll),
            ("DELETE", ("_search", "scroll"), self._clear_scroll),
        ]

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
        size = page_size(call, body)
        hits = self.fake.search(concrete[0], {**_fake_body(query), "size": size})["hits"]
        docs = self.fake.indices[concrete[0]].docs
        total = sum(matches(_filter_of(query), doc_id, src) for doc_id, src in docs.items())
        return 200, self._answer(body, hits["hits"], keys, total, positions={})

    def _pit_search(self, call: Call, body: dict[str, Any]) -> Answer:
        pit = body["pit"]
        if not isinstance(pit, Mapping) or not isinstance(pit.get("id"), str):
            raise BadRequest(400, "parsing_exception", "[pit] needs an [id] string")
        if "keep_alive" in pit:
            seconds(str(pit["keep_alive"]))
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
            "size": page_size(call, body),
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
        size = page_size(call, body)
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

    def _open_pit(self, call: Call) -> Answer:
        index = call.params["index"]
        keep_alive = call.query.get("keep_alive")
        if not keep_alive:
            raise BadRequest(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [keep_alive] is not specified;",
            )
        seconds(keep_alive)
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


def page_size(call: Call, body: Mapping[str, Any]) -> int:
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
        raise BadRequest(400, "illegal_argument_exception", f"invalid id: [{rest_id}]")
    return raw.removeprefix("fake-pit:")
