"""Indices and aliases on the fake: lookups, creation and settings, write blocks,
refresh and count, atomic alias actions, deletion, listing by pattern, sequence numbers."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from ...engine.base import IndexDefinition, IndexSummary
from ...errors import EngineError, IndexNotFound
from .copying import clone
from .state import Docs, FakeCore, FakeIndex


class FakeIndices(FakeCore):
    # -- aliases ------------------------------------------------------------------
    def get_alias(self, alias: str) -> dict[str, dict[str, dict[str, Any]]]:
        self._call("get_alias", alias)
        if "*" in alias:  # a pattern, as GET _alias/<pattern>: each index's matching aliases
            found = {
                name: {a: dict(p) for a, p in idx.aliases.items() if fnmatch.fnmatchcase(a, alias)}
                for name, idx in self.indices.items()
            }
            return {name: aliases for name, aliases in found.items() if aliases}
        return {
            name: {alias: dict(idx.aliases[alias])}
            for name, idx in self.indices.items()
            if alias in idx.aliases
        }

    def get_index_aliases(self, index: str) -> dict[str, dict[str, Any]]:
        self._call("get_index_aliases", index)
        return {k: dict(v) for k, v in self._index(index).aliases.items()}

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        self._call("update_aliases", len(actions))
        staged = {name: dict(idx.aliases) for name, idx in self.indices.items()}
        for action in actions:  # validate and apply on a copy: all or nothing
            ((kind, spec),) = action.items()
            if spec["index"] not in staged:
                raise IndexNotFound(spec["index"])
            aliases = staged[spec["index"]]
            if kind == "add":
                props = {k: v for k, v in spec.items() if k not in ("index", "alias")}
                aliases[spec["alias"]] = props
            elif kind == "remove":
                if spec["alias"] not in aliases:
                    if spec.get("must_exist"):
                        raise EngineError(
                            f"aliases_not_found_exception: [{spec['alias']}] missing", status=404
                        )
                    continue
                del aliases[spec["alias"]]
            else:
                raise EngineError(f"unknown alias action {kind}", status=400)
        for name, aliases in staged.items():
            self.indices[name].aliases = aliases

    # -- indices ------------------------------------------------------------------
    def index_exists(self, index: str) -> bool:
        self._call("index_exists", index)
        return index in self.indices

    def get_index(self, index: str) -> IndexDefinition:
        self._call("get_index", index)
        idx = self._index(index)
        return IndexDefinition(clone(idx.settings), clone(idx.mappings))

    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None:
        self._call("create_index", index)
        if index in self.indices or any(index in i.aliases for i in self.indices.values()):
            raise EngineError(
                f"resource_already_exists_exception: index [{index}] already exists", status=400
            )
        stored = {k: v for k, v in settings.items()}
        stored.setdefault("index.number_of_shards", "1")
        stored.setdefault("index.number_of_replicas", "1")
        stored.update(
            {"index.uuid": f"uuid-{index}-{next(self._uuids)}", "index.provided_name": index}
        )
        stored.setdefault("index.creation_date", str(1_700_000_000_000 + next(self._created)))
        self.indices[index] = FakeIndex(settings=stored, mappings=clone(dict(mappings)))

    def put_settings(self, index: str, settings: Mapping[str, Any]) -> None:
        self._call("put_settings", index)
        stored = self._index(index).settings
        for key, value in settings.items():
            if value is None:  # null resets a setting to its default
                stored.pop(key, None)
            else:
                stored[key] = value

    def refresh(self, index: str) -> None:
        self._call("refresh", index)
        self._index(index)

    def count(self, index: str) -> int:
        self._call("count", index)
        return len(self._index(index).docs)

    def delete_index(self, index: str) -> None:
        self._call("delete_index", index)
        self._index(index)
        del self.indices[index]

    def describe_indices(self, pattern: str) -> list[IndexSummary]:
        self._call("describe_indices", pattern)
        found = [
            IndexSummary(
                name=name,
                created_ms=int(idx.settings.get("index.creation_date", 0)),
                open=not idx.closed,
                aliases=tuple(sorted(idx.aliases)),
                meta=clone(idx.mappings.get("_meta") or {}),
            )
            for name, idx in self.indices.items()
            if fnmatch.fnmatchcase(name, pattern) and not name.startswith(".")
        ]
        return sorted(found, key=lambda i: (i.created_ms, i.name))

    def max_seq_nos(self, index: str) -> dict[str, int]:
        self._call("max_seq_nos", index)
        docs = self._index(index).docs
        return {"0": docs.seq_no if isinstance(docs, Docs) else -1}

    # -- write blocks -------------------------------------------------------------
    def add_write_block(self, index: str) -> None:
        self._call("add_write_block", index)
        self._index(index).settings["index.blocks.write"] = "true"

    def remove_write_block(self, index: str) -> None:
        self._call("remove_write_block", index)
        self._index(index).settings.pop("index.blocks.write", None)
