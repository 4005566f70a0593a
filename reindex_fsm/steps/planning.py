"""PLANNED: resolve the alias, choose the target, compute what will be created.

Reads the engine, writes nothing: the same code serves ``--dry-run`` and ``start``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..engine.base import Engine, EngineInfo, index_settings
from ..errors import AliasNotFound, AliasOnSeveralIndices, NotAnAlias, TargetExists, UsageError
from ..options import RunOptions
from ..plan import Plan
from . import deep_verify, lifecycle, templates, transforms, vector_load
from .copy import tuning
from .copy.registry import strategy_for_options
from .target import META_KEY, owner_of, reindex_request, swap_actions
from .write_policy import check_options

# Settings an index reports but cannot be created with (or must not inherit).
VOLATILE_SETTINGS = (
    "index.uuid",
    "index.creation_date",
    "index.creation_date_string",
    "index.provided_name",
    "index.version.",
    "index.history.uuid",
    "index.resize.",
    "index.routing.allocation.initial_recovery.",
    "index.verified_before_close",
    "index.blocks.",  # a write block on the source must not follow it to the target
    "index.frozen",
    "index.search.throttled",
    "index.shrink.",
    "index.downsample.",
    "index.replication.type",  # OpenSearch: only settable on some clusters; keep default
)

# Bulk-load tuning: while the copy runs the target has no replicas to write to and no
# refreshes to make; both come back (to the planned final values) before verification.
COPY_SETTINGS = {"index.number_of_replicas": "0", "index.refresh_interval": "-1"}
MAX_INDEX_NAME = 255  # bytes (UTF-8), the engines' limit for index and alias names
# Characters the engines refuse in an index or alias name (Elasticsearch and OpenSearch
# MetadataCreateIndexService.validateIndexOrAliasName): path and wildcard characters, the
# comma of a list, space, '#'; and ':', which names a remote cluster (refused by
# Elasticsearch 8, deprecated in OpenSearch).
INVALID_NAME_CHARS = '\\/*?"<>|, #:'
# ``_reindex`` slices beyond the source's shard count add sub-requests, not speed
# (Elasticsearch's reindex docs: slices = number of shards is the most efficient; more
# "generally does not improve efficiency and adds overhead"). Each slice is a task with its
# own scroll on the coordinating node: a huge number exhausts its heap. Allow a few per shard.
SLICES_PER_SHARD = 4
MAX_SLICES_PER_SCROLL = 1024  # index.max_slices_per_scroll's default: the engine's own cap


def is_volatile(key: str) -> bool:
    return any(key == v or key.startswith(v) for v in VOLATILE_SETTINGS)


def flatten_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or flat settings -> flat keys, all under ``index.``."""
    return index_settings(settings)


def target_settings(source: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in flatten_settings(source).items() if not is_volatile(k)}
    for key, value in flatten_settings(overrides).items():
        if is_volatile(key):
            raise UsageError(
                f"setting {key} cannot be set on a new index",
                hint="remove it from --settings/--set",
            )
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    return dict(sorted(settings.items()))


def target_mappings(
    source: dict[str, Any], override: dict[str, Any] | None, meta: dict[str, Any]
) -> dict[str, Any]:
    """The source's mappings; each top-level key and each field named in ``override``
    replaces the source's; ``_meta.reindex_fsm`` tags the target as this run's."""
    mappings = copy.deepcopy(source)
    if override:
        override = copy.deepcopy(override)
        props = override.pop("properties", None)
        mappings.update(override)
        if props:
            mappings.setdefault("properties", {}).update(props)
    mappings["_meta"] = {**mappings.get("_meta", {}), META_KEY: meta}
    return mappings


def resolve_source(engine: Engine, alias: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The one concrete index behind ``alias`` and every alias that index carries."""
    check_alias_name(alias)  # a pattern would resolve too, to whatever it matches
    found = engine.get_alias(alias)
    if not found:
        if engine.index_exists(alias):
            raise NotAnAlias(alias)
        raise AliasNotFound(alias)
    if len(found) != 1:
        raise AliasOnSeveralIndices(alias, list(found))
    (source,) = found
    return source, engine.get_index_aliases(source)


def choose_target_name(engine: Engine, alias: str, now: datetime) -> str:
    base = f"{alias}-{now.strftime('%Y%m%d%H%M%S')}".lower()
    name, n = base, 1
    while engine.index_exists(name) or engine.get_alias(name):
        n += 1
        name = f"{base}-{n}"
    return name


def name_problem(name: str, *, index: bool) -> str | None:
    """Why the engines would refuse ``name`` as an index (``index=True``) or alias name, or
    None. Aliases may hold uppercase letters; index names may not."""
    if not name:
        return "it is empty"
    bad = sorted({c for c in name if c in INVALID_NAME_CHARS})
    if bad:
        shown = ", ".join("space" if c == " " else repr(c) for c in bad)
        return f"it contains {shown}"
    if name in (".", ".."):
        return f"it is {name!r}"
    if name.startswith(("_", "-", "+")):
        return f"it starts with {name[0]!r}"
    if len(name.encode("utf-8")) > MAX_INDEX_NAME:
        return f"it is longer than {MAX_INDEX_NAME} bytes"
    if index and name != name.lower():
        return "it has uppercase letters"
    return None


NAME_RULES = (
    'lowercase, at most 255 bytes, none of \\ / * ? " < > | , # : or space, not starting '
    "with _ - +, not . or .."
)


def check_alias_name(alias: str, flag: str = "--alias") -> str:
    """One alias name, as the engines allow it: no pattern (``*``, ``?``), no list (``,``)."""
    problem = name_problem(alias, index=False)
    if problem:
        raise UsageError(
            f"{flag} {alias!r} is not an alias name: {problem}",
            hint="give the exact name of one alias, not a pattern or a list; nothing was done",
        )
    return alias


def check_target_name(engine: Engine, name: str) -> str:
    problem = name_problem(name, index=True)
    if problem:
        raise UsageError(
            f"--target-index {name!r} is not a valid index name: {problem}",
            hint=f"index names are {NAME_RULES}; nothing was done",
        )
    if engine.index_exists(name):
        raise TargetExists(name, owner_of(engine, name))
    if engine.get_alias(name):
        raise UsageError(f"{name!r} is an alias", hint="choose another --target-index")
    return name


def copy_settings(
    options: RunOptions,
    mappings: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    info: EngineInfo | None = None,
) -> dict[str, Any]:
    """What the target carries while it is copied into: the bulk-load tuning, where the
    operator's own copy-time values (--copy-set) win; each goes back to its final value
    (the source's or --set's) before verification. ``mappings``/``settings``/``info``:
    the target's and the engine's, for what depends on them (a vector graph's build)."""
    tuned = dict(COPY_SETTINGS) if options.bulk_tuning else {}
    tuned.update(vector_load.copy_settings(options, mappings, settings or {}, info))
    for key, value in flatten_settings(options.copy_settings_overrides).items():
        if is_volatile(key):
            raise UsageError(f"setting {key} cannot be set on a new index", hint="see --copy-set")
        tuned[key] = value
    return dict(sorted(tuned.items()))


_TIME_VALUE = re.compile(r"-1|0|\d+(nanos|micros|ms|s|m|h|d)")
# Final values the create does not carry (the copy-time value is sent instead) and the
# engine therefore sees only when they are put back, after the copy: checked here by the
# engine's own rules.
_FINAL_VALUE_RULES = {
    "index.number_of_replicas": (re.compile(r"\d+"), "a whole number from 0"),
    "index.refresh_interval": (_TIME_VALUE, "a time value such as 1s or 500ms, or -1"),
}


def check_final_settings(settings: dict[str, Any], while_copying: dict[str, Any]) -> None:
    """The final value of a setting the copy overrides (bulk-load tuning, --copy-set)
    reaches the engine only before verify: refuse one the engine would refuse then."""
    for key in while_copying:
        rule = _FINAL_VALUE_RULES.get(key)
        if rule is None or key not in settings:
            continue
        value = settings[key]
        text = str(value).strip().lower()
        if isinstance(value, bool | float) or not rule[0].fullmatch(text):
            raise UsageError(
                f"setting {key}={json.dumps(value)} is not {rule[1]}",
                hint="fix --set/--settings (the value is put on the target after the copy, "
                "so it is checked now); nothing was done",
            )


def check_slices(options: RunOptions, source: str, settings: dict[str, Any]) -> None:
    """A number of slices is bounded by the source's primary shards (see SLICES_PER_SHARD)
    and by its ``index.max_slices_per_scroll``."""
    if options.slices == "auto":
        return
    shards = max(1, int(settings.get("index.number_of_shards") or 1))
    engine_cap = int(settings.get("index.max_slices_per_scroll") or MAX_SLICES_PER_SCROLL)
    limit = min(SLICES_PER_SHARD * shards, engine_cap)
    if int(options.slices) > limit:
        raise UsageError(
            f"--slices {options.slices} is more than {limit} for {source} ({shards} primary "
            "shard(s)): slices beyond the shard count add overhead, not speed, and very many "
            "exhaust the engine's memory",
            hint=f"use --slices auto (one per shard) or at most {limit} ({SLICES_PER_SHARD} per "
            "shard, within index.max_slices_per_scroll); nothing was done",
        )


def make_plan(
    engine: Engine,
    info: EngineInfo,
    alias: str,
    options: RunOptions,
    run_id: str,
    now: datetime,
) -> Plan:
    """The run's plan, from what the engine holds now. The options were checked first
    (:func:`reindex_fsm.api.check_options`): what needs the source is checked here."""
    strategy = strategy_for_options(options)
    source, aliases = resolve_source(engine, alias)
    transforms.check(engine, options)
    if options.target_index:
        target = check_target_name(engine, options.target_index)
    else:
        target = choose_target_name(engine, alias, now)
        problem = name_problem(target, index=True)  # a long alias + the timestamp
        if problem:
            raise UsageError(
                f"the target name made from the alias, {target!r}, is not a valid index "
                f"name: {problem}",
                hint="give --target-index NAME",
            )
    definition = engine.get_index(source)
    check_options(options, definition.mappings, source)
    check_slices(options, source, definition.settings)
    if options.verify_queries:
        deep_verify.check_queries(engine, source, options)
    source_count = engine.count(source)
    meta = {"run_id": run_id, "alias": alias, "source_index": source, "tool": "reindex-fsm"}
    settings = target_settings(definition.settings, options.settings_overrides)
    # lifecycle settings wait for the swap: a policy must not act on an index not yet live
    settings, handover = lifecycle.hold_back(engine, info, source, definition.settings, settings)
    lifecycle.check_rollover_name(source, target, handover)
    mappings = target_mappings(definition.mappings, options.mappings_override, meta)
    prepared = strategy.prepare(engine, info, options, source, source_count, mappings)
    if prepared.mappings:
        mappings = target_mappings(mappings, prepared.mappings, meta)
    settings = dict(sorted({**settings, **prepared.settings}.items()))
    if prepared.target_count is not None:
        source_count = prepared.target_count  # what the target is to hold
    while_copying = copy_settings(options, mappings, settings, info)
    check_final_settings(settings, while_copying)
    tuned = _copy_tuning(engine, strategy.name, options, source, definition.settings, source_count)
    request = reindex_request(source, target, run_id, options, tuning.batch_size(tuned))
    matching_templates = templates.describe(engine, target, settings, alias)
    return Plan(
        run_id=run_id,
        alias=alias,
        source_index=source,
        target_index=target,
        source_count=source_count,
        settings=settings,
        mappings=mappings,
        aliases=aliases,
        alias_actions=swap_actions(source, target, aliases, info.supports_must_exist),
        reindex=request.body(),
        engine={
            "url": engine.url,
            "flavor": info.flavor,
            "version": info.version,
            "cluster_name": info.cluster_name,
            "cluster_uuid": info.cluster_uuid,
        },
        planned_at=now.isoformat(),
        copy_settings=while_copying,
        **prepared.plan_values,
        source_uuid=definition.settings.get("index.uuid"),
        lifecycle=handover,
        templates=matching_templates,
        copy_tuning=tuned,
    )


def _copy_tuning(
    engine: Engine,
    strategy: str,
    options: RunOptions,
    source: str,
    settings: dict[str, Any],
    documents: int,
) -> dict[str, Any] | None:
    """The ``_reindex`` copy's tuning (steps/copy/tuning.py); None for another copy."""
    if strategy != "reindex":
        return None
    store = engine.index_status(source).primary_store_bytes
    return tuning.choose(options, source, settings, documents, store)


def parse_set(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``--set key=value``: the value is JSON when it parses as JSON, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--set {pair!r} is not key=value", hint="e.g. --set index.number_of_shards=3"
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out
