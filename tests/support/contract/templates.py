"""The index template APIs: composable (``_index_template``) and legacy (``_template``)
templates, and what a new index of a given name would get from them."""

from __future__ import annotations

import copy
from typing import Any

from reindex_fsm.engine.base import IndexTemplate

from .wire import Answer, ApiError, Call, Family, Route, nested_settings, setting_value


class TemplateApi(Family):
    """GET _index_template, GET _template, POST _index_template/_simulate_index/{name},
    PUT and DELETE _index_template/{name}."""

    def template_routes(self) -> list[Route]:
        return [
            ("GET", ("_index_template",), self._get_index_templates),
            ("GET", ("_template",), self._get_legacy_templates),
            ("POST", ("_index_template", "_simulate_index", "{name}"), self._simulate),
            ("PUT|POST", ("_index_template", "{name}"), self._put_index_template),
            ("DELETE", ("_index_template", "{name}"), self._delete_index_template),
        ]

    def _get_index_templates(self, call: Call) -> Answer:
        # the one recorded call of the adapter's two requests (GET _template follows)
        found = [t for t in self.fake.index_templates() if t.kind == "composable"]
        return 200, {
            "index_templates": [
                {"name": t.name, "index_template": self._spec(t, call)}
                for t in sorted(found, key=lambda t: t.name)
            ]
        }

    def _get_legacy_templates(self, call: Call) -> Answer:
        found = [
            self.fake.as_template("legacy", name, body)
            for name, body in self.fake.legacy_templates.items()
        ]
        return 200, {t.name: self._spec(t, call) for t in found}

    @staticmethod
    def _spec(t: IndexTemplate, call: Call) -> dict[str, Any]:
        """A template as the engines answer it: its settings flat with string values
        under ``flat_settings=true``, else nested."""
        flat = {k: setting_value(v) for k, v in t.settings.items()}
        settings = flat if call.query.get("flat_settings") == "true" else nested_settings(flat)
        body = {"settings": settings, "mappings": t.mappings, "aliases": t.aliases}
        spec: dict[str, Any] = {"index_patterns": list(t.index_patterns)}
        if t.kind == "legacy":
            return copy.deepcopy({"order": t.priority, **spec, **body})
        spec.update(priority=t.priority, template=body, composed_of=list(t.composed_of))
        if t.data_stream:
            spec["data_stream"] = {"timestamp_field": {"name": "@timestamp"}}
        if t.meta:
            spec["_meta"] = t.meta
        return copy.deepcopy(spec)

    def _simulate(self, call: Call) -> Answer:
        found = self.fake.simulate_index(call.params["name"])
        if found is None:
            raise ApiError(400, "illegal_argument_exception", "no handler found for uri")
        if not found:
            return 200, {}
        return 200, {"template": found, "overlapping": []}

    def _put_index_template(self, call: Call) -> Answer:
        self.fake.put_index_template(call.params["name"], self._body(call))
        return 200, {"acknowledged": True}

    def _delete_index_template(self, call: Call) -> Answer:
        name = call.params["name"]
        if not self.fake.delete_index_template(name):
            missing = f"index_template [{name}] missing"
            raise ApiError(404, "index_template_missing_exception", missing)
        return 200, {"acknowledged": True}
