"""The index APIs: settings (flat ``index.*`` keys, string values) and mappings, create
and delete, write blocks, refresh and count, _cat/indices, shard-level stats."""

from __future__ import annotations

import copy
import fnmatch

from reindex_fsm.errors import IndexNotFound

from .documents import matches
from .wire import (
    Answer,
    Call,
    Family,
    Route,
    Unsupported,
    flat_settings,
    index_not_found,
    nested_settings,
)


class IndexApi(Family):
    """PUT/DELETE {index}, _settings, _mapping, _block, _refresh, _count, _cat/indices, _stats."""

    def index_routes(self) -> list[Route]:
        return [
            ("GET", ("{index}", "_settings"), self._get_settings),
            ("GET", ("{index}", "_settings", "{name}"), self._get_settings),
            ("PUT", ("{index}", "_settings"), self._put_settings),
            ("GET", ("{index}", "_mapping"), self._get_mapping),
            ("PUT", ("{index}",), self._create_index),
            ("DELETE", ("{index}",), self._delete_index),
            ("PUT", ("{index}", "_block", "{block}"), self._add_block),
            ("POST", ("{index}", "_refresh"), self._refresh),
            ("GET|POST", ("{index}", "_count"), self._count),
            ("GET", ("_cat", "indices", "{index}"), self._cat_indices),
            ("GET", ("{index}", "_stats", "{metric}"), self._shard_stats),
        ]

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

    def _put_settings(self, call: Call) -> Answer:
        settings = flat_settings(self._body(call))
        if settings == {"index.blocks.write": None}:  # how the adapters lift a write block
            self.fake.remove_write_block(call.params["index"])
            return 200, {"acknowledged": True}
        self.fake.put_settings(call.params["index"], settings)
        return 200, {"acknowledged": True}

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

    def _delete_index(self, call: Call) -> Answer:
        self.fake.delete_index(call.params["index"])
        return 200, {"acknowledged": True}

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
