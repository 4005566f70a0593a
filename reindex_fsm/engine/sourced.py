"""The engine a run sees when its source is on another cluster (``--source-url``;
planned by reindex_fsm.remote): calls about the run's source index go to the source
cluster, everything else to the run's own (target) cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Engine


class SourcedEngine:
    """The engine a run with a source on another cluster sees: calls about the source
    index go to the source cluster, the rest to the run's own (target) cluster.

    ``source_engine`` and ``target_engine`` are there for the steps that must say which
    (the remote copy, the swap on the target cluster)."""

    # Methods whose first argument is an index name.
    _BY_INDEX = frozenset(
        {
            "index_exists",
            "get_index",
            "put_settings",
            "refresh",
            "count",
            "index_status",
            "max_seq_nos",
            "get_index_aliases",
            "add_write_block",
            "remove_write_block",
            "scan",
            "search",
            "open_pit",
            "mget",
            "ilm_explain",
            "ism_explain",
        }
    )

    def __init__(
        self,
        target: Engine,
        source: Engine,
        source_index: str,
        auth: Mapping[str, Any] | None = None,
    ) -> None:
        self.target_engine = target
        self.source_engine = source
        self.source_index = source_index
        self.remote_auth = dict(auth or {})
        self._source_pits: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target_engine, name)
        if name not in self._BY_INDEX:
            return attr

        def routed(index: Any = None, *args: Any, **kwargs: Any) -> Any:
            if name == "search" and index is None:  # a point-in-time search: whose PIT
                body = args[0] if args else kwargs.get("body") or {}
                pit = (body.get("pit") or {}).get("id")
                if pit not in self._source_pits:
                    return attr(index, *args, **kwargs)
                answer = getattr(self.source_engine, name)(index, *args, **kwargs)
                if answer.get("pit_id"):
                    self._source_pits.add(answer["pit_id"])
                return answer
            if index != self.source_index:
                return attr(index, *args, **kwargs)
            answer = getattr(self.source_engine, name)(index, *args, **kwargs)
            if name == "open_pit" and answer:
                self._source_pits.add(answer)
            return answer

        return routed

    def close_pit(self, pit_id: str) -> None:
        if pit_id in self._source_pits:
            self._source_pits.discard(pit_id)
            self.source_engine.close_pit(pit_id)
        else:
            self.target_engine.close_pit(pit_id)

    def close(self) -> None:
        for engine in (self.source_engine, self.target_engine):
            closing = getattr(engine, "close", None)
            if closing is not None:
                closing()


def source_of(engine: Any) -> Engine:
    """The source cluster's engine of a run's engine (itself for a local source)."""
    found = getattr(engine, "source_engine", None)
    return engine if found is None else found


def remote_auth_of(engine: Any) -> dict[str, Any]:
    """The credentials a ``_reindex`` from remote sends the source ({} for none)."""
    return dict(getattr(engine, "remote_auth", None) or {})
