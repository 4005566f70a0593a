"""Build the right adapter for an engine URL.

``connect(url)`` asks ``GET /`` which engine answers (with the opensearch-py client,
which, unlike the official Elasticsearch 8 client, talks to any server) and returns an
:class:`~reindex_fsm.engine.elasticsearch.ElasticsearchEngine` or an
:class:`~reindex_fsm.engine.opensearch.OpenSearchEngine`. ``engine="elasticsearch"`` or
``"opensearch"`` skips the question; the first call then finds out whether the engine
is reachable.

Each adapter's client is imported when it is chosen: a run on OpenSearch never loads
the Elasticsearch client (elasticsearch-py and elastic_transport, a large part of a
command's start-up), nor the reverse when ``engine="elasticsearch"`` is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedEngine
from .responses import SUPPORTED_ENGINES, detect_flavor
from .urls import redact_url

if TYPE_CHECKING:
    from .client import ClientEngine

__all__ = ["ENGINE_CHOICES", "connect", "detect_flavor", "redact_url"]

ENGINE_CHOICES = ("auto", "elasticsearch", "opensearch")


def connect(url: str, engine: str = "auto", **client_kwargs: Any) -> ClientEngine:
    """An adapter for the engine at ``url``.

    ``client_kwargs`` go to the adapter: ``api_key``, ``username``, ``password``,
    ``ca_certs``, ``verify_certs``, ``request_timeout``, ``max_retries``.

    Raises :class:`~reindex_fsm.errors.EngineUnreachable` (with the credential-free URL)
    when "auto" cannot reach the engine, :class:`~reindex_fsm.errors.UnsupportedEngine`
    for an unknown ``engine`` or an unsupported server, and
    :class:`~reindex_fsm.errors.UsageError` for a malformed URL.
    """
    choice = engine.strip().lower()
    if choice == "elasticsearch":
        from .elasticsearch import ElasticsearchEngine

        return ElasticsearchEngine(url, **client_kwargs)
    from .opensearch import OpenSearchEngine

    if choice == "opensearch":
        return OpenSearchEngine(url, **client_kwargs)
    if choice != "auto":
        raise UnsupportedEngine(
            f"unknown engine {engine!r}",
            hint=f"use one of {', '.join(ENGINE_CHOICES)} ({SUPPORTED_ENGINES})",
        )

    probe = OpenSearchEngine(url, **client_kwargs)
    try:
        info = detect_flavor(probe.server_info(), probe.url)
    except BaseException:
        probe.close()
        raise
    if info.flavor == "opensearch":
        probe._info = info
        return probe
    probe.close()
    from .elasticsearch import ElasticsearchEngine

    return ElasticsearchEngine(url, **client_kwargs)
