"""The Engine protocol on the official Elasticsearch client (elasticsearch-py 8).

What both engines share lives in :class:`~reindex_fsm.engine.client.ClientEngine`; this
adapter holds what is Elasticsearch's own: its client, the point-in-time API at
``_pit``, the privilege check (``_security/user/_has_privileges``), and, from 9.5, the
reindex management API that follows a task across node shutdowns.

The client checks on its first request that the server is Elasticsearch (the
``X-Elastic-Product`` header); an OpenSearch or pre-7.14 server raises
:class:`~reindex_fsm.errors.UnsupportedEngine`, and ``GET /`` refuses anything older than 7.17
(:func:`~reindex_fsm.engine.responses.detect_flavor`). 7.17 accepts the client's
``compatible-with=8`` media type and answers as 8.x would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import ModuleType
from typing import Any, ClassVar

import elastic_transport
import elasticsearch
import elasticsearch.helpers
from elasticsearch import Elasticsearch

from ..errors import (
    EngineError,
    EngineUnreachable,
    ReindexFsmError,
    TaskNotFound,
    UnsupportedEngine,
)
from .base import PrivilegeCheck, TaskStatus
from .client import ClientEngine
from .responses import is_sliced, parse_task, raise_task_action_failure
from .transport import RETRY_ON_STATUS, request_path
from .urls import ClientConfig

__all__ = ["ElasticsearchEngine"]


class ElasticsearchEngine(ClientEngine):
    flavor = "elasticsearch"
    pit_path = ("_pit",)  # POST <index>/...: open a PIT
    pit_id_key = "id"
    helpers: ClassVar[ModuleType] = elasticsearch.helpers
    unreachable_errors = (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout)
    api_errors = (elastic_transport.ApiError,)
    client_errors = (
        elastic_transport.ApiError,
        elastic_transport.TransportError,
        elasticsearch.helpers.BulkIndexError,
        elasticsearch.helpers.ScanError,
    )

    def _make_client(self, config: ClientConfig, *, max_retries: int) -> Elasticsearch:
        auth: dict[str, Any] = {}
        if config.api_key:
            auth["api_key"] = config.api_key
        elif config.basic_auth:
            auth["basic_auth"] = config.basic_auth
        return Elasticsearch(
            hosts=[config.node_url],
            request_timeout=config.request_timeout,
            max_retries=max_retries,
            retry_on_timeout=True,
            retry_on_status=RETRY_ON_STATUS,
            **auth,
            **config.tls_options,
        )

    def _client_without_retries(self) -> Elasticsearch:
        return self._client.options(max_retries=0)

    def _send(
        self,
        client: Elasticsearch,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        headers: Mapping[str, str] | None,
    ) -> Any:
        # application/json is turned into the client's compatibility mimetype for us.
        request_headers = {"accept": "application/json"}
        if body is not None:
            request_headers["content-type"] = "application/json"
        request_headers.update(headers or {})
        response = client.perform_request(
            method, path, params=params or None, headers=request_headers, body=body
        )
        return response.body

    def _error_status_body(self, exc: BaseException) -> tuple[int | None, Any, str]:
        assert isinstance(exc, elastic_transport.ApiError)
        return exc.meta.status, exc.body, exc.message

    def _translate_special(self, exc: BaseException) -> ReindexFsmError | None:
        if isinstance(exc, elasticsearch.UnsupportedProductError):
            return UnsupportedEngine(
                f"the server at {self.url} is not a supported Elasticsearch: {exc.message}",
                hint="for OpenSearch use engine 'opensearch' (or 'auto')",
            )
        return None

    def _close_pit_body(self, pit_id: str) -> dict[str, Any]:
        return {self.pit_id_key: pit_id}

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        """``POST _security/user/_has_privileges``; None when security is off."""
        body = {
            "cluster": list(cluster),
            "index": [{"names": names, "privileges": privs} for names, privs in index],
        }
        try:
            answer = self._request("POST", "/_security/user/_has_privileges", body=body)
        except EngineError as exc:
            if isinstance(exc, EngineUnreachable) or exc.status in (401, 403):
                raise
            text = exc.message.lower()
            if exc.status in (400, 404, 405) or "security must be explicitly enabled" in text:
                return None  # security off (or no such API): nothing to check
            raise
        missing = [f"cluster:{p}" for p, held in (answer.get("cluster") or {}).items() if not held]
        for name, privileges in (answer.get("index") or {}).items():
            missing += [f"{name}:{p}" for p, held in privileges.items() if not held]
        return PrivilegeCheck(checked=True, user=answer.get("username"), missing=tuple(missing))

    # -- reindex management (Elasticsearch 9.5+): a task followed across relocations -------
    # A graceful shutdown of a node moves its reindex tasks to another node: the task
    # resumes there under a new task ID, and the Tasks API no longer answers for the
    # old one, which would look like a vanished task (and copy again). GET
    # _reindex/<id>, its _cancel and _rethrottle follow the task by the ID it was started
    # with, whichever node runs it now (monitor_reindex / manage_reindex privileges).

    # Set when the cluster refused the management API because a node is older (a rolling
    # upgrade to 9.5): the Tasks API serves from then on (no task relocates before 9.5).
    _management_refused = False

    @property
    def reindex_management(self) -> bool:
        """Whether the engine has the reindex management API: Elasticsearch 9.5+, every
        node of it."""
        if self._management_refused:
            return False
        return self.info().major_minor >= REINDEX_MANAGEMENT_SINCE

    def _management(
        self, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> Any | None:
        """One management request; None when the cluster answers that not every node has
        the endpoint yet (400 "endpoint not supported on all nodes in the cluster")."""
        try:
            return self._request(method, path, params=params)
        except EngineError as exc:
            if exc.status == 400 and "not supported on all nodes" in exc.message:
                self._management_refused = True
                return None
            raise

    def get_task(self, task_id: str) -> TaskStatus | None:
        """``GET _reindex/<id>`` from 9.5 (None on its 404: unknown, or its node left
        without a stored result); the Tasks API before."""
        if not self.reindex_management:
            return super().get_task(task_id)
        try:
            body = self._management("GET", request_path("_reindex", task_id))
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        if body is None:
            return super().get_task(task_id)
        children = None
        status = body.get("status") if isinstance(body, Mapping) else None
        if not body.get("completed") and is_sliced({"status": status}):
            children = self._slice_progress(task_id)  # of a task not relocated
        return parse_reindex_task(body, task_id, children)

    def list_reindex_tasks(self, opaque_id: str | None = None) -> list[TaskStatus]:
        """The Tasks API lists a run's tasks by their opaque ID (the management list has
        no headers); from 9.5 each is named by the ID it was started with, which a
        relocated task answers for in ``GET _reindex/<its id now>``."""
        found = super().list_reindex_tasks(opaque_id)
        if not self.reindex_management:
            return found
        named = []
        for status in found:
            try:
                body = self._management("GET", request_path("_reindex", status.task_id))
            except EngineError as exc:
                if exc.status == 404:  # finished (or gone) since it was listed
                    continue
                raise
            if body is None:
                return found
            named.append(replace(status, task_id=str(body.get("id") or status.task_id)))
        return named

    def cancel_task(self, task_id: str) -> None:
        """From 9.5 ``POST _reindex/<id>/_cancel`` (not waiting for it to stop); 404:
        the task is unknown or completed (TaskNotFound)."""
        if not self.reindex_management:
            return super().cancel_task(task_id)
        path = request_path("_reindex", task_id, "_cancel")
        try:
            body = self._management("POST", path, params={"wait_for_completion": "false"})
        except EngineError as exc:
            if exc.status == 404:
                raise TaskNotFound(task_id) from exc
            raise
        if body is None:
            return super().cancel_task(task_id)
        raise_task_action_failure(body, task_id, f"POST {path}", self._scrub)
        return None


REINDEX_MANAGEMENT_SINCE = (9, 5)


def parse_reindex_task(
    body: Mapping[str, Any], task_id: str, children: Mapping[str, Any] | None = None
) -> TaskStatus:
    """A ``GET _reindex/<id>`` body (Elasticsearch 9.5+: ``completed``, ``id``,
    ``description``, ``running_time_in_nanos``, ``cancelled``, ``status``, and once done
    ``response`` or ``error``) read as the Tasks API's: the same counts, failures, error,
    under ``task_id``, the ID it was asked by; ``children`` adds the running slices."""
    task = {
        "description": body.get("description"),
        "running_time_in_nanos": body.get("running_time_in_nanos"),
        "cancelled": body.get("cancelled"),
        "status": body.get("status"),
    }
    shaped = {key: body[key] for key in ("completed", "response", "error") if key in body}
    return parse_task({**shaped, "task": task}, task_id, children)
