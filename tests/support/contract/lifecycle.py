"""The lifecycle APIs: Elasticsearch ILM (explain, remove) and the OpenSearch ISM plugin
(explain, add, remove), answered in each engine's own shapes from the fake's state.

ILM (Elasticsearch only; the fake's ``ilm_available``):

* ``GET {index}/_ilm/explain``: ``{"indices": {name: {"index", "managed": false}}}`` or,
  managed, with ``policy``, ``phase``, ``lifecycle_date_millis`` and ``age`` (8.x and
  later add ``index_creation_date_millis`` and ``time_since_index_creation``);
* ``POST {index}/_ilm/remove``: ``{"has_failures": false, "failed_indexes": []}``.

ISM (OpenSearch only; the fake's ``ism_available``):

* ``GET _plugins/_ism/explain/{index}``: per index its ``index.plugins.index_state_management
  .policy_id`` and legacy ``index.opendistro...policy_id`` (null when unmanaged),
  ``policy_id``, ``enabled``, ``state`` once initialised; ``total_managed_indices``;
* ``POST _plugins/_ism/add/{index}`` ``{"policy_id"}`` and ``POST _plugins/_ism/remove/{index}``:
  a 200 ``{"updated_indices", "failures", "failed_indices": [{index_name, index_uuid,
  reason}]}``: an index already managed (add) or not managed (remove) is a failed index,
  not an error status; an unknown policy is a 404.

An engine without the API (ILM off, no ISM plugin, the other flavor) answers as OpenSearch
2.19 without the plugin does: a 400 ``{"error": "no handler found for uri [...] and method
[...]"}`` whose ``error`` is a string. A missing index is a 404 index_not_found_exception.
"""

from __future__ import annotations

from typing import Any

from reindex_fsm.errors import IndexNotFound

from .wire import Answer, ApiError, Call, Family, Route

ISM_POLICY_KEYS = (
    "index.plugins.index_state_management.policy_id",
    "index.opendistro.index_state_management.policy_id",
)


class LifecycleApi(Family):
    """{index}/_ilm/explain, {index}/_ilm/remove, _plugins/_ism/explain|add|remove/{index}."""

    def lifecycle_routes(self) -> list[Route]:
        return [
            ("GET", ("{index}", "_ilm", "explain"), self._ilm_explain),
            ("POST", ("{index}", "_ilm", "remove"), self._ilm_remove),
            ("GET", ("_plugins", "_ism", "explain", "{index}"), self._ism_explain),
            ("POST", ("_plugins", "_ism", "add", "{index}"), self._ism_add),
            ("POST", ("_plugins", "_ism", "remove", "{index}"), self._ism_remove),
        ]

    def _no_handler(self, call: Call) -> Answer:
        uri = "/" + "/".join(call.path)
        return 400, {"error": f"no handler found for uri [{uri}] and method [{call.method}]"}

    def _has_ilm(self) -> bool:
        return self.flavor == "elasticsearch" and self.fake.ilm_available

    def _has_ism(self) -> bool:
        return self.flavor == "opensearch" and self.fake.ism_available

    # -- ILM ---------------------------------------------------------------------------
    def _ilm_explain(self, call: Call) -> Answer:
        index = call.params["index"]
        status = self.fake.ilm_explain(index)  # recorded: the adapter asked
        if not self._has_ilm():
            return self._no_handler(call)
        entry: dict[str, Any] = {"index": index, "managed": False}
        if status is not None and status.managed:
            created = int(self.fake.indices[index].settings.get("index.creation_date", 0))
            entry.update(
                managed=True,
                policy=status.policy,
                lifecycle_date_millis=status.lifecycle_date_ms,
                age="1d",
                phase=status.phase,
                phase_time_millis=status.lifecycle_date_ms,
                action="complete",
                step="complete",
            )
            if int(self.version.split(".")[0]) >= 8:
                entry.update(index_creation_date_millis=created, time_since_index_creation="1d")
        return 200, {"indices": {index: entry}}

    def _ilm_remove(self, call: Call) -> Answer:
        if not self._has_ilm():
            return self._no_handler(call)
        self.fake.ilm_remove_policy(call.params["index"])
        return 200, {"has_failures": False, "failed_indexes": []}

    # -- ISM ---------------------------------------------------------------------------
    def _ism_index(self, call: Call) -> str:
        index = call.params["index"]
        if index not in self.fake.indices:
            raise IndexNotFound(index)
        return index

    def _ism_explain(self, call: Call) -> Answer:
        index = call.params["index"]
        status = self.fake.ism_explain(index)  # recorded: the adapter asked
        if not self._has_ism():
            return self._no_handler(call)
        entry: dict[str, Any] = {key: None for key in ISM_POLICY_KEYS}
        entry["enabled"] = None
        if status is not None and status.managed:
            entry = {key: status.policy for key in ISM_POLICY_KEYS}
            entry.update(
                index=index,
                index_uuid=self.fake.indices[index].settings["index.uuid"],
                policy_id=status.policy,
                enabled=True,
            )
            if status.phase != "init":  # initialised by the plugin's job: its state
                entry["state"] = {"name": status.phase, "start_time": 1_700_000_000_000}
        return 200, {index: entry, "total_managed_indices": int(bool(status and status.managed))}

    def _failed(self, index: str, reason: str) -> Answer:
        uuid = self.fake.indices[index].settings["index.uuid"]
        return 200, {
            "updated_indices": 0,
            "failures": True,
            "failed_indices": [{"index_name": index, "index_uuid": uuid, "reason": reason}],
        }

    def _ism_add(self, call: Call) -> Answer:
        if not self._has_ism():
            return self._no_handler(call)
        index = self._ism_index(call)
        policy = self._body(call).get("policy_id")
        if not isinstance(policy, str):
            raise ApiError(400, "illegal_argument_exception", "Missing policy_id")
        if policy not in self.fake.ism_policies:
            raise ApiError(404, "status_exception", f"Could not find policy [{policy}]")
        if index in self.fake.ism_managed:
            return self._failed(
                index,
                "This index already has a policy, use the update policy API to update index "
                "policies",
            )
        self.fake.ism_add_policy(index, policy)
        return 200, {"updated_indices": 1, "failures": False, "failed_indices": []}

    def _ism_remove(self, call: Call) -> Answer:
        if not self._has_ism():
            return self._no_handler(call)
        index = self._ism_index(call)
        if index not in self.fake.ism_managed:
            return self._failed(index, "This index does not have a policy to remove")
        self.fake.ism_remove_policy(index)
        return 200, {"updated_indices": 1, "failures": False, "failed_indices": []}
