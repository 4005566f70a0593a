"""Documents on the fake: bulk writes, a client's writes through an alias, scans,
searches (match_all, ids, a seeded random order, search_after), points in time, mget."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ...errors import EngineError
from .copying import clone
from .state import FakeCore


class FakeDocuments(FakeCore):
    def bulk(self, actions: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        self._call("bulk")
        ok, errors = 0, []
        for action in actions:
            idx = self._index(action["_index"])
            op = action.get("_op_type", "index")
            if op == "delete":
                idx.docs.pop(action["_id"], None)
            elif op == "create" and action["_id"] in idx.docs:
                errors.append({"create": {"_id": action["_id"], "status": 409}})
                continue
            else:
                source = action["_source"]  # a dict, or JSON as the clients accept it
                idx.docs[action["_id"]] = (
                    json.loads(source) if isinstance(source, str | bytes) else clone(source)
                )
            ok += 1
        return ok, errors

    def write(self, index_or_alias: str, doc_id: str, source: dict[str, Any] | None) -> None:
        """A client's write through an alias (``source`` None: a delete), refused like a
        real engine's while the index has a write block. A test control: not recorded."""
        targets = [n for n, i in self.indices.items() if index_or_alias in i.aliases]
        name = targets[0] if targets else index_or_alias
        if self.write_blocked(name):
            raise EngineError(
                f"cluster_block_exception: index [{name}] blocked by: "
                "[FORBIDDEN/8/index write (api)];",
                status=403,
            )
        docs = self._index(name).docs
        if source is None:
            docs.pop(doc_id, None)
        else:
            docs[doc_id] = clone(source)

    def scan(
        self, index: str, query: Mapping[str, Any] | None = None, preserve_order: bool = False
    ) -> Iterator[dict[str, Any]]:
        self._call("scan", index)
        for doc_id, source in sorted(self._index(index).docs.items()):
            yield {"_index": index, "_id": doc_id, "_source": clone(source)}

    def search(self, index: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("search", index)
        pit = body.get("pit")
        if pit:
            if pit["id"] not in self.pits:
                raise EngineError("search_context_missing_exception: no such PIT", status=404)
            docs = list(self.pits[pit["id"]])
        else:
            docs = sorted(self._index(str(index)).docs.items())
        query = body.get("query") or {"match_all": {}}
        if "ids" in query:
            wanted = set(query["ids"]["values"])
            docs = [d for d in docs if d[0] in wanted]
        elif "function_score" in query:
            seed = str(query["function_score"].get("random_score", {}).get("seed", 0))
            docs.sort(key=lambda d: zlib.crc32(f"{seed}:{d[0]}".encode()))
        after = body.get("search_after")
        if after is not None:
            docs = [d for d in docs if d[0] > after[0]]
        hits = [
            {"_index": index, "_id": doc_id, "_source": clone(src), "sort": [doc_id]}
            for doc_id, src in docs[: int(body.get("size", 10))]
        ]
        return {"hits": {"hits": hits}, **({"pit_id": pit["id"]} if pit else {})}

    def open_pit(self, index: str, keep_alive: str) -> str | None:
        self._call("open_pit", index)
        if not self.pit_supported:
            return None
        pit_id = f"pit-{len(self.pits) + 1}-{index}"
        self.pits[pit_id] = sorted(clone(self._index(index).docs).items())
        return pit_id

    def close_pit(self, pit_id: str) -> None:
        self._call("close_pit", pit_id)
        self.pits.pop(pit_id, None)

    def mget(
        self, index: str, docs: Sequence[tuple[str, str | None]], source: bool = True
    ) -> dict[str, dict[str, Any] | None]:
        self._call("mget", index, len(docs))
        stored = self._index(index).docs
        return {
            doc_id: (clone(stored[doc_id]) if source else {}) if doc_id in stored else None
            for doc_id, _routing in docs
        }
