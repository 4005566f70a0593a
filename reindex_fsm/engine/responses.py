"""What the engines answer, read: errors, ``GET /``, the Tasks API and the other bodies.

Every function here is pure (a body in, a value or an error of :mod:`reindex_fsm.errors`
out), so it is tested without an engine:

* error bodies and client exceptions: :func:`describe_error` (the engine's
  ``type: reason`` on one line), :func:`error_from_answer` (a refusal as the project's
  error type), :func:`unreachable_reason` (why a connection failed);
* ``GET /``: :func:`detect_flavor` (which engine, and whether it is supported);
* the Tasks API: :func:`parse_task`, :func:`parse_task_list`;
* ``_cat/indices``, ``_nodes/stats``, ``_stats``, ``_mget``, ``_alias``/``_mapping``:
  the ``parse_*`` functions below, into the value types of :mod:`.base`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from ..errors import (
    EngineError,
    EngineUnreachable,
    IndexNotFound,
    ReindexFsmError,
    TaskNotFound,
    UnsupportedEngine,
)
from .base import EngineInfo, IndexStatus, IndexSummary, IndexTemplate, NodeDisk, TaskStatus

__all__ = [
    "OPAQUE_ID_HEADER",
    "SUPPORTED_ENGINES",
    "describe_error",
    "detect_flavor",
    "error_from_answer",
    "is_sliced",
    "one_line",
    "parse_index_status",
    "parse_index_summaries",
    "parse_max_seq_nos",
    "parse_mget",
    "parse_node_disks",
    "parse_task",
    "parse_task_list",
    "raise_task_action_failure",
    "unreachable_reason",
]

# The header a request's opaque ID travels in; the Tasks API reports it back.
OPAQUE_ID_HEADER = "X-Opaque-Id"
SUPPORTED_ENGINES = "Elasticsearch 7.17, 8.x or 9.x, or OpenSearch 2.x or later"
_COUNT_FIELDS = ("total", "created", "updated", "deleted", "version_conflicts", "noops")


# -- GET / ---------------------------------------------------------------------------

_ES_TAGLINE = "You Know, for Search"
_ES_BUILD_FLAVORS = ("default", "oss", "serverless")


def detect_flavor(info_body: Any, url: str | None = None) -> EngineInfo:
    """Which engine answered ``GET /``, and whether reindex-fsm supports it.

    ``version.distribution == "opensearch"`` is OpenSearch (2.x and later supported);
    no distribution with the Elasticsearch tagline or build flavor is Elasticsearch
    (7.17, 8.x and 9.x supported). Anything else raises :class:`UnsupportedEngine` (naming
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
        if major not in (8, 9) and not (major == 7 and int(match[2]) >= 17):
            raise UnsupportedEngine(f"Elasticsearch {number} is not supported", hint=hint)
        return EngineInfo("elasticsearch", number, cluster_name, cluster_uuid)

    what = f"distribution {distribution!r}" if distribution else "no known tagline"
    raise UnsupportedEngine(
        f"unrecognised engine at version {number} ({what}): {server} is not Elasticsearch "
        "or OpenSearch",
        hint=hint,
    )


# -- error bodies ----------------------------------------------------------------------


def one_line(text: str, limit: int = 500) -> str:
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
                return (str(etype) if etype else None), one_line(text)
        elif isinstance(err, str) and err:
            return None, one_line(err)
    elif isinstance(body, str) and body.strip():
        return None, one_line(body, 300)
    return None, one_line(fallback)


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
                return (
                    "TLS certificate verification failed: the engine's certificate is not "
                    "signed by a CA this process trusts (give --ca-certs FILE, or --insecure)"
                )
            return reason
    if re.search(r"\bSSL|\bTLS", text):
        return "TLS error: " + one_line(_NO_OBJECT_REPR.sub("", str(chain[-1])), 200)
    return one_line(_NO_OBJECT_REPR.sub("", str(exc)), 200) or type(exc).__name__


def error_from_answer(
    status: int | None,
    body: Any,
    fallback: str,
    *,
    what: str,
    url: str,
    redact: Callable[[str], str],
) -> ReindexFsmError:
    """An engine's refusal of ``what`` (HTTP ``status``, error ``body``) as the project's
    error: a 404 ``index_not_found_exception`` is :class:`IndexNotFound`; a 502/503/504
    (after the client's retries) is :class:`EngineUnreachable` carrying the status; any
    other is :class:`EngineError` with the status and the engine's ``type: reason``.
    ``fallback`` is the reason when the body has none; ``redact`` scrubs the secrets."""
    etype, reason = describe_error(body, fallback=fallback)
    reason = redact(reason)
    if status == 404 and etype == "index_not_found_exception":
        err = body.get("error") if isinstance(body, Mapping) else None
        index = err.get("index") or err.get("resource.id") if err else None
        return IndexNotFound(str(index or "?"))
    if status in (502, 503, 504):
        unreachable = EngineUnreachable(url, f"HTTP {status}: {reason}")
        unreachable.status = status
        return unreachable
    hint = None
    if status in (401, 403):
        hint = (
            "check the credentials (--username and REINDEX_FSM_PASSWORD, user:password in "
            "the engine URL, or the API key) and the user's privileges"
        )
    return EngineError(f"{what} failed (HTTP {status}): {reason}", status=status, hint=hint)


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


def is_sliced(task: Mapping[str, Any]) -> bool:
    """Whether a task's info is a sliced reindex's parent (its status lists slices)."""
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
    if not completed and children is not None and is_sliced(task):
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
        if is_sliced(info):
            status = _add_running_slices(status, children.get(task_id, ()))
        found.append((_int(info.get("start_time_in_millis")), task_id, status))
    return [status for _, _, status in sorted(found, key=lambda t: t[:2])]


def raise_task_action_failure(
    body: Any, task_id: str, what: str, redact: Callable[[str], str]
) -> None:
    """Raise for the failures in a ``_cancel``/``_rethrottle`` answer, if it has any:
    :class:`TaskNotFound` when the task is gone (unknown, or its node left the cluster),
    else :class:`EngineError`."""
    if not isinstance(body, Mapping):
        return
    failures = [*(body.get("node_failures") or ()), *(body.get("task_failures") or ())]
    if not failures:
        return
    failure = failures[0]
    cause = failure.get("caused_by") if isinstance(failure, Mapping) else None
    if isinstance(cause, Mapping) and cause.get("type") in (
        "resource_not_found_exception",
        "no_such_node_exception",  # the task's node left the cluster: the task is gone
    ):
        raise TaskNotFound(task_id)
    _, reason = describe_error(failure)
    raise EngineError(f"{what} failed: {redact(reason)}")


# -- indices, nodes and documents ---------------------------------------------------------


def parse_index_status(rows: Any, index: str) -> IndexStatus:
    """The row of the concrete ``index`` in a ``_cat/indices?format=json&bytes=b`` answer
    (``h=index,status,health,pri.store.size``); IndexNotFound if there is none."""
    for row in rows or []:
        if isinstance(row, Mapping) and row.get("index") == index:
            size = str(row.get("pri.store.size") or "")
            return IndexStatus(
                index=index,
                status=str(row.get("status")),
                health=str(row["health"]) if row.get("health") else None,
                primary_store_bytes=int(size) if size.isdigit() else None,
            )
    raise IndexNotFound(index)


def parse_node_disks(body: Mapping[str, Any]) -> list[NodeDisk]:
    """The data nodes' disks of a ``_nodes/stats/fs`` answer (other nodes left out)."""
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


def parse_index_summaries(
    rows: Any, aliases: Mapping[str, Any], mappings: Mapping[str, Any]
) -> list[IndexSummary]:
    """Indices from ``_cat/indices`` rows (``h=index,status,creation.date``) with their
    aliases (a ``GET <pattern>/_alias`` answer) and the ``_meta`` of their mappings (a
    ``GET <pattern>/_mapping`` answer), oldest first."""
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


def parse_max_seq_nos(body: Mapping[str, Any], index: str) -> dict[str, int]:
    """Each primary shard's ``max_seq_no`` in a ``GET <index>/_stats?level=shards``
    answer, by shard number; IndexNotFound when ``index`` is not in it (an alias)."""
    shards = ((body.get("indices") or {}).get(index) or {}).get("shards")
    if shards is None:  # an alias, not an index
        raise IndexNotFound(index)
    found: dict[str, int] = {}
    for number, copies in shards.items():
        for shard in copies:
            if (shard.get("routing") or {}).get("primary"):
                found[str(number)] = _int((shard.get("seq_no") or {}).get("max_seq_no"))
    return dict(sorted(found.items(), key=lambda item: int(item[0])))


def parse_mget(
    body: Mapping[str, Any],
    index: str,
    wanted: Sequence[str],
    what: str,
    redact: Callable[[str], str],
) -> dict[str, dict[str, Any] | None]:
    """Each ID of a ``POST <index>/_mget`` answer: its ``_source``, or None when not found.
    A per-document error fails the whole lookup (IndexNotFound for a missing index,
    else EngineError), and so does an answer for fewer documents than ``wanted``."""
    found: dict[str, dict[str, Any] | None] = {}
    for doc in body.get("docs") or ():
        error = doc.get("error")
        if error is not None:
            etype, reason = describe_error(error)
            if etype == "index_not_found_exception":
                raise IndexNotFound(index)
            raise EngineError(f"{what} failed for {doc.get('_id')}: {redact(reason)}")
        doc_id = str(doc["_id"])
        found[doc_id] = dict(doc.get("_source") or {}) if doc.get("found") else None
    if len(found) < len(set(wanted)):
        raise EngineError(f"{what} answered for fewer documents")
    return found


# -- index templates ------------------------------------------------------------------------


def parse_index_templates(kind: Literal["composable", "legacy"], body: Any) -> list[IndexTemplate]:
    """``GET _index_template`` (``{"index_templates": [{name, index_template}]}``) or
    ``GET _template`` (``{name: {order, index_patterns, settings, mappings, aliases}}``)."""
    if not isinstance(body, Mapping):
        return []
    if kind == "composable":
        rows = [
            (str(row.get("name")), row.get("index_template") or {})
            for row in body.get("index_templates") or []
            if isinstance(row, Mapping)
        ]
    else:
        rows = [(str(name), spec) for name, spec in body.items() if isinstance(spec, Mapping)]
    found = []
    for name, spec in rows:
        inner = (spec.get("template") or {}) if kind == "composable" else spec
        patterns = spec.get("index_patterns") or []
        found.append(
            IndexTemplate(
                name=name,
                kind=kind,
                index_patterns=tuple([patterns] if isinstance(patterns, str) else patterns),
                priority=int(spec.get("priority" if kind == "composable" else "order") or 0),
                settings=dict(inner.get("settings") or {}),
                mappings=dict(inner.get("mappings") or {}),
                aliases=dict(inner.get("aliases") or {}),
                composed_of=tuple(spec.get("composed_of") or ()),
                data_stream=spec.get("data_stream") is not None,
                meta=dict(spec.get("_meta") or {}),
            )
        )
    return found
