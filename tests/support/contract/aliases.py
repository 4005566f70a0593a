"""The alias APIs: the indices behind an alias, an index's aliases, atomic actions."""

from __future__ import annotations

import copy
from collections.abc import Mapping

from reindex_fsm.errors import IndexNotFound

from .wire import Answer, Call, Family, Route, Unsupported


class AliasApi(Family):
    """GET _alias/{name}, GET {index}/_alias, POST _aliases."""

    def alias_routes(self) -> list[Route]:
        return [
            ("GET", ("_alias", "{name}"), self._get_alias),
            ("GET", ("{index}", "_alias"), self._get_index_aliases),
            ("POST", ("_aliases",), self._update_aliases),
        ]

    def _get_alias(self, call: Call) -> Answer:
        name = call.params["name"]
        found = self.fake.get_alias(name)
        if not found:
            return 404, {"error": f"alias [{name}] missing", "status": 404}
        return 200, {index: {"aliases": aliases} for index, aliases in found.items()}

    def _get_index_aliases(self, call: Call) -> Answer:
        index = call.params["index"]
        matching = self._matching(index)
        if matching is not None:
            return 200, {
                i: {"aliases": copy.deepcopy(self.fake.indices[i].aliases)} for i in matching
            }
        try:
            return 200, {index: {"aliases": self.fake.get_index_aliases(index)}}
        except IndexNotFound as exc:  # an alias: the aliases of the indices it is on
            return 200, {
                i: {"aliases": copy.deepcopy(self.fake.indices[i].aliases)}
                for i in self._alias_targets(index, exc)
            }

    def _update_aliases(self, call: Call) -> Answer:
        actions = self._body(call).get("actions")
        if not isinstance(actions, list) or not all(
            isinstance(a, Mapping) and len(a) == 1 and next(iter(a)) in ("add", "remove")
            for a in actions
        ):
            raise Unsupported(f"_aliases actions {actions!r} (only single add/remove actions)")
        self.fake.update_aliases([dict(a) for a in actions])
        return 200, {"acknowledged": True}
