"""The engine APIs of what lies around an index in a production cluster, read and written
by a run: the data streams a name may be (refused as an alias), lifecycle management
(Elasticsearch ILM, OpenSearch ISM: held back from the target and handed over at the
swap) and index templates (kept off the target while it is created). A mixin of
:class:`~reindex_fsm.engine.client.ClientEngine`, on its raw requests."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

from ..errors import EngineError, EngineUnreachable, IndexNotFound
from .base import DataStreamUse, IndexTemplate, LifecycleStatus
from .responses import one_line, parse_index_templates
from .transport import ClientTransport, request_path

__all__ = ["ClusterPolicies"]

_path = request_path


class ClusterPolicies(ClientTransport):
    """Data streams, lifecycle policies and index templates (see the module's docstring)."""

    # -- data streams -----------------------------------------------------------------------

    def data_stream_use(self, name: str) -> DataStreamUse | None:
        """From ``GET _resolve/index/<name>`` (Elasticsearch 7.9+, every OpenSearch): the
        data stream ``name`` is, the one whose backing index it is, or, for an alias, the
        data streams among its members (asked in a second resolve of those)."""
        body = self._resolve_index(name)
        streams = _resolved_streams(body)
        if name in streams:
            return DataStreamUse("data_stream", name, (name,), streams[name])
        for row in _rows(body, "indices"):
            if row.get("name") == name and row.get("data_stream"):
                return DataStreamUse("backing_index", name, (str(row["data_stream"]),))
        for row in _rows(body, "aliases"):
            members = [str(m) for m in row.get("indices") or ()][:_RESOLVE_MEMBERS]
            if row.get("name") != name or not members:
                continue
            inner = self._resolve_index(",".join(members))
            found = _resolved_streams(inner)
            found.update(
                (str(r["data_stream"]), ()) for r in _rows(inner, "indices") if r.get("data_stream")
            )
            if found:
                backing = tuple(i for s in sorted(found) for i in found[s])
                return DataStreamUse("alias", name, tuple(sorted(found)), backing)
        return None

    def _resolve_index(self, names: str) -> Mapping[str, Any]:
        """The resolve-index answer for ``names``; {} where the engine has no such API."""
        try:
            body = self._request(
                "GET", _path("_resolve", "index", names), params={"expand_wildcards": "all"}
            )
        except IndexNotFound:
            return {}
        except EngineError as exc:
            if isinstance(exc, EngineUnreachable) or exc.status not in (400, 404, 405):
                raise
            return {}  # no resolve-index API: no data streams either
        return body if isinstance(body, Mapping) else {}

    # -- lifecycle: Elasticsearch ILM and OpenSearch ISM ------------------------------------

    def _lifecycle_api(self, method: str, path: str, body: Any = None) -> Any:
        """One request of a lifecycle API; None when the engine has no such API (it
        answers "no handler found" with a 400, or a 404/405 that is no missing index)."""
        try:
            return self._request(method, path, body=body)
        except IndexNotFound:
            raise
        except EngineError as exc:
            no_api = exc.status in (404, 405) or (
                exc.status == 400 and "no handler found" in exc.message.lower()
            )
            if no_api:
                return None
            raise

    def ilm_explain(self, index: str) -> LifecycleStatus | None:
        body = self._lifecycle_api("GET", _path(index, "_ilm", "explain"))
        if body is None:
            return None
        entry = (body.get("indices") or {}).get(index)
        if entry is None:
            raise IndexNotFound(index)
        if not entry.get("managed"):
            return LifecycleStatus(policy=None)
        date = entry.get("lifecycle_date_millis")
        return LifecycleStatus(
            policy=entry.get("policy"),
            phase=entry.get("phase"),
            lifecycle_date_ms=int(date) if date is not None else None,
        )

    def ilm_remove_policy(self, index: str) -> None:
        path = _path(index, "_ilm", "remove")
        body = self._request("POST", path)
        if isinstance(body, Mapping) and body.get("has_failures"):
            raise EngineError(f"POST {path} failed: {one_line(str(dict(body)))}")

    def ism_explain(self, index: str) -> LifecycleStatus | None:
        body = self._lifecycle_api("GET", _path("_plugins", "_ism", "explain", index))
        if body is None:
            return None
        entry = body.get(index)
        if not isinstance(entry, Mapping):
            raise IndexNotFound(index)
        policy = entry.get("policy_id") or entry.get(
            "index.plugins.index_state_management.policy_id"
        )
        state = entry.get("state")
        return LifecycleStatus(
            policy=str(policy) if policy else None,
            phase=state.get("name") if isinstance(state, Mapping) else None,
        )

    def _ism_action(self, verb: str, index: str, body: Any = None) -> list[str]:
        """The reasons ISM gives for the indices it could not act on ([]: none)."""
        path = _path("_plugins", "_ism", verb, index)
        answer = self._request("POST", path, body=body)
        if not isinstance(answer, Mapping) or not answer.get("failures"):
            return []
        return [str(f.get("reason")) for f in answer.get("failed_indices") or []]

    def ism_add_policy(self, index: str, policy_id: str) -> None:
        failed = self._ism_action("add", index, {"policy_id": policy_id})
        if failed:
            raise EngineError(
                f"POST _plugins/_ism/add/{index} failed: {'; '.join(failed)}", status=400
            )

    def ism_remove_policy(self, index: str) -> None:
        failed = [
            reason
            for reason in self._ism_action("remove", index)
            if "does not have a policy" not in reason  # nothing to remove: done already
        ]
        if failed:
            raise EngineError(
                f"POST _plugins/_ism/remove/{index} failed: {'; '.join(failed)}", status=400
            )

    # -- index templates --------------------------------------------------------------------

    def index_templates(self) -> list[IndexTemplate]:
        found: list[IndexTemplate] = []
        kinds: tuple[tuple[Literal["composable", "legacy"], str], ...] = (
            ("composable", "/_index_template"),
            ("legacy", "/_template"),
        )
        for kind, path in kinds:
            try:
                body = self._request("GET", path, params={"flat_settings": "true"})
            except EngineError as exc:
                # none stored (404), or no such API on this engine (400 "no handler", 405)
                if exc.status in (400, 404, 405) and not isinstance(exc, IndexNotFound):
                    continue
                raise
            found.extend(parse_index_templates(kind, body))
        return found

    def simulate_index(self, index: str) -> dict[str, Any] | None:
        try:
            body = self._request("POST", _path("_index_template", "_simulate_index", index))
        except EngineError as exc:
            # an engine without the API: "no handler found for uri" (400), or 404/405
            unknown = exc.status == 405 or (
                exc.status in (400, 404) and "no handler" in exc.message.lower()
            )
            if unknown and not isinstance(exc, IndexNotFound):
                return None
            raise
        template = body.get("template") if isinstance(body, Mapping) else None
        return dict(template or {})

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        with warnings.catch_warnings():
            # Expected: the run's own template outranks the legacy ones matching its name
            warnings.filterwarnings("ignore", message=".*matching patterns from existing older")
            self._request("PUT", _path("_index_template", name), body=dict(body))

    def delete_index_template(self, name: str) -> bool:
        try:
            self._request("DELETE", _path("_index_template", name))
        except EngineError as exc:
            if exc.status == 404:
                return False
            raise
        return True


_RESOLVE_MEMBERS = 100  # an alias's members asked about at most (one URL)


def _rows(body: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [r for r in body.get(key) or () if isinstance(r, Mapping)]


def _resolved_streams(body: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {
        str(r.get("name")): tuple(str(i) for i in r.get("backing_indices") or ())
        for r in _rows(body, "data_streams")
    }
