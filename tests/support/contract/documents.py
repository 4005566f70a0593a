"""The document APIs: bulk (one fake call per item), mget, and the queries the
contract server evaluates itself (count, scroll)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reindex_fsm.errors import IndexNotFound

from .wire import Answer, BadRequest, Call, Family, Route, Unsupported, index_not_found


class DocumentApi(Family):
    """POST [{index}/]_bulk, {index}/_mget."""

    def document_routes(self) -> list[Route]:
        return [
            ("POST|PUT", ("_bulk",), self._bulk),
            ("POST|PUT", ("{index}", "_bulk"), self._bulk),
            ("GET|POST", ("{index}", "_mget"), self._mget),
        ]

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
