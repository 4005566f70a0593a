"""Read-only checks that ``start`` (and ``--dry-run``) makes before anything is written.

In order: the alias resolves to exactly one concrete index (exit 2 otherwise, as
before: a concrete index named like the alias is ``NotAnAlias``), then

* ``health``: cluster health; red refuses, yellow warns;
* ``closed``: the source index is open (a closed one cannot be read by ``_reindex``);
* ``_source``: the source stores ``_source`` (``_reindex`` copies it), unless the copy
  reads a JSONL file (``--recompute-embeddings --documents-path``);
* ``disk``: the data nodes have room for the copy: the source's primary store size
  times (1 + the target's final replicas) times ``--disk-headroom``, against the space
  free below the cluster's own low disk watermark on every data node (read from
  ``_cluster/settings``: a percentage or ratio of the disk, or an absolute amount of
  free space; all of the free space when the cluster has disk thresholds disabled);
* ``privileges``: on Elasticsearch with security, ``_has_privileges`` for what a run
  does (from 9.5 also ``monitor_reindex`` and ``manage_reindex``); where security is
  off it passes; OpenSearch has no privilege-check API, so
  with its security plugin the user and roles are reported (a warning), without it
  "not checked".

The first failed check raises :class:`PreflightFailed` (exit 13) with one line: what
is wrong and what to do. ``--skip-preflight NAME`` skips a check that is wrong for a
cluster.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .engine.base import (
    LEASE_INDEX,
    DiskWatermarks,
    Engine,
    EngineInfo,
    IndexDefinition,
    IndexStatus,
    PrivilegeCheck,
)
from .errors import PreflightFailed
from .options import RunOptions
from .steps.copy.registry import strategy_for_options
from .steps.planning import flatten_settings, resolve_source

# A byte value as the engines write one: "500mb", "1.5gb", "100b" (binary multiples).
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40, "pb": 2**50}

Status = Literal["ok", "warning", "failed", "skipped", "not checked"]


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    detail: str
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class _Source:
    """What the checks read of the source, each read once."""

    engine: Engine
    alias: str
    name: str
    _status: IndexStatus | None = None
    _definition: IndexDefinition | None = field(default=None, repr=False)

    @property
    def status(self) -> IndexStatus:
        if self._status is None:
            self._status = self.engine.index_status(self.name)
        return self._status

    @property
    def definition(self) -> IndexDefinition:
        if self._definition is None:
            self._definition = self.engine.get_index(self.name)
        return self._definition


def _health(engine: Engine, _info: EngineInfo, src: _Source, _o: RunOptions) -> CheckResult:
    health = engine.cluster_health(timeout_s=10)
    status = health.get("status")
    unassigned = health.get("unassigned_shards", 0)
    detail = f"cluster health is {status} ({unassigned} unassigned shards)"
    if status == "red":
        return CheckResult(
            "health",
            "failed",
            detail,
            "a primary shard is unassigned: fix the cluster first (GET _cluster/allocation/"
            "explain), or --skip-preflight health",
        )
    if status == "yellow":
        return CheckResult("health", "warning", detail + ": replicas are missing")
    return CheckResult("health", "ok", detail)


def _closed(engine: Engine, _info: EngineInfo, src: _Source, _o: RunOptions) -> CheckResult:
    if src.status.status == "close":
        return CheckResult(
            "closed",
            "failed",
            f"source index {src.name!r} is closed",
            f"open it with POST {src.name}/_open, then start again",
        )
    return CheckResult("closed", "ok", f"source index {src.name!r} is open")


def _source_field(engine: Engine, _info: EngineInfo, src: _Source, o: RunOptions) -> CheckResult:
    source_mapping = src.definition.mappings.get("_source")
    enabled = not (isinstance(source_mapping, dict) and source_mapping.get("enabled") is False)
    if enabled:
        return CheckResult("_source", "ok", "the source stores _source")
    input_file = strategy_for_options(o).input_file(o)
    if input_file:
        detail = f"_source is disabled, not needed: documents come from {input_file}"
        return CheckResult("_source", "ok", detail)
    return CheckResult(
        "_source",
        "failed",
        f"source index {src.name!r} has _source disabled: its documents cannot be copied",
        "rebuild it from your own data with --recompute-embeddings --documents-path FILE.jsonl",
    )


def _final_replicas(src: _Source, o: RunOptions) -> int:
    settings = {**flatten_settings(src.definition.settings), **o.settings_overrides}
    try:
        return int(settings.get("index.number_of_replicas", 1))
    except (TypeError, ValueError):  # e.g. auto_expand_replicas decides: assume one
        return 1


def parse_bytes(text: str) -> float:
    """``"500mb"`` -> 524288000.0; ValueError if ``text`` is no byte value."""
    found = _BYTES.match(text)
    if not found:
        raise ValueError(f"not a byte value: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2).lower()]


def watermark_free_bytes(value: str, total: float, max_headroom: str | None = None) -> float:
    """The free space a node of ``total`` bytes must keep under watermark ``value``: a
    percentage or ratio of the disk used (``"85%"``, ``"0.85"``: 15 % of it, at most
    ``max_headroom`` where the engine has one), or an absolute amount (``"50gb"``).
    ValueError when ``value`` is neither."""
    text = value.strip().lower()
    try:
        used = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        return parse_bytes(text)
    if not 0 <= used <= 1:
        raise ValueError(f"not a percentage, ratio or byte value: {value!r}")
    free = (1 - used) * total
    return min(free, parse_bytes(max_headroom)) if max_headroom else free


def _watermark(marks: DiskWatermarks) -> str:
    where = marks.sources.get("low", "defaults")
    setting = "the default" if where == "defaults" else f"a {where} cluster setting"
    return f"the low disk watermark {marks.low} ({setting})"


def _disk(engine: Engine, _info: EngineInfo, src: _Source, o: RunOptions) -> CheckResult:
    primary = src.status.primary_store_bytes
    if primary is None:
        return CheckResult("disk", "not checked", "the engine reports no store size for the source")
    disks = engine.data_node_disks()
    if not disks:
        return CheckResult("disk", "not checked", "the engine reports no data node disks")
    marks = engine.disk_watermarks()
    copies = 1 + _final_replicas(src, o)
    needed = primary * copies * o.disk_headroom
    if marks.enabled:
        try:
            usable = sum(
                max(
                    0.0,
                    d.available_bytes
                    - watermark_free_bytes(marks.low, d.total_bytes, marks.low_max_headroom),
                )
                for d in disks
            )
        except ValueError:
            return CheckResult(
                "disk", "not checked", f"cannot read the low disk watermark {marks.low!r}"
            )
        below = f"free below {_watermark(marks)}"
    else:
        usable = float(sum(d.available_bytes for d in disks))
        below = (
            "free (the cluster has disk thresholds disabled: "
            "cluster.routing.allocation.disk.threshold_enabled is false)"
        )
    detail = (
        f"the copy needs {_bytes(needed)} (primary store {_bytes(primary)} x {copies} copies "
        f"x {o.disk_headroom:g} headroom); {len(disks)} data node(s) have {_bytes(usable)} "
        f"{below}"
    )
    if needed > usable:
        return CheckResult(
            "disk",
            "failed",
            detail,
            "free disk space or add data nodes; if the estimate is wrong for this cluster, "
            "lower --disk-headroom or --skip-preflight disk",
        )
    return CheckResult("disk", "ok", detail)


# Elasticsearch 9.5+ follows, cancels and rethrottles a reindex through the reindex
# management API (GET _reindex/<id>, _cancel, _rethrottle), under its own privileges.
REINDEX_MANAGEMENT_PRIVILEGES = ["monitor_reindex", "manage_reindex"]


def _reindex_management_privileges(info: EngineInfo) -> list[str]:
    if info.flavor == "elasticsearch" and info.major_minor >= (9, 5):
        return list(REINDEX_MANAGEMENT_PRIVILEGES)
    return []  # an older engine knows no such privilege (and would refuse the check)


def _privileges(engine: Engine, info: EngineInfo, src: _Source, o: RunOptions) -> CheckResult:
    target = o.target_index or f"{src.alias}-*"
    result = engine.check_privileges(
        # health, node stats, tasks (list, cancel, rethrottle); 9.5+: reindex management
        ["monitor", "manage", *_reindex_management_privileges(info)],
        [
            ([src.name], ["read", "view_index_metadata", "monitor", "manage"]),  # manage: aliases
            ([target], ["create_index", "write", "manage"]),
            ([LEASE_INDEX], ["create_index", "read", "write", "view_index_metadata"]),
        ],
    )
    if result is None:
        why = "no security plugin" if info.flavor == "opensearch" else "security is not enabled"
        return CheckResult("privileges", "not checked", why)
    if not result.checked and info.flavor == "opensearch":
        return _opensearch_privileges(engine, src, o, result)
    if not result.checked:
        return CheckResult("privileges", "warning", f"not checked: {result.note}")
    if result.missing:
        return CheckResult(
            "privileges",
            "failed",
            f"user {result.user} lacks {', '.join(result.missing)}",
            "grant them to the user's role, or --skip-preflight privileges",
        )
    return CheckResult("privileges", "ok", f"user {result.user} holds every privilege a run needs")


# -- OpenSearch security: the privileges probed ------------------------------------------------
# OpenSearch has no _has_privileges: its security plugin evaluates a request's privileges
# only when the request comes (and 2.x has no simulate_authz). So each action a run would
# otherwise be refused only after it wrote something is probed by a request the engine
# cannot carry out: it names an index that does not exist (a random name, so nobody else
# has made it meanwhile) or asks for what is always refused. A 403 security_exception names
# the missing action; any other answer means the request got past the privilege check.
# Not probed (found by the first refused request, which fails the run in one line): the
# source's write block, the copy's reads and writes and the lease index.


def _opensearch_probes(src: _Source, probe: str) -> list[tuple[str, str, str, str, Any]]:
    """(action, on what, method, path, body) for each probe; ``probe``: a new index name
    matched by the same patterns as the run's target."""
    moved = {"actions": [{"add": {"index": probe, "alias": src.alias}}]}
    moved["actions"].append({"remove": {"index": src.name, "alias": src.alias}})
    unparsable = {"mappings": {"properties": {"probe": {"type": "reindex_fsm_privilege_probe"}}}}
    return [
        ("indices:admin/create", "the target", "PUT", f"/{probe}", unparsable),
        # Both halves of the swap in one request: the first (an index that does not exist)
        # fails it after the privilege check, so nothing moves.
        ("indices:admin/aliases", f"{src.name} and the target", "POST", "/_aliases", moved),
        ("indices:admin/delete", "the target (rollback)", "DELETE", f"/{probe}", None),
        # number_of_shards is final: refused after the privilege check, never applied.
        (
            "indices:admin/settings/update",
            src.name,
            "PUT",
            f"/{src.name}/_settings",
            {"index": {"number_of_shards": 1}},
        ),
        (
            "indices:data/write/reindex",
            "the cluster",
            "POST",
            "/_reindex",
            {"source": {"index": probe}, "dest": {"index": f"{probe}-dest"}},
        ),
        ("cluster:monitor/tasks/lists", "the cluster", "GET", "/_tasks", None),
        (
            "cluster:admin/tasks/cancel",
            "the cluster",
            "POST",
            "/_tasks/_cancel?actions=reindex-fsm-privilege-probe",
            None,
        ),
    ]


def _opensearch_privileges(
    engine: Engine, src: _Source, o: RunOptions, result: PrivilegeCheck
) -> CheckResult:
    target = o.target_index or f"{src.alias}-"
    probe = f"{target}-privilege-probe-{uuid.uuid4().hex[:12]}".replace("--", "-").lower()
    missing = []
    for action, what, method, path, body in _opensearch_probes(src, probe):
        refused = engine.privilege_refusal(action, method, path, body)
        if refused is not None:
            missing.append(f"{refused} on {what}")
    who = f"user {result.user} (roles: {result.note.rsplit('roles: ', 1)[-1]})"
    if missing:
        return CheckResult(
            "privileges",
            "failed",
            f"{who} lacks {', '.join(missing)}",
            "grant them to the user's role (README: Privileges), or --skip-preflight privileges",
        )
    return CheckResult(
        "privileges",
        "ok",
        f"{who} passed every probed privilege check (the write block, the copy's reads and "
        "writes and the lease index are not probed: OpenSearch has no privilege-check API)",
    )


_CHECKS: dict[str, Callable[[Engine, EngineInfo, _Source, RunOptions], CheckResult]] = {
    "health": _health,
    "closed": _closed,
    "_source": _source_field,
    "disk": _disk,
    "privileges": _privileges,
}


def preflight(
    engine: Engine, info: EngineInfo, alias: str, options: RunOptions
) -> list[CheckResult]:
    """Run every check not skipped, in order; raise PreflightFailed at the first that
    fails (alias problems raise their own errors, exit 2). Reads only."""
    source, _aliases = resolve_source(engine, alias)
    src = _Source(engine, alias, source)
    results: list[CheckResult] = []
    for name, check in _CHECKS.items():
        if name in options.skip_preflight:
            results.append(CheckResult(name, "skipped", "--skip-preflight"))
            continue
        result = check(engine, info, src, options)
        results.append(result)
        if result.status == "failed":
            raise PreflightFailed(name, result.detail, hint=result.hint)
    return results
