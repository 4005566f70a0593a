"""What every API family of the contract server shares: the request as parsed, the
engines' error answers, settings and time values as the engines write them, and
:class:`Family`, the base of the route classes (the server's state and the name
resolution the read APIs share)."""

from __future__ import annotations

import copy
import fnmatch
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reindex_fsm.errors import EngineError, IndexNotFound
from reindex_fsm.testing.fake import FakeEngine

START_MILLIS = 1_700_000_000_000
_TYPED_MESSAGE = re.compile(r"^([a-z_]+_exception): (.*)$", re.S)
_DEFAULT_TYPES = {
    400: "illegal_argument_exception",
    404: "resource_not_found_exception",
    409: "version_conflict_engine_exception",
}

Json = Any
Answer = tuple[int, Json]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any = None


@dataclass
class Call:
    method: str
    path: tuple[str, ...]
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    raw: bytes = b""
    params: dict[str, str] = field(default_factory=dict)


Route = tuple[str, tuple[str, ...], Callable[[Call], Answer]]  # methods ("GET|HEAD"), path


# -- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer of the engine: an HTTP status and the error object."""

    def __init__(
        self,
        status: int,
        etype: str,
        reason: str,
        *,
        root_cause: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {etype}: {reason}")
        self.status = status
        self.error = {"type": etype, "reason": reason, **extra}
        self.root_cause = root_cause

    def body(self) -> dict[str, Any]:
        root_cause = self.root_cause or [dict(self.error)]
        return {"error": {"root_cause": root_cause, **self.error}, "status": self.status}


class Unsupported(ApiError):
    """A request the contract server does not implement (recorded as a problem)."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, "illegal_argument_exception", f"contract server: {reason}")


class BadRequest(ApiError):
    """A request a real engine refuses as malformed: answered as the engine would, and
    recorded as a problem (the adapters must never send one)."""


def search_phase_error(status: int, etype: str, reason: str, index: str | None = None) -> ApiError:
    """A search failing on its shard: how the engines wrap a shard-level error."""
    cause = {"type": etype, "reason": reason}
    return ApiError(
        status,
        "search_phase_execution_exception",
        "all shards failed",
        root_cause=[dict(cause)],
        phase="query",
        grouped=True,
        failed_shards=[{"shard": 0, "index": index, "node": "fake-node", "reason": dict(cause)}],
        caused_by=dict(cause),
    )


def index_not_found(index: str) -> ApiError:
    extra: dict[str, Any] = {"resource.type": "index_or_alias", "resource.id": index}
    return ApiError(
        404,
        "index_not_found_exception",
        f"no such index [{index}]",
        **extra,
        index_uuid="_na_",
        index=index,
    )


def from_fake_error(exc: EngineError) -> ApiError:
    """The error answer a real engine gives where the FakeEngine raises ``exc``."""
    if isinstance(exc, IndexNotFound):
        return index_not_found(exc.index)
    status = exc.status or 500
    match = _TYPED_MESSAGE.match(exc.message)
    if match:
        return ApiError(status, match[1], match[2])
    return ApiError(status, _DEFAULT_TYPES.get(status, "exception"), exc.message)


# -- settings and values ----------------------------------------------------------------------


def setting_value(value: Any) -> Any:
    """A setting value as the engines store it: a string (lists of strings stay lists)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [setting_value(v) for v in value]
    return str(value)


def flat_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or flat settings as flat ``index.*`` keys with engine (string) values."""
    if set(settings) == {"settings"} and isinstance(settings["settings"], Mapping):
        settings = settings["settings"]
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            key = prefix if prefix.startswith("index.") else f"index.{prefix}"
            out[key] = setting_value(value)

    walk("", settings)
    return out


def nested_settings(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(value)
    return out


def nest_setting(into: dict[str, Any], prefix: str, key: str, value: Any) -> None:
    """Put flat setting ``key`` into nested ``into`` as the engines' Settings do: where a
    key is both a value and a prefix ("watermark.low", "watermark.low.max_headroom"), the
    longer one stays dotted at the level of the value ("low.max_headroom")."""
    head, dot, rest = key.partition(".")
    if not dot:
        inner = into.get(prefix + head)
        if isinstance(inner, dict):
            for sub, sub_value in inner.items():
                into[f"{prefix}{head}.{sub}"] = sub_value
        into[prefix + head] = value
        return
    existing = into.get(prefix + head)
    if existing is None:
        into[prefix + head] = {}
        nest_setting(into[prefix + head], "", rest, value)
    elif isinstance(existing, dict):
        nest_setting(existing, "", rest, value)
    else:
        nest_setting(into, f"{prefix}{head}.", rest, value)


def valid_task_id(task_id: str) -> str:
    node, sep, number = task_id.partition(":")
    if not (node and sep and number.isdigit()):
        raise ApiError(400, "illegal_argument_exception", f"malformed task id {task_id}")
    return task_id


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value)
    if match is None:
        raise ApiError(400, "illegal_argument_exception", f"failed to parse time [{value}]")
    return float(match[1]) * units[match[2] or "ms"]


# -- the base of the route classes ---------------------------------------------------------


class Family:
    """What a family's routes read: the fake and how the server answers (set by
    :class:`~tests.support.contract.server.ContractServer`), and the name resolution the
    read APIs share (an alias is resolved to its indices, a pattern to the matches)."""

    fake: FakeEngine
    flavor: Literal["elasticsearch", "opensearch"]
    version: str
    cluster_name: str
    task_not_found: Literal["node_failures", "404"]
    id_fielddata: bool
    _ids: itertools.count[int]

    def _alias_targets(self, name: str, exc: IndexNotFound) -> list[str]:
        """The indices alias ``name`` is on; ``exc`` again when it is not an alias."""
        found = sorted(i for i, idx in self.fake.indices.items() if name in idx.aliases)
        if not found:
            raise exc
        return found

    def _concrete(self, name: str) -> list[str]:
        if name in self.fake.indices:
            return [name]
        return self._alias_targets(name, IndexNotFound(name))

    def _matching(self, pattern: str) -> list[str] | None:
        """The indices a wildcard pattern matches (an unrecorded read); None when
        ``pattern`` is a plain name (the caller's own handling applies)."""
        if not any(c in pattern for c in "*?"):
            return None
        return sorted(i for i in self.fake.indices if fnmatch.fnmatchcase(i, pattern))

    def _body(self, call: Call) -> dict[str, Any]:
        if call.body is None:
            return {}
        if not isinstance(call.body, Mapping):
            raise ApiError(400, "parse_exception", "request body must be a JSON object")
        return dict(call.body)
