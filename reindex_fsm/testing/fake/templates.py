"""Index templates on the fake: composable and legacy templates, and what they give a new
index, as the engines' MetadataCreateIndexService does.

The one composable template of highest priority whose patterns match the new index's
name applies (its ``data_stream`` refuses a plain index); legacy templates apply only
when no composable one matches, all that match, in ``order`` (higher wins). The create
request's own settings and mapped fields win over a template's; the template's aliases
are added. Two composable templates of the same priority with overlapping patterns are
refused, as the engines refuse them. Component templates are not modelled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...engine.base import IndexTemplate, index_settings
from ...errors import EngineError
from .copying import clone
from .indices import FakeIndices


def _matches(pattern: str, name: str) -> bool:
    """The engines' simple match: ``*`` is the only wildcard."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


def _overlap(a: str, b: str) -> bool:
    """Whether some name could match both patterns (close enough for tests: one matches
    the other taken literally, or both are wildcards on a common prefix)."""
    if _matches(a, b) or _matches(b, a):
        return True
    head_a, head_b = a.split("*")[0], b.split("*")[0]
    both = "*" in a and "*" in b
    return both and (head_a.startswith(head_b) or head_b.startswith(head_a))


def _flat(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as the engine stores them: flat, under ``index.``, values as strings."""
    return {key: str(value) for key, value in index_settings(settings).items()}


def _merge_mappings(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over``'s top-level keys and fields win; fields only in ``base`` stay."""
    merged = clone(dict(base))
    for key, value in over.items():
        if key == "properties" and isinstance(value, Mapping):
            merged.setdefault("properties", {}).update(clone(dict(value)))
        else:
            merged[key] = clone(value)
    return merged


class FakeTemplates(FakeIndices):
    """``_index_template`` and ``_template``; ``create_index`` applies them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.composable_templates: dict[str, dict[str, Any]] = {}  # name -> PUT body
        self.legacy_templates: dict[str, dict[str, Any]] = {}  # name -> PUT body
        self.templates_supported = True  # False: an engine without either API

    # -- test controls ------------------------------------------------------------
    def add_legacy_template(self, name: str, body: Mapping[str, Any]) -> None:
        """A legacy template, as ``PUT _template/<name>`` would store it (unrecorded)."""
        self.legacy_templates[name] = clone(dict(body))

    def add_composable_template(self, name: str, body: Mapping[str, Any]) -> None:
        """A composable template, checked as the engine checks it (unrecorded)."""
        self._check_priority(name, body)
        self.composable_templates[name] = clone(dict(body))

    # -- the Engine protocol ------------------------------------------------------
    def index_templates(self) -> list[IndexTemplate]:
        self._call("index_templates")
        if not self.templates_supported:
            return []
        found = [self.as_template("composable", n, b) for n, b in self.composable_templates.items()]
        found += [self.as_template("legacy", n, b) for n, b in self.legacy_templates.items()]
        return found

    def simulate_index(self, index: str) -> dict[str, Any] | None:
        self._call("simulate_index", index)
        if not self.templates_supported:
            return None
        winner = self._winner(index)
        if winner is None:
            return {}
        body = self.composable_templates[winner].get("template") or {}
        return {
            "settings": _flat(body.get("settings") or {}),
            "mappings": clone(body.get("mappings") or {}),
            "aliases": clone(body.get("aliases") or {}),
        }

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        self._call("put_index_template", name)
        if not self.templates_supported:
            raise EngineError("no handler found for uri [/_index_template]", status=400)
        self._check_priority(name, body)
        self.composable_templates[name] = clone(dict(body))

    def delete_index_template(self, name: str) -> bool:
        self._call("delete_index_template", name)
        return self.composable_templates.pop(name, None) is not None

    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None:
        added_settings: dict[str, Any] = {}
        added_mappings: dict[str, Any] = {}
        aliases: dict[str, Any] = {}
        winner = self._winner(index)
        if winner is not None:
            spec = self.composable_templates[winner]
            if spec.get("data_stream") is not None:
                self._call("create_index", index)
                raise EngineError(
                    f"illegal_argument_exception: cannot create index with name [{index}], "
                    f"because it matches with template [{winner}] that creates data streams "
                    "only, use create data stream api instead",
                    status=400,
                )
            bodies = [spec.get("template") or {}]
        else:
            legacy = [
                spec
                for spec in self.legacy_templates.values()
                if any(_matches(p, index) for p in self._patterns(spec))
            ]
            bodies = sorted(legacy, key=lambda spec: int(spec.get("order") or 0))
        for body in bodies:
            added_settings.update(_flat(body.get("settings") or {}))
            added_mappings = _merge_mappings(added_mappings, body.get("mappings") or {})
            aliases.update(clone(body.get("aliases") or {}))
        super().create_index(
            index, {**added_settings, **settings}, _merge_mappings(added_mappings, mappings)
        )
        self.indices[index].aliases.update(aliases)

    # -- how the engine chooses ---------------------------------------------------
    @staticmethod
    def _patterns(spec: Mapping[str, Any]) -> list[str]:
        patterns = spec.get("index_patterns") or []
        return [patterns] if isinstance(patterns, str) else list(patterns)

    def _winner(self, index: str) -> str | None:
        """The composable template a new index named ``index`` gets (highest priority)."""
        matching = [
            (int(spec.get("priority") or 0), name)
            for name, spec in self.composable_templates.items()
            if any(_matches(p, index) for p in self._patterns(spec))
        ]
        return max(matching)[1] if matching else None

    def _check_priority(self, name: str, body: Mapping[str, Any]) -> None:
        priority = int(body.get("priority") or 0)
        for other, spec in self.composable_templates.items():
            if other == name or int(spec.get("priority") or 0) != priority:
                continue
            if any(_overlap(a, b) for a in self._patterns(body) for b in self._patterns(spec)):
                raise EngineError(
                    f"illegal_argument_exception: index template [{name}] has index patterns "
                    f"{self._patterns(body)} matching patterns from existing templates "
                    f"[{other}] that have the same priority [{priority}], multiple index "
                    "templates may not match during index creation, please use a different "
                    "priority",
                    status=400,
                )

    def as_template(self, kind: str, name: str, spec: Mapping[str, Any]) -> IndexTemplate:
        """A stored template body as the Engine protocol returns it (settings flat)."""
        body = (spec.get("template") or {}) if kind == "composable" else spec
        return IndexTemplate(
            name=name,
            kind="composable" if kind == "composable" else "legacy",
            index_patterns=tuple(self._patterns(spec)),
            priority=int(spec.get("priority" if kind == "composable" else "order") or 0),
            settings=_flat(body.get("settings") or {}),
            mappings=clone(body.get("mappings") or {}),
            aliases=clone(body.get("aliases") or {}),
            composed_of=tuple(spec.get("composed_of") or ()),
            data_stream=spec.get("data_stream") is not None,
            meta=clone(spec.get("_meta") or {}),
        )
