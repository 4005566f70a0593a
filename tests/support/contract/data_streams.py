"""The resolve-index API, as far as data streams go: what each name of a list is (a data
stream with its backing indices, an index, one of a stream's backing indices, an alias
with its members). Elasticsearch lists an alias over data streams with the streams as its
members; OpenSearch has no such aliases. A name that is none of these is left out."""

from __future__ import annotations

from typing import Any

from .wire import Answer, Call, Family, Route


class DataStreamApi(Family):
    """GET _resolve/index/{names}."""

    def data_stream_routes(self) -> list[Route]:
        return [("GET", ("_resolve", "index", "{names}"), self._resolve_index)]

    def _resolve_index(self, call: Call) -> Answer:
        names = call.params["names"]
        self.fake._call("data_stream_use", names)  # recorded (and faulted) as the fake's
        body: dict[str, list[dict[str, Any]]] = {"indices": [], "aliases": [], "data_streams": []}
        for name in names.split(","):
            if name in self.fake.data_streams:
                body["data_streams"].append(
                    {
                        "name": name,
                        "backing_indices": list(self.fake.data_streams[name]),
                        "timestamp_field": "@timestamp",
                    }
                )
            elif name in self.fake.indices:
                body["indices"].append(self._resolved_index(name))
            elif self.flavor == "elasticsearch" and name in self.fake.data_stream_aliases:
                members = self.fake.data_stream_aliases[name]
                body["aliases"].append({"name": name, "indices": list(members)})
            else:
                members = sorted(i for i, idx in self.fake.indices.items() if name in idx.aliases)
                if members:
                    body["aliases"].append({"name": name, "indices": members})
        return 200, body

    def _resolved_index(self, name: str) -> dict[str, Any]:
        index = self.fake.indices[name]
        hidden = str(index.settings.get("index.hidden")).lower() == "true"
        row: dict[str, Any] = {
            "name": name,
            "attributes": [*(["hidden"] if hidden else []), "closed" if index.closed else "open"],
        }
        if index.aliases:
            row["aliases"] = sorted(index.aliases)
        stream = self.fake.stream_of(name)
        if stream is not None:
            row["data_stream"] = stream
        return row
