"""The Engine protocol on the OpenSearch client (opensearch-py).

What both engines share lives in :class:`~reindex_fsm.engine.client.ClientEngine`; this
adapter holds what is OpenSearch's own: its client, the point-in-time API at
``_search/point_in_time``, the security plugin's ``authinfo`` in place of a privilege
check, and the delete-task API (3.9+).

opensearch-py has no per-request retry option, so the requests that must not be retried
(``start_reindex``) go through a second client built with ``max_retries=0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

import opensearchpy.exceptions
import opensearchpy.helpers
from opensearchpy import OpenSearch

from ..errors import EngineError, IndexNotFound
from .base import PrivilegeCheck
from .client import ClientEngine
from .transport import RETRY_ON_STATUS, request_path
from .urls import ClientConfig

__all__ = ["OpenSearchEngine"]


class OpenSearchEngine(ClientEngine):
    flavor = "opensearch"
    pit_path = ("_search", "point_in_time")  # POST <index>/...: open a PIT
    pit_id_key = "pit_id"
    helpers: ClassVar[ModuleType] = opensearchpy.helpers
    # ConnectionError covers ConnectionTimeout and SSLError too.
    unreachable_errors = (opensearchpy.exceptions.ConnectionError,)
    api_errors = (opensearchpy.exceptions.TransportError,)
    # Root of the client's and the helpers' exceptions (BulkIndexError, ScanError).
    client_errors = (opensearchpy.exceptions.OpenSearchException,)

    def _make_client(self, config: ClientConfig, *, max_retries: int) -> OpenSearch:
        auth: dict[str, Any] = {}
        if config.api_key:
            auth["headers"] = {"authorization": f"ApiKey {config.api_key}"}
        elif config.basic_auth:
            auth["http_auth"] = config.basic_auth
        return OpenSearch(
            hosts=[config.node_url],
            timeout=config.request_timeout,
            max_retries=max_retries,
            retry_on_timeout=True,
            retry_on_status=RETRY_ON_STATUS,
            **auth,
            **config.tls_options,
        )

    def _send(
        self,
        client: OpenSearch,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        headers: Mapping[str, str] | None,
    ) -> Any:
        return client.transport.perform_request(
            method, path, params=dict(params or {}), body=body, headers=dict(headers or {})
        )

    def _error_status_body(self, exc: BaseException) -> tuple[int | None, Any, str]:
        assert isinstance(exc, opensearchpy.exceptions.TransportError)
        status = exc.status_code if isinstance(exc.status_code, int) else None
        return status, exc.info, str(exc.error)

    def _close_pit_body(self, pit_id: str) -> dict[str, Any]:
        return {self.pit_id_key: [pit_id]}

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        """OpenSearch's security plugin evaluates privileges only when a request is made;
        authinfo tells who we are and with which roles. None without the plugin."""
        if "opensearch-security" not in self.plugins():
            return None
        info = self._request("GET", "/_plugins/_security/authinfo")
        user = info.get("user_name")
        roles = ", ".join(info.get("roles") or []) or "none"
        return PrivilegeCheck(
            checked=False,
            user=user,
            note=f"OpenSearch has no privilege-check API; user {user}, roles: {roles}",
        )

    def delete_task_result(self, task_id: str) -> bool:
        """``DELETE _tasks/<id>`` where the engine has it (OpenSearch 3.9+); else the
        document of the ``.tasks`` system index (OpenSearch 2.x allows it with a
        deprecation warning)."""
        try:
            self._request("DELETE", request_path("_tasks", task_id))
            return True
        except EngineError as exc:
            if exc.status == 404 and not isinstance(exc, IndexNotFound):
                return False  # the API exists and has no result stored
            if exc.status not in (400, 405):  # 400/405: no such API before 3.9
                raise
        return super().delete_task_result(task_id)
