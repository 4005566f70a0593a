"""What the elasticsearch-py 8 and opensearch-py adapters share.

Both clients speak the same REST API, so :class:`ClientEngine` implements every
:class:`~reindex_fsm.engine.base.Engine` method once, on raw requests
(``perform_request``), and a subclass only says:

* how to build its client (:meth:`ClientEngine._make_client`) and send one request
  with extra headers such as ``X-Opaque-Id`` (:meth:`ClientEngine._send`);
* which exception classes mean "unreachable" and "the engine said no", and how to
  read the status and body off the latter (:meth:`ClientEngine._error_status_body`);
* its ``helpers`` module (``bulk`` and ``scan``).

Every client exception is translated at this boundary (``raise ... from``) into
:mod:`reindex_fsm.errors`: connection failures and timeouts become
``EngineUnreachable``; a 404 ``index_not_found_exception`` becomes ``IndexNotFound``;
a 502/503/504 (after the client's retries) becomes ``EngineUnreachable`` carrying the
status; any other refusal becomes ``EngineError`` with the status and the engine's
``type: reason`` on one line.

The parsing of Tasks API bodies and of ``GET /`` is pure (:func:`parse_task`,
:func:`parse_task_list`, :func:`detect_flavor`) so it can be tested without an engine.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from ..errors import (
    EngineError,
    EngineUnreachable,
    IndexNotFound,
    LeaseConflict,
    ReindexFsmError,
    TaskNotFound,
    UnsupportedEngine,
    UsageError,
)
from .base import (
    LEASE_INDEX,
    LEASE_INDEX_MAPPINGS,
    LEASE_INDEX_SETTINGS,
    DiskWatermarks,
    EngineInfo,
    Flavor,
    IndexDefinition,
    IndexStatus,
    IndexSummary,
    NodeDisk,
    PrivilegeCheck,
    ReindexRequest,
    StoredLease,
    TaskStatus,
    watermarks_from_settings,
)

__all__ = [
    "OPAQUE_ID_HEADER",
    "RETRY_ON_STATUS",
    "SUPPORTED_ENGINES",
    "ClientConfig",
    "ClientEngine",
    "describe_error",
    "detect_flavor",
    "parse_engine_url",
    "parse_task",
    "parse_task_list",
    "redact_url",
]

OPAQUE_ID_HEADER = "X-Opaque-Id"
# Statuses the clients retry themselves (with max_retries) before we see an error.
RETRY_ON_STATUS = (429, 502, 503, 504)
SUPPORTED_ENGINES = "Elasticsearch 8.x or 9.x, or OpenSearch 2.x or later"

# Keys of a search request body: a ``scan`` query made only of these is a whole body,
# anything else is a query clause to wrap in {"query": ...}.
_SEARCH_BODY_KEYS = frozenset(
    {
        "query",
        "_source",
        "sort",
        "slice",
        "size",
        "stored_fields",
        "docvalue_fields",
        "fields",
        "track_total_hits",
        "runtime_mappings",
        "post_filter",
        "seq_no_primary_term",
        "version",
    }
)
_COUNT_FIELDS = ("total", "created", "updated", "deleted", "version_conflicts", "noops")


# -- URLs ---------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` part (kept as given otherwise).

    Works on anything, even an unparsable URL, so it is safe to use in error messages:
    everything up to the last ``@`` after the scheme is dropped.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = rest.rfind("@")
    if at == -1:
        return url
    return f"{scheme}{sep}{rest[at + 1 :]}"


@dataclass(frozen=True)
class ClientConfig:
    """Everything a subclass needs to build its client. Secrets are kept out of repr."""

    url: str  # without credentials, as shown to people: scheme://host[:port][/prefix]
    node_url: str  # the same with an explicit port, for the client
    scheme: str
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30
    max_retries: int = 3

    @property
    def tls_options(self) -> dict[str, Any]:
        """TLS keyword arguments (same names in both clients); none for plain http."""
        if self.scheme != "https":
            return {}
        options: dict[str, Any] = {"verify_certs": self.verify_certs}
        if self.ca_certs:
            options["ca_certs"] = self.ca_certs
        if not self.verify_certs:
            options["ssl_show_warn"] = False  # the operator asked for it
        return options


def parse_engine_url(
    url: str,
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    request_timeout: float = 30,
    max_retries: int = 3,
) -> ClientConfig:
    """Split ``[scheme://][user:password@]host[:port][/prefix]`` into a :class:`ClientConfig`.

    No scheme means ``http``; no port means the scheme's default (80/443). Credentials in
    the URL are percent-decoded and used for basic auth unless ``username``/``password``
    are given explicitly. Raises :class:`UsageError` (never echoing the URL's secrets).
    """
    raw = url.strip()
    if "://" not in raw:
        raw = f"http://{raw}"
    bad = UsageError(
        f"invalid engine URL {redact_url(raw)!r}",
        hint="give scheme://[user:password@]host:port, with special characters of the "
        "password percent-encoded",
    )
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad
    host_port = parts.netloc.rpartition("@")[2]
    prefix = parts.path.rstrip("/")
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    node_url = f"{parts.scheme}://{host}:{port or (443 if parts.scheme == 'https' else 80)}"

    user = username if username is not None else _unquote_or_none(parts.username)
    secret = password if password is not None else _unquote_or_none(parts.password)
    basic_auth = (user, secret or "") if user else None
    if api_key and basic_auth:
        raise UsageError(
            "both an API key and a username/password were given for the engine",
            hint="use one of them",
        )
    return ClientConfig(
        url=f"{parts.scheme}://{host_port}{prefix}",
        node_url=node_url + prefix,
        scheme=parts.scheme,
        basic_auth=basic_auth,
        api_key=api_key or None,
        ca_certs=ca_certs,
        verify_certs=verify_certs,
        request_timeout=request_timeout,
        max_retries=max_retries,
    )


def _unquote_or_none(value: str | None) -> str | None:
    return unquote(value) if value is not None else None


# -- GET / ---------------------------------------------------------------------------

_ES_TAGLINE = "You Know, for Search"
_ES_BUILD_FLAVORS = ("default", "oss", "serverless")


def detect_flavor(info_body: Any, url: str | None = None) -> EngineInfo:
    """Which engine answered ``GET /``, and whether reindex-fsm supports it.

    ``version.distribution == "opensearch"`` is OpenSearch (2.x and later supported);
    no distribution with the Elasticsearch tagline or build flavor is Elasticsearch
    (8.x and 9.x supported). Anything else raises :class:`UnsupportedEngine` (naming
    ``url``, the server asked, when given).
    """
    hint = f"reindex-fsm supports {SUPPORTED_ENGINES}"
    server = f"the server at {url}" if url else "the server"
    if not isinstance(info_body, Mapping):
        raise UnsupportedEngine(
            f"GET / did not return a JSON object: {server} is not Elasticsearch or OpenSearch",
            hint=hint,
        )
    version = info_body.get("version")
    version = version if isinstance(version, Mapping) else {}
    number = version.get("number")
    match = re.match(r"(\d+)\.(\d+)", number) if isinstance(number, str) else None
    if match is None:
        raise UnsupportedEngine(
            f"GET / returned no version number: {server} is not Elasticsearch or OpenSearch",
            hint=hint,
        )
    assert isinstance(number, str)
    major = int(match[1])
    cluster_name = str(info_body.get("cluster_name") or "")
    cluster_uuid = str(info_body.get("cluster_uuid") or "")
    if cluster_uuid == "_na_":  # no master elected yet: not known
        cluster_uuid = ""
    distribution = version.get("distribution")

    if distribution == "opensearch":
        if major == 7:  # OpenSearch 1.x with compatibility.override_main_response_version
            raise UnsupportedEngine(
                f"OpenSearch 1.x (reporting version {number} for compatibility) is not supported",
                hint=hint,
            )
        if major < 2:
            raise UnsupportedEngine(f"OpenSearch {number} is not supported", hint=hint)
        return EngineInfo("opensearch", number, cluster_name, cluster_uuid)

    looks_like_es = (
        info_body.get("tagline") == _ES_TAGLINE or version.get("build_flavor") in _ES_BUILD_FLAVORS
    )
    if distribution is None and looks_like_es:
        if major not in (8, 9):
            raise UnsupportedEngine(f"Elasticsearch {number} is not supported", hint=hint)
        return EngineInfo("elasticsearch", number, cluster_name, cluster_uuid)

    what = f"distribution {distribution!r}" if distribution else "no known tagline"
    raise UnsupportedEngine(
        f"unrecognised engine at version {number} ({what}): {server} is not Elasticsearch "
        "or OpenSearch",
        hint=hint,
    )


# -- error bodies ----------------------------------------------------------------------


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(body: Any, fallback: str = "") -> tuple[str | None, str]:
    """``(error type, "type: reason" on one line)`` from an engine error body.

    Understands ``{"error": {"type", "reason", "caused_by"}, "status"}``, the bare error
    object (as in task results and failures), ``{"error": "text"}`` and plain text.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            etype = err.get("type")
            reason = str(err.get("reason") or "")
            text = f"{etype}: {reason}" if etype and reason else str(etype or reason)
            cause = err.get("caused_by")
            if isinstance(cause, Mapping) and cause.get("reason") and cause["reason"] != reason:
                text += f" (caused by {cause.get('type')}: {cause['reason']})"
            if text:
                return (str(etype) if etype else None), _one_line(text)
        elif isinstance(err, str) and err:
            return None, _one_line(err)
    elif isinstance(body, str) and body.strip():
        return None, _one_line(body, 300)
    return None, _one_line(fallback)


_NO_OBJECT_REPR = re.compile(r"<[^<>]*? object at 0x[0-9a-fA-F]+>:?\s*")
_REASONS = (
    (re.compile(r"connection refused", re.I), "connection refused"),
    (
        re.compile(
            r"name or service not known|nodename nor servname|getaddrinfo failed|"
            r"temporary failure in name resolution|no address associated|"
            r"name resolution",
            re.I,
        ),
        "cannot resolve the host name",
    ),
    (re.compile(r"certificate verify failed|CERTIFICATE_VERIFY_FAILED", re.I), None),
    (re.compile(r"network is unreachable", re.I), "network is unreachable"),
    (re.compile(r"no route to host", re.I), "no route to host"),
    (
        re.compile(r"connection reset|remote end closed|remotedisconnected|broken pipe", re.I),
        "the connection was closed by the server",
    ),
)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (causes, ``errors``, ``info``, ``reason``)."""
    seen: set[int] = set()
    out: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        wrapped: list[Any] = [current.__cause__, current.__context__]
        wrapped.extend(getattr(current, "errors", None) or ())
        wrapped.append(getattr(current, "info", None))
        wrapped.append(getattr(current, "reason", None))
        stack.extend(w for w in wrapped if isinstance(w, BaseException))
    return out


def unreachable_reason(exc: BaseException, timeout: float) -> str:
    """A short reason for a connection failure: refused, unresolved host, timeout, TLS..."""
    chain = _exception_chain(exc)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    if any("timeout" in type(e).__name__.lower() for e in chain) or "timed out" in text:
        return f"no answer within {timeout:g}s (timed out)"
    for pattern, reason in _REASONS:
        if pattern.search(text):
            if reason is None:
                return "TLS certificate verification failed (pass ca_certs, or verify_certs=False)"
            return reason
    if re.search(r"\bSSL|\bTLS", text):
        return "TLS error: " + _one_line(_NO_OBJECT_REPR.sub("", str(chain[-1])), 200)
    return _one_line(_NO_OBJECT_REPR.sub("", str(exc)), 200) or type(exc).__name__


# -- Tasks API bodies ----------------------------------------------------------------------


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def _task_status(
    task_id: str,
    task: Mapping[str, Any],
    *,
    completed: bool,
    response: Mapping[str, Any] | None = None,
    error: Any = None,
) -> TaskStatus:
    status = task.get("status")
    status = status if isinstance(status, Mapping) else {}
    response = response if isinstance(response, Mapping) else {}
    counts = {name: _int(response.get(name, status.get(name, 0))) for name in _COUNT_FIELDS}
    failures = tuple(
        dict(f) if isinstance(f, Mapping) else {"reason": str(f)}
        for f in response.get("failures") or ()
    )
    if error is not None and not isinstance(error, Mapping):
        error = {"reason": str(error)}
    cancelled = (
        bool(response.get("canceled"))
        or bool(status.get("canceled"))
        or task.get("cancelled") is True
        or (error is not None and error.get("type") == "task_cancelled_exception")
    )
    return TaskStatus(
        task_id=task_id,
        completed=completed,
        failures=failures,
        error=dict(error) if error is not None else None,
        cancelled=cancelled,
        opaque_id=_header(task.get("headers"), OPAQUE_ID_HEADER),
        description=str(task.get("description") or ""),
        running_time_s=_int(task.get("running_time_in_nanos")) / 1e9,
        **counts,
    )


def _list_entries(body: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(task_id, task info)`` of a ``GET _tasks`` body (grouped by nodes, or not)."""
    entries: list[tuple[str, Mapping[str, Any]]] = []
    for node in (body.get("nodes") or {}).values():
        entries.extend((str(k), v) for k, v in (node.get("tasks") or {}).items())
    tasks = body.get("tasks")  # group_by=parents / none
    if isinstance(tasks, Mapping):
        entries.extend((str(k), v) for k, v in tasks.items())
    elif isinstance(tasks, list):
        entries.extend((f"{t.get('node')}:{t.get('id')}", t) for t in tasks)
    return entries


def _is_sliced(task: Mapping[str, Any]) -> bool:
    status = task.get("status")
    return isinstance(status, Mapping) and "slices" in status


def _add_running_slices(parent: TaskStatus, children: Iterable[TaskStatus]) -> TaskStatus:
    """A sliced parent's status only counts its finished slices: add the running ones."""
    children = list(children)
    if not children:
        return parent
    return replace(
        parent,
        **{f: getattr(parent, f) + sum(getattr(c, f) for c in children) for f in _COUNT_FIELDS},
    )


def parse_task(
    body: Mapping[str, Any],
    task_id: str | None = None,
    children: Mapping[str, Any] | None = None,
) -> TaskStatus:
    """A ``GET _tasks/<id>`` body as a :class:`TaskStatus`.

    Counts come from ``response`` once the task is completed (the final numbers), from
    ``task.status`` while it runs; ``response.failures`` are the per-document/search
    failures, the top-level ``error`` is what stopped the task. For a running sliced
    task, ``children`` (a ``GET _tasks?parent_task_id=<id>`` body) adds the progress of
    the slices still running, which the parent's own status leaves out.
    """
    task = body.get("task")
    task = task if isinstance(task, Mapping) else {}
    if task_id is None:
        task_id = f"{task.get('node', '')}:{task.get('id', '')}"
    completed = bool(body.get("completed", False))
    status = _task_status(
        task_id,
        task,
        completed=completed,
        response=body.get("response") if completed else None,
        error=body.get("error"),
    )
    if not completed and children is not None and _is_sliced(task):
        status = _add_running_slices(
            status,
            (
                _task_status(child_id, info, completed=False)
                for child_id, info in _list_entries(children)
                if info.get("parent_task_id") == task_id
            ),
        )
    return status


def parse_task_list(body: Mapping[str, Any], opaque_id: str | None = None) -> list[TaskStatus]:
    """The parent reindex tasks of a ``GET _tasks?actions=*reindex&detailed=true`` body.

    Slice sub-tasks (those with a ``parent_task_id``) are not listed, but their progress
    is added to their sliced parent's counts. With ``opaque_id`` only tasks whose
    ``X-Opaque-Id`` header equals it are kept. Node failures raise
    :class:`EngineError`: a partial list could hide a running task.
    """
    node_failures = body.get("node_failures") or ()
    if node_failures:
        _, reason = describe_error(node_failures[0])
        raise EngineError(f"the Tasks API could not list the tasks of every node: {reason}")

    parents: list[tuple[str, Mapping[str, Any]]] = []
    children: dict[str, list[TaskStatus]] = {}
    for task_id, info in _list_entries(body):
        action = info.get("action")
        if action is not None and not str(action).endswith("reindex"):
            continue
        parent_id = info.get("parent_task_id")
        if parent_id:
            children.setdefault(str(parent_id), []).append(
                _task_status(task_id, info, completed=False)
            )
        else:
            parents.append((task_id, info))

    found: list[tuple[int, str, TaskStatus]] = []
    for task_id, info in parents:
        status = _task_status(task_id, info, completed=False)
        if opaque_id is not None and status.opaque_id != opaque_id:
            continue
        if _is_sliced(info):
            status = _add_running_slices(status, children.get(task_id, ()))
        found.append((_int(info.get("start_time_in_millis")), task_id, status))
    return [status for _, _, status in sorted(found, key=lambda t: t[:2])]


# -- the engine --------------------------------------------------------------------------


def _path(*parts: str) -> str:
    """An absolute request path; each part percent-encoded (keeping ``,*:``)."""
    for part in parts:
        if not part:
            raise ValueError("empty index, alias or task name")
    return "/" + "/".join(quote(p, safe=",*:") for p in parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class ClientEngine:
    """The :class:`~reindex_fsm.engine.base.Engine` protocol on an official Python client.

    ``url`` is the engine URL without credentials; credentials in the URL
    (``http://user:pass@host:9200``) are used for basic auth. Retries (``max_retries``
    times, on connection errors, timeouts and 429/502/503/504) are the client's own;
    ``start_reindex`` is never retried, so a lost answer cannot start a second task (the
    caller finds a started task again by its opaque ID).
    """

    flavor: ClassVar[Flavor]
    helpers: ClassVar[ModuleType]  # elasticsearch.helpers / opensearchpy.helpers
    pit_path: ClassVar[tuple[str, ...]]
    pit_id_key: ClassVar[str]
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
        secrets = [self.config.api_key, *(self.config.basic_auth or ())[1:]]
        self._secrets = sorted(
            # very short secrets are not scrubbed: they would mangle every message
            {
                s
                for value in secrets
                if value
                for s in (value, quote(value, safe=""))
                if len(s) >= 4
            },
            key=len,
            reverse=True,
        )
        self._info: EngineInfo | None = None
        self._once: Any = None
        try:
            self._client = self._make_client(self.config, max_retries=max_retries)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"cannot configure the {self.flavor} client for {self.url}: "
                f"{self._scrub(_one_line(str(exc), 200))}"
            ) from exc

    # -- what a subclass supplies -------------------------------------------------------

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

    # -- plumbing ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    def __enter__(self) -> ClientEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for client in (self._client, self._once):
            if client is not None:
                with suppress(Exception):  # closing is best effort
                    client.close()
        self._once = None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _translate(self, exc: BaseException, what: str) -> ReindexFsmError:
        special = self._translate_special(exc)
        if special is not None:
            return special
        if isinstance(exc, self.unreachable_errors):
            reason = unreachable_reason(exc, self.config.request_timeout)
            return EngineUnreachable(self.url, self._scrub(reason))
        if isinstance(exc, self.api_errors):
            status, body, message = self._error_status_body(exc)
            etype, reason = describe_error(body, fallback=message or type(exc).__name__)
            reason = self._scrub(reason)
            if status == 404 and etype == "index_not_found_exception":
                err = body.get("error") if isinstance(body, Mapping) else None
                index = err.get("index") or err.get("resource.id") if err else None
                return IndexNotFound(str(index or "?"))
            if status in (502, 503, 504):
                unreachable = EngineUnreachable(self.url, f"HTTP {status}: {reason}")
                unreachable.status = status
                return unreachable
            hint = None
            if status in (401, 403):
                hint = (
                    "check the credentials (user:password in the engine URL, or the API key) "
                    "and the user's privileges"
                )
            return EngineError(f"{what} failed (HTTP {status}): {reason}", status=status, hint=hint)
        if isinstance(exc, self.helpers.ScanError):
            return EngineError(f"{what} failed: {self._scrub(_one_line(str(exc), 300))}")
        return EngineError(
            f"{what} failed: {type(exc).__name__}: {self._scrub(_one_line(str(exc), 300))}"
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

    # -- the Engine protocol -------------------------------------------------------------

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

    def get_alias(self, alias: str) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            body = self._request("GET", _path("_alias", alias))
        except EngineError as exc:
            if exc.status == 404:  # "alias [x] missing"
                return {}
            raise
        return {index: dict(entry.get("aliases") or {}) for index, entry in body.items()}

    def get_index_aliases(self, index: str) -> dict[str, dict[str, Any]]:
        """Aliases of the concrete index ``index``; IndexNotFound if it is no index
        (an alias name resolves to other indices, which is not what was asked)."""
        body = self._request("GET", _path(index, "_alias"))
        if index not in body:
            raise IndexNotFound(index)
        return dict(body[index].get("aliases") or {})

    def index_exists(self, index: str) -> bool:
        """True only for a concrete index: ``GET <name>/_settings/index.uuid`` answers
        keyed by the concrete indices the name resolves to, which for an alias are
        other names (and for a missing index is a 404)."""
        try:
            body = self._request("GET", _path(index, "_settings", "index.uuid"))
        except IndexNotFound:
            return False
        return index in body

    def get_index(self, index: str) -> IndexDefinition:
        settings = self._request("GET", _path(index, "_settings"), params={"flat_settings": "true"})
        mappings = self._request("GET", _path(index, "_mapping"))
        if index not in settings or index not in mappings:
            raise IndexNotFound(index)  # an alias, not an index
        return IndexDefinition(
            settings=dict(settings[index].get("settings") or {}),
            mappings=dict(mappings[index].get("mappings") or {}),
        )

    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None:
        self._request(
            "PUT", _path(index), body={"settings": dict(settings), "mappings": dict(mappings)}
        )

    def put_settings(self, index: str, settings: Mapping[str, Any]) -> None:
        self._request("PUT", _path(index, "_settings"), body=dict(settings))

    def refresh(self, index: str) -> None:
        self._request("POST", _path(index, "_refresh"))

    def cluster_health(
        self, index: str | None = None, wait_for_status: str | None = None, timeout_s: float = 30
    ) -> dict[str, Any]:
        # The wait goes in the query string itself: opensearch-py would take a `timeout`
        # param for its own socket timeout. Keep waits below the client's request timeout.
        query = f"timeout={max(1, int(timeout_s))}s"
        if wait_for_status:
            query += f"&wait_for_status={quote(wait_for_status)}"
        path = _path("_cluster", "health", index) if index else "/_cluster/health"
        try:
            return dict(self._request("GET", f"{path}?{query}"))
        except EngineError as exc:
            if exc.status == 408:  # the wait ran out: say so, the caller decides
                return {"status": None, "timed_out": True}
            raise

    def count(self, index: str) -> int:
        return int(self._request("GET", _path(index, "_count"))["count"])

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        self._request("POST", "/_aliases", body={"actions": list(actions)})

    def delete_index(self, index: str) -> None:
        if any(c in index for c in "*,?") or index.startswith("_"):
            raise ValueError(f"refusing to delete {index!r}: not a single index name")
        self._request("DELETE", _path(index))

    # -- tasks ----------------------------------------------------------------------------

    def start_reindex(self, request: ReindexRequest) -> str:
        params = {"wait_for_completion": "false", "slices": str(request.slices)}
        if request.requests_per_second is not None:
            params["requests_per_second"] = _number(request.requests_per_second)
        body = self._request(
            "POST",
            "/_reindex",
            params=params,
            body=request.body(),
            headers={OPAQUE_ID_HEADER: request.opaque_id},
            retry=False,
        )
        task = body.get("task") if isinstance(body, Mapping) else None
        if not task:
            raise EngineError(f"POST /_reindex answered without a task ID: {_one_line(body)}")
        return str(task)

    def get_task(self, task_id: str) -> TaskStatus | None:
        """None when the engine does not know the task (404: it is not running and has no
        stored result). A finished task started with wait_for_completion=false keeps its
        result in the ``.tasks`` index, so it is found with ``completed=True``."""
        try:
            body = self._request("GET", _path("_tasks", task_id))
        except EngineError as exc:
            if exc.status == 404:
                return None
            raise
        children = None
        if not body.get("completed") and _is_sliced(body.get("task") or {}):
            try:  # progress of the running slices; best effort
                children = self._request(
                    "GET",
                    "/_tasks",
                    params={"parent_task_id": task_id, "actions": "*reindex", "detailed": "true"},
                )
            except EngineError as exc:
                if isinstance(exc, EngineUnreachable):
                    raise
        return parse_task(body, task_id, children)

    def list_reindex_tasks(self, opaque_id: str | None = None) -> list[TaskStatus]:
        body = self._request("GET", "/_tasks", params={"actions": "*reindex", "detailed": "true"})
        return parse_task_list(body, opaque_id)

    def cancel_task(self, task_id: str) -> None:
        """Ask the task to stop (it stops at its next batch); TaskNotFound if unknown."""
        self._task_action(task_id, "POST", _path("_tasks", task_id, "_cancel"))

    def rethrottle(self, task_id: str, requests_per_second: float) -> None:
        """Change a running reindex's throttle; <= 0 or infinity means unthrottled."""
        rps = requests_per_second
        value = "-1" if rps <= 0 or rps == float("inf") else _number(rps)
        self._task_action(
            task_id,
            "POST",
            _path("_reindex", task_id, "_rethrottle"),
            params={"requests_per_second": value},
        )

    def _task_action(
        self, task_id: str, method: str, path: str, params: Mapping[str, str] | None = None
    ) -> None:
        try:
            body = self._request(method, path, params=params)
        except EngineError as exc:
            if exc.status == 404:
                raise TaskNotFound(task_id) from exc
            raise
        failures = [*(body.get("node_failures") or ()), *(body.get("task_failures") or ())]
        if failures:
            failure = failures[0]
            cause = failure.get("caused_by") if isinstance(failure, Mapping) else None
            if isinstance(cause, Mapping) and cause.get("type") in (
                "resource_not_found_exception",
                "no_such_node_exception",  # the task's node left the cluster: the task is gone
            ):
                raise TaskNotFound(task_id)
            _, reason = describe_error(failure)
            raise EngineError(f"{method} {path} failed: {self._scrub(reason)}")

    # -- documents -----------------------------------------------------------------------

    def bulk(self, actions: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        with self._translating("bulk"):
            ok, errors = self.helpers.bulk(
                self._client, actions, raise_on_error=False, stats_only=False
            )
        return int(ok), list(errors)

    def search(self, index: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        path = _path(index, "_search") if index else "/_search"
        return dict(self._request("POST", path, body=dict(body)))

    def open_pit(self, index: str, keep_alive: str) -> str | None:
        try:
            body = self._request(
                "POST", _path(index, *self.pit_path), params={"keep_alive": keep_alive}
            )
        except EngineError as exc:
            # An engine without the PIT API answers "no handler found for uri" (400, or
            # 404/405); any other refusal (e.g. keep_alive above the maximum) is an error.
            unknown_endpoint = exc.status in (404, 405) or (
                exc.status == 400 and "no handler found" in exc.message.lower()
            )
            if unknown_endpoint and not isinstance(exc, IndexNotFound):
                return None  # the caller scrolls instead
            raise
        return str(body[self.pit_id_key])

    def close_pit(self, pit_id: str) -> None:
        body = {self.pit_id_key: [pit_id] if self.flavor == "opensearch" else pit_id}
        try:
            self._request("DELETE", "/" + "/".join(self.pit_path), body=body)
        except IndexNotFound:
            pass
        except EngineError as exc:
            if exc.status != 404:
                raise

    def plugins(self) -> set[str]:
        rows = self._request("GET", "/_cat/plugins", params={"format": "json"})
        return {str(row.get("component")) for row in rows or [] if isinstance(row, Mapping)}

    def scan(
        self, index: str, query: Mapping[str, Any] | None = None, preserve_order: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every hit (scroll, unordered, 1000 a page). ``query`` is either a query clause
        (``{"term": {...}}``) or a search body whose keys are all search-body keys
        (``{"query": ..., "_source": ...}``)."""
        if not query:
            body: dict[str, Any] | None = None
        elif set(query) <= _SEARCH_BODY_KEYS:
            body = dict(query)
        else:
            body = {"query": dict(query)}
        with self._translating(f"scan of {index}"):
            yield from self.helpers.scan(
                self._client, query=body, index=index, size=1000, preserve_order=preserve_order
            )

    # -- write policy (issue 5) ------------------------------------------------------------

    def add_write_block(self, index: str) -> None:
        body = self._request("PUT", _path(index, "_block", "write"))
        if isinstance(body, Mapping) and not body.get("shards_acknowledged", True):
            # Either the index was blocked already (the engines answer so, with no index
            # listed, e.g. on resume), or not every shard confirmed the block yet and
            # writes in flight may still land. The setting is written only once every
            # shard has confirmed the block: it tells the two apart.
            settings = self._request(
                "GET",
                _path(index, "_settings", "index.blocks.write"),
                params={"flat_settings": "true"},
            )
            value = (settings.get(index) or {}).get("settings", {}).get("index.blocks.write")
            if str(value).lower() != "true":
                raise EngineError(
                    f"write block on {index} was not acknowledged by every shard",
                    hint="check the cluster's health, then resume the run",
                )

    def remove_write_block(self, index: str) -> None:
        self._request("PUT", _path(index, "_settings"), body={"index.blocks.write": None})

    # -- deep verification (issue 5) ----------------------------------------------------

    def mget(
        self, index: str, docs: Sequence[tuple[str, str | None]], source: bool = True
    ) -> dict[str, dict[str, Any] | None]:
        """One ``POST <index>/_mget``; each document carries its routing when it has one
        (a routed document is only found on its own shard). A per-document error
        (a shard that cannot answer) fails the whole lookup: a check must not guess."""
        if not docs:
            return {}
        wanted = []
        for doc_id, routing in docs:
            item: dict[str, Any] = {"_id": doc_id, "_source": source}
            if routing is not None:
                item["routing"] = routing
            wanted.append(item)
        body = self._request("POST", _path(index, "_mget"), body={"docs": wanted})
        found: dict[str, dict[str, Any] | None] = {}
        for doc in body.get("docs") or ():
            error = doc.get("error")
            if error is not None:
                etype, reason = describe_error(error)
                if etype == "index_not_found_exception":
                    raise IndexNotFound(index)
                raise EngineError(
                    f"POST {_path(index, '_mget')} failed for {doc.get('_id')}: "
                    f"{self._scrub(reason)}"
                )
            doc_id = str(doc["_id"])
            found[doc_id] = dict(doc.get("_source") or {}) if doc.get("found") else None
        if len(found) < len({d for d, _ in docs}):
            raise EngineError(f"POST {_path(index, '_mget')} answered for fewer documents")
        return found

    # -- lease and preflight (issue 5) --

    def get_lease(self, key: str) -> StoredLease | None:
        try:  # a GET by ID is realtime: no refresh needed to see the latest write
            body = self._request("GET", _path(LEASE_INDEX, "_doc", key))
        except EngineError as exc:
            if exc.status == 404:  # no such document, or no lease index yet
                return None
            raise
        if not body.get("found"):
            return None
        return StoredLease(dict(body["_source"]), int(body["_seq_no"]), int(body["_primary_term"]))

    def _ensure_lease_index(self) -> None:
        """Create the hidden lease index on first use (another process may race us)."""
        if self.index_exists(LEASE_INDEX):
            return
        try:
            self.create_index(LEASE_INDEX, LEASE_INDEX_SETTINGS, LEASE_INDEX_MAPPINGS)
        except EngineError as exc:
            if "already_exists" not in exc.message:
                raise

    def put_lease(
        self,
        key: str,
        doc: Mapping[str, Any],
        *,
        seq_no: int | None = None,
        primary_term: int | None = None,
    ) -> StoredLease:
        if seq_no is None:
            self._ensure_lease_index()
            path, params = _path(LEASE_INDEX, "_create", key), None
        else:
            path = _path(LEASE_INDEX, "_doc", key)
            params = {"if_seq_no": str(seq_no), "if_primary_term": str(primary_term)}
        try:
            body = self._request("PUT", path, params=params, body=dict(doc))
        except EngineError as exc:
            if exc.status == 409:
                raise LeaseConflict(key) from exc
            raise
        return StoredLease(dict(doc), int(body["_seq_no"]), int(body["_primary_term"]))

    def delete_lease(self, key: str, seq_no: int, primary_term: int) -> None:
        params = {"if_seq_no": str(seq_no), "if_primary_term": str(primary_term)}
        try:
            self._request("DELETE", _path(LEASE_INDEX, "_doc", key), params=params)
        except EngineError as exc:
            if exc.status == 409:
                raise LeaseConflict(key) from exc
            if exc.status != 404:  # already gone
                raise

    def index_status(self, index: str) -> IndexStatus:
        rows = self._request(
            "GET",
            _path("_cat", "indices", index),
            params={
                "format": "json",
                "bytes": "b",
                "h": "index,status,health,pri.store.size",
                "expand_wildcards": "all",
            },
        )
        for row in rows or []:
            if isinstance(row, Mapping) and row.get("index") == index:
                size = row.get("pri.store.size")
                return IndexStatus(
                    index=index,
                    status=str(row.get("status")),
                    health=str(row["health"]) if row.get("health") else None,
                    primary_store_bytes=int(size) if str(size or "").isdigit() else None,
                )
        raise IndexNotFound(index)

    def data_node_disks(self) -> list[NodeDisk]:
        body = self._request("GET", "/_nodes/stats/fs")
        disks = []
        for node_id, node in (body.get("nodes") or {}).items():
            roles = node.get("roles") or []
            if not any(str(role).startswith("data") for role in roles):
                continue  # ES: data, data_hot, data_content...; OpenSearch: data
            total = (node.get("fs") or {}).get("total") or {}
            disks.append(
                NodeDisk(
                    name=str(node.get("name") or node_id),
                    total_bytes=_int(total.get("total_in_bytes")),
                    available_bytes=_int(total.get("available_in_bytes")),
                )
            )
        return disks

    def disk_watermarks(self) -> DiskWatermarks:
        body = self._request(
            "GET",
            "/_cluster/settings",
            params={
                "include_defaults": "true",
                "filter_path": "*.cluster.routing.allocation.disk",  # nested: small
            },
        )
        return watermarks_from_settings(body)

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        if self.flavor == "opensearch":
            return self._opensearch_security()
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

    def _opensearch_security(self) -> PrivilegeCheck | None:
        """OpenSearch's security plugin evaluates privileges only when a request is made;
        authinfo tells who we are and with which roles."""
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

    # -- transforms, undo, retention, task records (issue 5) ---------------------------

    def pipeline_exists(self, name: str) -> bool:
        try:
            body = self._request("GET", _path("_ingest", "pipeline", name))
        except EngineError as exc:
            if exc.status == 404:  # both engines answer {} with a 404
                return False
            raise
        return name in body

    def describe_indices(self, pattern: str) -> list[IndexSummary]:
        """``_cat/indices`` (status, creation date), then the aliases and the mappings'
        ``_meta`` of the same indices; open and closed, hidden ones left out."""
        wildcards = {"expand_wildcards": "open,closed"}
        try:
            rows = self._request(
                "GET",
                _path("_cat", "indices", pattern),
                params={"format": "json", "h": "index,status,creation.date", **wildcards},
            )
            aliases = self._request("GET", _path(pattern, "_alias"), params=wildcards)
            # Only the _meta of each mapping (a whole cluster's mappings can be large). An
            # index whose name has a dot is missed by the filter: it looks foreign, so kept.
            mappings = self._request(
                "GET",
                _path(pattern, "_mapping"),
                params={**wildcards, "filter_path": "*.mappings._meta"},
            )
        except IndexNotFound:
            return []
        found = []
        for row in rows or []:
            name = str(row.get("index"))
            meta = ((mappings.get(name) or {}).get("mappings") or {}).get("_meta") or {}
            found.append(
                IndexSummary(
                    name=name,
                    created_ms=_int(row.get("creation.date")),
                    open=row.get("status") != "close",
                    aliases=tuple(sorted((aliases.get(name) or {}).get("aliases") or {})),
                    meta=dict(meta) if isinstance(meta, Mapping) else {},
                )
            )
        return sorted(found, key=lambda i: (i.created_ms, i.name))

    def max_seq_nos(self, index: str) -> dict[str, int]:
        """From the shard-level stats (``seq_no`` is there whatever metric is asked; docs
        is the smallest): the primary copy of each shard."""
        body = self._request("GET", _path(index, "_stats", "docs"), params={"level": "shards"})
        shards = ((body.get("indices") or {}).get(index) or {}).get("shards")
        if shards is None:  # an alias, not an index
            raise IndexNotFound(index)
        found: dict[str, int] = {}
        for number, copies in shards.items():
            for shard in copies:
                if (shard.get("routing") or {}).get("primary"):
                    found[str(number)] = _int((shard.get("seq_no") or {}).get("max_seq_no"))
        return dict(sorted(found.items(), key=lambda item: int(item[0])))

    def delete_task_result(self, task_id: str) -> bool:
        """``DELETE _tasks/<id>`` where the engine has it (OpenSearch 3.9+); else the
        document of the ``.tasks`` system index (OpenSearch 2.x allows it with a
        deprecation warning; Elasticsearch 8 restricts system indices and may refuse:
        EngineError). Elasticsearch has no delete-task API, so it is not asked."""
        if self.flavor == "opensearch":
            try:
                self._request("DELETE", _path("_tasks", task_id))
                return True
            except EngineError as exc:
                if exc.status == 404 and not isinstance(exc, IndexNotFound):
                    return False  # the API exists and has no result stored
                if exc.status not in (400, 405):  # 400/405: no such API before 3.9
                    raise
        try:
            with warnings.catch_warnings():
                # Expected, and said in the README: "this request accesses system indices"
                warnings.filterwarnings("ignore", message=".*system ind")
                body = self._request("DELETE", _path(".tasks", "_doc", task_id))
        except IndexNotFound:
            return False  # no task result was ever stored
        except EngineError as exc:
            if exc.status == 404:
                return False
            raise
        return body.get("result") == "deleted"
