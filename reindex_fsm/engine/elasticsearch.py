"""The Engine protocol on the official Elasticsearch client (elasticsearch-py 8).

What both engines share lives in :class:`~reindex_fsm.engine.client.ClientEngine`; this
adapter holds what is Elasticsearch's own: its client, the point-in-time API at
``_pit``, and the privilege check (``_security/user/_has_privileges``).

The client checks on its first request that the server is Elasticsearch (the
``X-Elastic-Product`` header); an OpenSearch or pre-7.14 server raises
:class:`~reindex_fsm.errors.UnsupportedEngine`, and ``GET /`` refuses anything older than 7.17
(:func:`~reindex_fsm.engine.responses.detect_flavor`). 7.17 accepts the client's
``compatible-with=8`` media type and answers as 8.x would.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

import elastic_transport
import elasticsearch
import elasticsearch.helpers
from elasticsearch import Elasticsearch

from ..errors import EngineError, EngineUnreachable, ReindexFsmError, UnsupportedEngine
from .base import PrivilegeCheck
from .client import ClientEngine
from .transport import RETRY_ON_STATUS
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
