"""One request to the engine through an official client, its errors translated.

:class:`ClientTransport` builds the flavor adapter's client (elasticsearch-py or
opensearch-py), sends raw requests through it (``perform_request``) and translates every
client exception at this boundary (``raise ... from``) into :mod:`reindex_fsm.errors`:
connection failures and timeouts become ``EngineUnreachable``; a 404
``index_not_found_exception`` becomes ``IndexNotFound``; a 502/503/504 (after the
client's retries) becomes ``EngineUnreachable`` carrying the status; any other refusal
becomes ``EngineError`` with the status and the engine's ``type: reason`` on one line
(:func:`.responses.error_from_answer`). Secrets are scrubbed from every message.

:meth:`ClientTransport.request` is the public raw request, for tests and benchmarks; it
also answers ``GET /`` (:meth:`ClientTransport.info`). The Engine calls are in
:mod:`.client`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Any, ClassVar, Self
from urllib.parse import quote, urlsplit

from ..errors import EngineError, EngineUnreachable, ReindexFsmError, UnsupportedEngine, UsageError
from .base import EngineInfo, Flavor
from .responses import (
    SUPPORTED_ENGINES,
    detect_flavor,
    error_from_answer,
    one_line,
    unreachable_reason,
)
from .urls import ClientConfig, parse_engine_url

__all__ = ["RETRY_ON_STATUS", "ClientTransport", "request_path"]

# Statuses the clients retry themselves (with max_retries) before we see an error.
RETRY_ON_STATUS = (429, 502, 503, 504)


def request_path(*parts: str) -> str:
    """An absolute request path; each part percent-encoded (keeping ``,*:``)."""
    for part in parts:
        if not part:
            raise ValueError("empty index, alias or task name")
    return "/" + "/".join(quote(p, safe=",*:") for p in parts)


class ClientTransport:
    """One request to the engine through an official client, its errors translated.

    ``url`` is the engine URL without credentials; credentials in the URL
    (``http://user:pass@host:9200``) are used for basic auth. Retries (``max_retries``
    times, on connection errors, timeouts and 429/502/503/504) are the client's own; a
    request sent with ``retry=False`` goes out once.
    """

    flavor: ClassVar[Flavor]
    helpers: ClassVar[ModuleType]  # elasticsearch.helpers / opensearchpy.helpers
    # Exceptions of the client meaning: cannot reach the engine (connection, timeout, TLS).
    unreachable_errors: ClassVar[tuple[type[BaseException], ...]]
    # Exceptions of the client carrying an HTTP status and the engine's error body.
    api_errors: ClassVar[tuple[type[BaseException], ...]]
    # Every exception the client and its helpers raise (translated at the boundary).
    client_errors: ClassVar[tuple[type[BaseException], ...]]

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        request_timeout: float = 30,
        max_retries: int = 3,
    ) -> None:
        self.config = parse_engine_url(
            url,
            api_key=api_key,
            username=username,
            password=password,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            request_timeout=request_timeout,
            max_retries=max_retries,
        )
        self.url = self.config.url
        self._info: EngineInfo | None = None
        self._once: Any = None
        try:
            self._client = self._make_client(self.config, max_retries=max_retries)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"cannot configure the {self.flavor} client for {self.url}: "
                f"{self._scrub(one_line(str(exc), 200))}"
            ) from exc

    # -- what a flavor adapter supplies: its client, and how to send and read one request --

    def _make_client(self, config: ClientConfig, *, max_retries: int) -> Any:
        raise NotImplementedError

    def _send(
        self,
        client: Any,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        headers: Mapping[str, str] | None,
    ) -> Any:
        """One request on ``client``; return the decoded response body."""
        raise NotImplementedError

    def _error_status_body(self, exc: BaseException) -> tuple[int | None, Any, str]:
        """``(HTTP status, error body, the client's message)`` of an ``api_errors`` one."""
        raise NotImplementedError

    def _translate_special(self, exc: BaseException) -> ReindexFsmError | None:
        """A client-specific translation taking precedence; None for the generic one."""
        return None

    def _client_without_retries(self) -> Any:
        """A client that sends each request once. Default: a second client, built lazily."""
        if self._once is None:
            self._once = self._make_client(self.config, max_retries=0)
        return self._once

    # -- plumbing ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for client in (self._client, self._once):
            if client is not None:
                with suppress(Exception):  # closing is best effort
                    client.close()
        self._once = None

    @property
    def client(self) -> Any:
        """The official client this adapter sends through (``elasticsearch.Elasticsearch``
        or ``opensearchpy.OpenSearch``), for benchmarks' baselines that measure the client
        itself. Its calls and exceptions are the client's own, not translated."""
        return self._client

    def _scrub(self, text: str) -> str:
        return self.config.redact(text)

    def _translate(self, exc: BaseException, what: str) -> ReindexFsmError:
        special = self._translate_special(exc)
        if special is not None:
            return special
        if isinstance(exc, self.unreachable_errors):
            reason = unreachable_reason(exc, self.config.request_timeout)
            return EngineUnreachable(self.url, self._scrub(reason))
        if isinstance(exc, self.api_errors):
            status, body, message = self._error_status_body(exc)
            return error_from_answer(
                status,
                body,
                message or type(exc).__name__,
                what=what,
                url=self.url,
                redact=self._scrub,
            )
        if isinstance(exc, self.helpers.ScanError):
            return EngineError(f"{what} failed: {self._scrub(one_line(str(exc), 300))}")
        return EngineError(
            f"{what} failed: {type(exc).__name__}: {self._scrub(one_line(str(exc), 300))}"
        )

    @contextmanager
    def _translating(self, what: str) -> Iterator[None]:
        try:
            yield
        except self.client_errors as exc:
            raise self._translate(exc, what) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
    ) -> Any:
        client = self._client if retry else self._client_without_retries()
        with self._translating(f"{method} {path}"):
            return self._send(client, method, path, params=params, body=body, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One raw REST request, for tests and benchmarks (a run uses the Engine methods).

        :param method: the HTTP method, e.g. ``"GET"``.
        :param path: the request path, e.g. ``"/_cat/indices"``; a missing leading ``/``
            is added. Names in it are sent as given (see :func:`request_path`).
        :param body: a JSON-serialisable body, or None for none.
        :param params: the query string's parameters.
        :param headers: extra request headers (e.g. ``X-Opaque-Id``).
        :returns: the decoded answer (a dict or a list for JSON, else text).
        :raises EngineUnreachable: the engine cannot be reached (after the client's
            retries), or answered 502/503/504.
        :raises IndexNotFound: a 404 ``index_not_found_exception``.
        :raises EngineError: any other refusal, with its HTTP status.
        """
        if not path.startswith("/"):
            path = "/" + path
        return self._request(method.upper(), path, params=params, body=body, headers=headers)

    # -- GET / ------------------------------------------------------------------------------

    def server_info(self) -> Any:
        """The raw ``GET /`` body (a dict from a real engine; anything from a proxy).
        A server that refuses ``GET /`` (a proxy's 404, a web server, an engine URL with
        a path) or answers it with something not JSON is :class:`UnsupportedEngine`
        naming the URL; 401/403 are the engine's own answer and stay as they are."""
        try:
            return self._request("GET", "/")
        except (EngineUnreachable, UnsupportedEngine):
            raise
        except EngineError as exc:
            if exc.status in (401, 403):
                raise
            if exc.status is not None:
                answered = f"with HTTP {exc.status}"
            else:  # e.g. a 200 with an HTML page: the client cannot decode it
                reason = exc.message.removeprefix("GET / failed: ")
                answered = f"with something that is not JSON ({reason})"
            path = urlsplit(self.url).path
            hint = (
                f"the URL has the path {path!r}, which every request would start with: give "
                "the engine's own address"
                if path not in ("", "/")
                else "check --engine-url (or REINDEX_FSM_ENGINE_URL): it must be the address "
                "of an Elasticsearch or OpenSearch node"
            )
            raise UnsupportedEngine(
                f"the server at {self.url} is not Elasticsearch or OpenSearch: GET / answered "
                f"{answered}",
                hint=f"{hint} ({SUPPORTED_ENGINES})",
            ) from exc

    def info(self) -> EngineInfo:
        """Flavor, version and cluster name; :class:`UnsupportedEngine` if not supported
        or not the flavor of this adapter. Cached after the first success."""
        if self._info is None:
            info = detect_flavor(self.server_info(), self.url)
            if info.flavor != self.flavor:
                raise UnsupportedEngine(
                    f"the engine at {self.url} is {info.flavor} {info.version}, not {self.flavor}",
                    hint=f"use engine 'auto' or '{info.flavor}'",
                )
            self._info = info
        return self._info
