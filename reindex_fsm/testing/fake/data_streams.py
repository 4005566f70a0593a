"""Data streams on the fake: a stream and its hidden backing indices, an alias whose
members are data streams (as Elasticsearch 7.14+ allows; OpenSearch refuses aliases on
data streams), and what a name is to them (``data_stream_use``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...engine.base import DataStreamUse
from .indices import FakeIndices


class FakeDataStreams(FakeIndices):
    # -- state ------------------------------------------------------------------------
    @property
    def data_streams(self) -> dict[str, list[str]]:
        """Each data stream's backing indices, oldest first (the last one takes writes)."""
        return self.__dict__.setdefault("_data_streams", {})

    @property
    def data_stream_aliases(self) -> dict[str, list[str]]:
        """Aliases over data streams: alias -> its member streams."""
        return self.__dict__.setdefault("_data_stream_aliases", {})

    # -- test controls ------------------------------------------------------------------
    def add_data_stream(
        self,
        name: str,
        docs: Mapping[str, dict[str, Any]] | None = None,
        *,
        generations: int = 1,
    ) -> list[str]:
        """A data stream ``name`` with ``generations`` hidden backing indices named as
        OpenSearch names them (``.ds-<name>-000001``); ``docs`` go to the write index."""
        backing = [f".ds-{name}-{n:06d}" for n in range(1, generations + 1)]
        mappings = {"properties": {"@timestamp": {"type": "date"}}}
        for index in backing:
            self.add_index(
                index,
                docs if index == backing[-1] else None,
                settings={"index.hidden": "true"},
                mappings=mappings,
            )
        self.data_streams[name] = backing
        return backing

    def add_data_stream_alias(self, alias: str, streams: Iterable[str]) -> None:
        self.data_stream_aliases[alias] = list(streams)

    def stream_of(self, index: str) -> str | None:
        """The data stream whose backing index ``index`` is (no engine call)."""
        return next((s for s, backing in self.data_streams.items() if index in backing), None)

    # -- Engine protocol ----------------------------------------------------------------
    def get_alias(self, alias: str) -> dict[str, dict[str, dict[str, Any]]]:
        """Elasticsearch's ``GET _alias/<alias>`` lists an alias's data streams by name."""
        found = super().get_alias(alias)
        for stream in self.data_stream_aliases.get(alias, ()):
            found[stream] = {alias: {}}
        return found

    def data_stream_use(self, name: str) -> DataStreamUse | None:
        self._call("data_stream_use", name)
        if name in self.data_streams:
            return DataStreamUse("data_stream", name, (name,), tuple(self.data_streams[name]))
        stream = self.stream_of(name)
        if stream is not None:
            return DataStreamUse("backing_index", name, (stream,))
        members = self.data_stream_aliases.get(name)
        if members:
            backing = tuple(i for s in sorted(members) for i in self.data_streams.get(s, ()))
            return DataStreamUse("alias", name, tuple(sorted(members)), backing)
        return None
