"""Another cluster as the source (``--source-url``): reach it, plan a run from it, and
the engine a run's steps see.

The alias is resolved on the source cluster; the target index is created on the run's
own cluster (``--engine-url``, where the lease, the templates and the swap are), and the
swap creates or moves the alias there. Moving the clients to that cluster is the
operator's.

- Credentials of the source are never stored or printed: they come from the
  ``--source-*`` options, their ``REINDEX_FSM_SOURCE_*`` variables, or the URL's
  ``user:password@`` (taken out of it by :func:`split_credentials`); the run stores the
  URL without them, and the source cluster's UUID, flavor and version (``plan.source_cluster``).
  A resume reaches the stored URL with the credentials given to it, and is refused
  (:class:`~reindex_fsm.errors.WrongCluster`) by another cluster.
- The steps see one engine (:class:`SourcedEngine`): every call about the run's source
  index (count, refresh, its settings, a write block, searches, scans, points in time)
  goes to the source cluster, everything else (the target, aliases, tasks, the lease)
  to the run's own cluster.
- The copy: ``_reindex`` from remote on the target cluster when its allowlist takes the
  source (:func:`probe_remote_reindex`: a ``_reindex`` of no document), else the tool's
  own read-and-bulk (steps/copy/remote_scan.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from .config import Config
from .engine.base import Engine, EngineInfo
from .engine.sourced import SourcedEngine
from .engine.urls import parse_engine_url, redact_url
from .errors import EngineError, EngineUnreachable, UsageError, WrongCluster
from .options import RunOptions
from .plan import Plan
from .preflight import preflight
from .steps import templates, transforms
from .steps.copy.remote_reindex import plan_ranges
from .steps.planning import (
    check_final_settings,
    check_target_name,
    choose_target_name,
    copy_settings,
    name_problem,
    resolve_source,
    target_mappings,
    target_settings,
)
from .steps.remote_swap import target_alias_actions
from .steps.target import reindex_request

# Settings of an index on one cluster that do not belong on a new index of another: the
# node attributes it is placed by, lifecycle policies of that cluster, its version.
NOT_CARRIED_ACROSS = (
    "index.routing.allocation.",
    "index.lifecycle.",
    "index.plugins.index_state_management.",
    "index.opendistro.index_state_management.",
    "index.version.",
    "index.soft_deletes.retention_lease.",
)
# The source checks of preflight that mean something on another cluster (the disk and the
# privileges checks are about the cluster written to).
SOURCE_PREFLIGHT_SKIPPED = ("disk", "privileges")
_CREDENTIAL_KEYS = ("username", "password", "api_key")


# -- reaching the source ------------------------------------------------------------------
def split_credentials(cfg: Config, options: RunOptions) -> tuple[Config, RunOptions]:
    """``--source-url user:password@host``: the credentials go to the source's client
    options (an explicit ``--source-username``/``--source-password`` wins), and the URL
    to store is the one without them."""
    if options.source_url is None:
        return cfg, options
    parsed = parse_engine_url(options.source_url)  # UsageError for a malformed URL
    given = dict(cfg.source_client_options)
    if parsed.basic_auth and "username" not in given and "api_key" not in given:
        given["username"], given["password"] = parsed.basic_auth
    cleaned = redact_url(options.source_url.strip())
    if cleaned == options.source_url and given == cfg.source_client_options:
        return cfg, options
    return replace(cfg, source_client_options=given), replace(options, source_url=cleaned)


def source_engine(cfg: Config, url: str) -> Engine:
    """The source cluster's adapter (its flavor asked with ``GET /``)."""
    return cfg.engine_factory(url, "auto", **cfg.source_client_options)


def cluster_of(engine: Engine, info: EngineInfo) -> dict[str, Any]:
    return {
        "url": engine.url,
        "flavor": info.flavor,
        "version": info.version,
        "cluster_name": info.cluster_name,
        "cluster_uuid": info.cluster_uuid,
    }


def remote_auth(cfg: Config) -> dict[str, Any]:
    """What a ``_reindex`` from remote sends the source (never stored: the request body
    is built at each start of a task)."""
    given = cfg.source_client_options
    if given.get("api_key"):
        return {"headers": {"Authorization": f"ApiKey {given['api_key']}"}}
    if given.get("username"):
        return {"username": given["username"], "password": given.get("password") or ""}
    return {}


class Unreachable:
    """A source cluster that did not answer: every call raises that error again."""

    def __init__(self, error: EngineUnreachable) -> None:
        self.error = error
        self.url = error.url

    def __getattr__(self, name: str) -> Any:
        raise self.error

    def close(self) -> None:
        return None


def sourced(cfg: Config, engine: Engine, plan: Plan) -> Engine:
    """The engine a run's steps see: ``engine`` for a local source; for one on another
    cluster, the :class:`SourcedEngine` over it and that cluster, refused (WrongCluster,
    before anything is written) when the stored URL now reaches another cluster."""
    cluster = plan.source_cluster
    if not cluster:
        return engine
    source = source_engine(cfg, cluster["url"])
    try:
        info = source.info()
    except EngineUnreachable as exc:
        # An abort needs nothing of a read-only source (a cluster retired meanwhile); every
        # step that reads it gets this error when it asks.
        return SourcedEngine(engine, Unreachable(exc), plan.source_index, remote_auth(cfg))
    if cluster.get("cluster_uuid") and info.cluster_uuid != cluster["cluster_uuid"]:
        name = cluster.get("cluster_name")
        stored = f"source cluster {name!r}" if name else "a source cluster"
        reached = f"cluster {info.cluster_name!r} (UUID {info.cluster_uuid or 'unknown'})"
        raise WrongCluster(
            plan.run_id,
            f"{stored} (UUID {cluster['cluster_uuid']}) at {cluster['url']}",
            f"{reached} at {source.url}",
        )
    return SourcedEngine(engine, source, plan.source_index, remote_auth(cfg))


# -- the allowlist probe -----------------------------------------------------------------
def remote_host(url: str) -> str:
    """``host:port`` as the allowlist setting matches it."""
    node = parse_engine_url(url).node_url
    return node.split("://", 1)[1].split("/", 1)[0]


def allowlist_setting(info: EngineInfo) -> str:
    if info.flavor == "elasticsearch":
        return "reindex.remote.whitelist"
    return "reindex.remote.allowlist"


def refusal_line(target: EngineInfo, source_url: str) -> str:
    """What an operator does so that the target cluster may ``_reindex`` from the source."""
    setting = allowlist_setting(target)
    config = "elasticsearch.yml" if target.flavor == "elasticsearch" else "opensearch.yml"
    return (
        f'add "{remote_host(source_url)}" to {setting} in {config} on every node of the '
        "target cluster (a static setting: restart the nodes), or copy with "
        "--remote-copy scan"
    )


def reindex_probe_body(
    source_url: str, source_index: str, dest: str, auth: Mapping[str, Any]
) -> dict[str, Any]:
    """A ``_reindex`` from remote that matches no document: the target cluster checks its
    allowlist, reaches the source and searches it, and writes nothing (no document, so
    no bulk and no index made)."""
    remote = {"host": parse_engine_url(source_url).node_url, **auth}
    return {
        "source": {
            "remote": remote,
            "index": source_index,
            "size": 1,
            "query": {"ids": {"values": []}},
        },
        "dest": {"index": dest},
        "max_docs": 1,
    }


def probe_remote_reindex(
    target: Engine,
    target_info: EngineInfo,
    source_url: str,
    source_index: str,
    dest: str,
    auth: Mapping[str, Any],
) -> dict[str, Any]:
    """Whether the target cluster takes a ``_reindex`` from the source: ``{"allowed",
    "detail"}``; the refusal's detail says which setting to change, and where."""
    body = reindex_probe_body(source_url, source_index, dest, auth)
    try:
        answer = target.reindex_now(body)
    except EngineError as exc:
        text = exc.message
        listed = "allowlist" in text or "whitelist" in text
        why = "not in the allowlist" if listed else f"refused: {text}"
        return {
            "allowed": False,
            "detail": f"the target cluster's _reindex from {redact_url(source_url)} was {why}",
            "fix": refusal_line(target_info, source_url) if listed else None,
        }
    failures = answer.get("failures") if isinstance(answer, dict) else None
    if failures:
        return {
            "allowed": False,
            "detail": f"the probe _reindex reported failures: {str(failures)[:300]}",
            "fix": None,
        }
    return {"allowed": True, "detail": "a _reindex of no document from the source passed"}


# -- the plan ---------------------------------------------------------------------------
def carried_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in settings.items()
        if not any(key == n or key.startswith(n) for n in NOT_CARRIED_ACROSS)
    }


def _check_alias_names(target: Engine, aliases: dict[str, dict[str, Any]]) -> None:
    for name in sorted(aliases):
        if target.index_exists(name) and not target.get_alias(name):
            raise UsageError(
                f"{name} is an index on the target cluster: the alias cannot be created there",
                hint="rename or delete that index on the target cluster first; nothing was done",
            )


def make_plan(
    cfg: Config,
    target: Engine,
    target_info: EngineInfo,
    alias: str,
    options: RunOptions,
    run_id: str,
    now: datetime,
) -> Plan:
    """The plan of a run whose source is on another cluster (reads both, writes
    nothing): the alias resolved there, the target defined from the source's settings
    and mappings (less what does not carry across clusters), the copy chosen."""
    assert options.source_url is not None
    source = source_engine(cfg, options.source_url)
    source_info = source.info()
    if source_info.cluster_uuid and source_info.cluster_uuid == target_info.cluster_uuid:
        raise UsageError(
            f"--source-url {options.source_url} is the target cluster itself",
            hint="leave --source-url out to rebuild an alias within one cluster",
        )
    skipped = tuple(sorted({*options.skip_preflight, *SOURCE_PREFLIGHT_SKIPPED}))
    checks = preflight(source, source_info, alias, replace(options, skip_preflight=skipped))
    index, aliases = resolve_source(source, alias)
    transforms.check(target, options)  # the pipeline runs on the target cluster
    if options.target_index:
        target_name = check_target_name(target, options.target_index)
    else:
        target_name = choose_target_name(target, alias, now)
        problem = name_problem(target_name, index=True)
        if problem:
            raise UsageError(
                f"the target name made from the alias, {target_name!r}, is not a valid index "
                f"name: {problem}",
                hint="give --target-index NAME",
            )
    _check_alias_names(target, aliases)
    definition = source.get_index(index)
    source_count = source.count(index)
    meta = {"run_id": run_id, "alias": alias, "source_index": index, "tool": "reindex-fsm"}
    settings = target_settings(carried_settings(definition.settings), options.settings_overrides)
    mappings = target_mappings(definition.mappings, options.mappings_override, meta)
    while_copying = copy_settings(options)
    check_final_settings(settings, while_copying)
    copy = choose_copy(cfg, target, target_info, options, index, target_name)
    cluster = {
        **cluster_of(source, source_info),
        "write_block": options.block_source_writes,
        "batch_size": options.remote_batch_size,
        **copy,
    }
    if copy["copy"] == "reindex":
        cluster["ranges"] = plan_ranges(source, index, options.remote_ranges)
    request = reindex_request(index, target_name, run_id, options)
    return Plan(
        run_id=run_id,
        alias=alias,
        source_index=index,
        target_index=target_name,
        source_count=source_count,
        settings=settings,
        mappings=mappings,
        aliases=aliases,
        alias_actions=target_alias_actions(target, target_name, aliases),
        reindex=request.body(),
        engine=cluster_of(target, target_info),
        planned_at=now.isoformat(),
        copy_settings=while_copying,
        source_uuid=definition.settings.get("index.uuid"),
        templates=templates.describe(target, target_name, settings, alias),
        preflight=[r.to_dict() for r in checks],
        source_cluster=cluster,
    )


def choose_copy(
    cfg: Config,
    target: Engine,
    target_info: EngineInfo,
    options: RunOptions,
    source_index: str,
    target_name: str,
) -> dict[str, Any]:
    """``{"copy": "reindex"|"scan", "probe": ...}``: ``--remote-copy scan`` as asked;
    ``reindex`` only if the probe passes (else refused, naming the setting); ``auto``
    reindex if it passes, else scan (the probe's answer is kept with the plan)."""
    assert options.source_url is not None
    if options.remote_copy == "scan":
        return {"copy": "scan", "probe": None}
    probe = probe_remote_reindex(
        target, target_info, options.source_url, source_index, target_name, remote_auth(cfg)
    )
    if probe["allowed"]:
        return {"copy": "reindex", "probe": probe}
    if options.remote_copy == "reindex":
        raise UsageError(
            f"--remote-copy reindex: {probe['detail']}",
            hint=probe.get("fix") or "check that the target cluster reaches the source URL",
        )
    return {"copy": "scan", "probe": probe}
