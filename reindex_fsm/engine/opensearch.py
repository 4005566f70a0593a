"""The Engine protocol on the OpenSearch client (opensearch-py).

Everything but the client itself lives in :class:`~reindex_fsm.engine._client.ClientEngine`.
opensearch-py has no per-request retry option, so the requests that must not be
retried (``start_reindex``) go through a second client built with ``max_retries=0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import opensearchpy.exceptions
import opensearchpy.helpers
from opensearchpy import OpenSearch

from ._client import RETRY_ON_STATUS, ClientConfig, ClientEngine

__all__ = ["OpenSearchEngine"]


class OpenSearchEngine(ClientEngine):
    flavor = "opensearch"
    pit_path = ("_search", "point_in_time")  # POST <index>/...: open a PIT
    pit_id_key = "pit_id"
    helpers = opensearchpy.helpers
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
