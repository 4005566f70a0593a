"""The index template APIs: composable (``_index_template``) and legacy (``_template``)
templates, and what a new index of a given name would get from them."""

from __future__ import annotations

import copy

from .wire import Answer, ApiError, Call, Family, Route


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
        self.fake.index_templates()  # the one recorded call of the adapter's two requests
        return 200, {
            "index_templates": [
                {"name": name, "index_template": copy.deepcopy(body)}
                for name, body in sorted(self.fake.composable_templates.items())
            ]
        }

    def _get_legacy_templates(self, call: Call) -> Answer:
        return 200, copy.deepcopy(self.fake.legacy_templates)

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
