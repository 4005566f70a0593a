"""PLANNED: resolve the alias, choose the target, compute what will be created.

Reads the engine, writes nothing: the same code serves ``--dry-run`` and ``start``.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from ..engine.base import ALIAS_PROPERTIES, Engine, EngineInfo, ReindexRequest, opaque_id_for
from ..errors import AliasNotFound, AliasOnSeveralIndices, NotAnAlias, TargetExists, UsageError
from ..runplan import Plan, RunOptions
from . import transforms
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

META_KEY = "reindex_fsm"
# Bulk-load tuning: while the copy runs the target has no replicas to write to and no
# refreshes to make; both come back (to the planned final values) before verification.
COPY_SETTINGS = {"index.number_of_replicas": "0", "index.refresh_interval": "-1"}
MAX_INDEX_NAME = 255


def is_volatile(key: str) -> bool:
    return any(key == v or key.startswith(v) for v in VOLATILE_SETTINGS)


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested or flat settings -> flat keys, all under ``index.``."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{full}."))
        else:
            flat[full] = value
    if not prefix:
        flat = {(k if k.startswith("index.") else f"index.{k}"): v for k, v in flat.items()}
    return flat


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


def swap_actions(
    source: str, target: str, aliases: dict[str, dict[str, Any]], must_exist: bool
) -> list[dict[str, Any]]:
    """One atomic request: every alias leaves the source and lands on the target with
    its properties. Removes come first so that a write index is never doubled."""
    actions: list[dict[str, Any]] = []
    for name in sorted(aliases):
        remove: dict[str, Any] = {"index": source, "alias": name}
        if must_exist:
            remove["must_exist"] = True
        actions.append({"remove": remove})
    for name, props in sorted(aliases.items()):
        add = {"index": target, "alias": name}
        add.update({k: v for k, v in props.items() if k in ALIAS_PROPERTIES})
        actions.append({"add": add})
    return actions


def resolve_source(engine: Engine, alias: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The one concrete index behind ``alias`` and every alias that index carries."""
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


def check_target_name(engine: Engine, name: str) -> str:
    if name != name.lower() or len(name) > MAX_INDEX_NAME or name.startswith(("_", "-", "+")):
        raise UsageError(
            f"{name!r} is not a valid index name",
            hint="use lowercase, at most 255 bytes, not starting with _ - +",
        )
    if engine.index_exists(name):
        raise TargetExists(name, owner_of(engine, name))
    if engine.get_alias(name):
        raise UsageError(f"{name!r} is an alias", hint="choose another --target-index")
    return name


def copy_settings(options: RunOptions) -> dict[str, Any]:
    """What the target carries while it is copied into: the bulk-load tuning, where the
    operator's own copy-time values (--copy-set) win; each goes back to its final value
    (the source's or --set's) before verification."""
    tuned = dict(COPY_SETTINGS) if options.bulk_tuning else {}
    for key, value in flatten_settings(options.copy_settings_overrides).items():
        if is_volatile(key):
            raise UsageError(f"setting {key} cannot be set on a new index", hint="see --copy-set")
        tuned[key] = value
    return dict(sorted(tuned.items()))


def index_uuid(engine: Engine, index: str) -> str | None:
    """An index's ``index.uuid`` (None: no such index): its identity, which a name is not."""
    if not engine.index_exists(index):
        return None
    return engine.get_index(index).settings.get("index.uuid")


def owner_of(engine: Engine, index: str) -> str | None:
    """The run ID in an index's ``_meta``, if reindex-fsm created it."""
    meta = engine.get_index(index).mappings.get("_meta", {}).get(META_KEY, {})
    return meta.get("run_id") if isinstance(meta, dict) else None


def reindex_request(source: str, target: str, run_id: str, options: RunOptions) -> ReindexRequest:
    """The copy's request, the same at plan time and on every (re)start of the copy; the
    rate is the run's current one (``rethrottle`` stores it in the options)."""
    return ReindexRequest(
        source=source,
        dest=target,
        opaque_id=opaque_id_for(run_id),
        slices=options.slices,
        requests_per_second=options.requests_per_second,
        pipeline=options.pipeline,
        script=options.script,
    )


def make_plan(
    engine: Engine,
    info: EngineInfo,
    alias: str,
    options: RunOptions,
    run_id: str,
    now: datetime,
) -> Plan:
    source, aliases = resolve_source(engine, alias)
    transforms.check(engine, options)
    if options.target_index:
        target = check_target_name(engine, options.target_index)
    else:
        target = choose_target_name(engine, alias, now)
    definition = engine.get_index(source)
    check_options(options, definition.mappings, source)
    source_count = engine.count(source)
    meta = {"run_id": run_id, "alias": alias, "source_index": source, "tool": "reindex-fsm"}
    settings = target_settings(definition.settings, options.settings_overrides)
    mappings = target_mappings(definition.mappings, options.mappings_override, meta)
    recompute_plan = None
    if options.recompute_embeddings:
        from . import recompute

        recompute_plan, vector_mappings, vector_settings = recompute.prepare(
            engine, info, options, source, source_count, mappings
        )
        mappings = target_mappings(mappings, vector_mappings, meta)
        settings = dict(sorted({**settings, **vector_settings}.items()))
        if recompute_plan["expected"] is not None:
            source_count = recompute_plan["expected"]  # what the target is to hold
    request = reindex_request(source, target, run_id, options)
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
        copy_settings=copy_settings(options),
        recompute=recompute_plan,
        source_uuid=definition.settings.get("index.uuid"),
    )


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
