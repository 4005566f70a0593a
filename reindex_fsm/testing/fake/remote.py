"""Another cluster as the source, on the fake: ``_reindex`` from remote (a fake cluster
registered by its ``host:port``, checked against this one's allowlist) and the probe
that copies no document. A document's ``_seq_no`` here is its place in its index's
insertion order (what a range of the copy selects by)."""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Mapping
from typing import Any

from ...engine.base import ReindexRequest
from ...errors import EngineError
from .copying import clone
from .state import FakeCore, FakeTask


class FakeRemote(FakeCore):
    # -- test controls --------------------------------------------------------
    # host:port patterns of reindex.remote.allowlist (None: the setting is unset)
    remote_allowlist: list[str] | None = None
    # the clusters a _reindex from remote reaches, by host:port
    remote_clusters: dict[str, Any]

    def connect_remote(self, host: str, other: Any) -> None:
        """Let a ``_reindex`` from remote with ``host`` (``host:port``) reach ``other``."""
        if not hasattr(self, "remote_clusters"):
            self.remote_clusters = {}
        self.remote_clusters[host] = other

    def _remote(self, remote: Mapping[str, Any]) -> Any:
        host = str(remote["host"]).split("://", 1)[-1].split("/", 1)[0]
        if not any(fnmatch.fnmatchcase(host, p) for p in self.remote_allowlist or []):
            raise EngineError(
                f"POST /_reindex failed (HTTP 400): illegal_argument_exception: [{host}] not "
                "allowlisted in reindex.remote.allowlist",
                status=400,
            )
        found = getattr(self, "remote_clusters", {}).get(host)
        if found is None:
            raise EngineError(f"POST /_reindex failed: cannot reach [{host}]", status=500)
        return found

    @staticmethod
    def _in_range(position: int, query: Mapping[str, Any]) -> bool:
        bounds = (query.get("range") or {}).get("_seq_no")
        if bounds is None:  # the probe's {"ids": {"values": []}} matches nothing
            return "match_all" in query
        return position >= bounds["gte"] and ("lt" not in bounds or position < bounds["lt"])

    # -- Engine protocol -----------------------------------------------------------
    def reindex_now(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("reindex_now", body["dest"]["index"])
        source = body["source"]
        other = self._remote(source["remote"])
        other._index(source["index"])  # a missing index: the remote search fails
        return {"total": 0, "created": 0, "updated": 0, "failures": []}

    def start_reindex(self, request: ReindexRequest) -> str:
        source = request.body()["source"]
        if "remote" not in source:
            return super().start_reindex(request)  # type: ignore[misc]
        self._call("start_reindex", request.source, request.dest, request.op_type)
        other = self._remote(source["remote"])
        docs = other._index(source["index"]).docs
        query = dict(source.get("query") or {"match_all": {}})
        chosen = [k for i, k in enumerate(docs) if self._in_range(i, query)]
        dest = self._index(request.dest)
        task_id = f"fake-node:remote-{next(_remote_ids)}"
        task = FakeTask(
            task_id=task_id,
            request=request,
            pending=[],
            script=self.next_task_scripts.pop(0) if self.next_task_scripts else self.task_script,
            total=len(chosen),
        )
        for key in chosen:  # copied at once; the task completes at its first poll
            if key in dest.docs:
                task.updated += 1
            else:
                task.created += 1
            dest.docs[key] = clone(docs[key])
        self.tasks[task_id] = task
        return task_id


_remote_ids = itertools.count(1)
