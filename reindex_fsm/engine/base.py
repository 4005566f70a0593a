"""The Engine protocol: the few calls a run needs, and the value types they return.

The real adapters (:mod:`.elasticsearch`, :mod:`.opensearch`) and the test fake
(:mod:`reindex_fsm.testing.fake`) implement this one protocol. Every method raises only
:mod:`reindex_fsm.errors` exceptions: ``EngineUnreachable`` when the cluster
cannot be reached, ``IndexNotFound`` for a missing index, ``EngineError`` for
any other refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Flavor = Literal["elasticsearch", "opensearch"]

# Properties an alias can carry, as GET _alias returns them and _aliases "add" takes them.
ALIAS_PROPERTIES = (
    "filter",
    "index_routing",
    "search_routing",
    "routing",
    "is_write_index",
    "is_hidden",
)

# The opaque-ID header every request of a run carries, so that its tasks can be found again.
OPAQUE_ID_PREFIX = "reindex-fsm:"


# The Engine calls that change the cluster, the lease's own calls (put_lease, delete_lease)
# aside: what a run may make only while it holds its lease, and what the fake counts as a
# write.
ENGINE_WRITES: frozenset[str] = frozenset(
    {
        "create_index",
        "put_settings",
        "update_aliases",
        "delete_index",
        "start_reindex",
        "cancel_task",
        "rethrottle",
        "bulk",
        "add_write_block",
        "remove_write_block",
        "delete_task_result",
        # lifecycle: the ILM and ISM hand-over after the swap (and back on undo)
        "ilm_remove_policy",
        "ism_add_policy",
        "ism_remove_policy",
        # -- index templates: the run's own template, only while its target is created
        "put_index_template",
        "delete_index_template",
    }
)


def opaque_id_for(run_id: str) -> str:
    return f"{OPAQUE_ID_PREFIX}{run_id}"


@dataclass(frozen=True)
class EngineInfo:
    flavor: Flavor
    version: str
    cluster_name: str = ""
    cluster_uuid: str = ""  # GET /'s cluster_uuid ("" when the engine gives none yet)

    @property
    def major_minor(self) -> tuple[int, int]:
        parts = self.version.split(".")
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0

    @property
    def supports_must_exist(self) -> bool:
        """`must_exist` on an _aliases remove action: Elasticsearch 7.11+, OpenSearch 2.12+."""
        if self.flavor == "elasticsearch":
            return self.major_minor >= (7, 11)
        return self.major_minor >= (2, 12)


@dataclass(frozen=True)
class IndexDefinition:
    """An index's settings (flat keys, e.g. ``index.number_of_shards``) and mappings."""

    settings: dict[str, Any]
    mappings: dict[str, Any]


@dataclass(frozen=True)
class TaskStatus:
    """What the Tasks API says of a reindex task, normalised across engines."""

    task_id: str
    completed: bool
    total: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    version_conflicts: int = 0
    noops: int = 0
    failures: tuple[dict[str, Any], ...] = ()
    error: dict[str, Any] | None = None
    cancelled: bool = False
    opaque_id: str | None = None
    description: str = ""
    running_time_s: float = 0.0

    @property
    def done_docs(self) -> int:
        return self.created + self.updated + self.deleted + self.version_conflicts + self.noops

    @property
    def failed(self) -> bool:
        return bool(self.failures) or self.error is not None

    def counts(self) -> dict[str, int]:
        return {
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "version_conflicts": self.version_conflicts,
            "noops": self.noops,
            "failures": len(self.failures),
        }


@dataclass(frozen=True)
class ReindexRequest:
    source: str
    dest: str
    opaque_id: str
    op_type: Literal["index", "create"] = "create"
    conflicts: Literal["abort", "proceed"] = "abort"
    slices: int | str = 1
    requests_per_second: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # --pipeline / --script: dest.pipeline and the body's script.
    pipeline: str | None = None
    script: Mapping[str, Any] | None = None
    # Documents per scroll batch (one bulk each): ``source.size`` on every engine (a top-level
    # ``size``/``max_docs`` would cap the copy instead). None: the engine's default, 1,000.
    batch_size: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source": {"index": self.source},
            "dest": {"index": self.dest, "op_type": self.op_type},
            "conflicts": self.conflicts,
        }
        if self.batch_size is not None:
            body["source"]["size"] = self.batch_size
        if self.pipeline:
            body["dest"]["pipeline"] = self.pipeline
        if self.script:
            body["script"] = dict(self.script)
        body.update(self.extra)
        return body


# -- lease --
# The tool's own small index of leases: one document per alias (its ID is the alias).
LEASE_INDEX = "reindex-fsm-leases"
LEASE_INDEX_SETTINGS = {
    "index.hidden": True,
    "index.number_of_shards": 1,
    "index.auto_expand_replicas": "0-1",
}
LEASE_INDEX_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "run_id": {"type": "keyword"},
        "owner": {"type": "keyword"},
        "alias": {"type": "keyword"},
        "expires_at": {"type": "date"},
    },
}


@dataclass(frozen=True)
class StoredLease:
    """A lease document as stored, with what a conditional write of it needs."""

    doc: dict[str, Any]
    seq_no: int
    primary_term: int


@dataclass(frozen=True)
class IndexStatus:
    """One row of ``_cat/indices``: open or closed, health, primary store size."""

    index: str
    status: str  # "open" or "close"
    health: str | None = None
    primary_store_bytes: int | None = None  # None when the engine does not know (closed)


@dataclass(frozen=True)
class NodeDisk:
    """The data paths of one data node, summed, from ``_nodes/stats/fs``."""

    name: str
    total_bytes: int
    available_bytes: int


# The engines' defaults for the disk-based shard allocator.
WATERMARK_DEFAULTS = {"low": "85%", "high": "90%", "flood_stage": "95%"}


@dataclass(frozen=True)
class DiskWatermarks:
    """The cluster's disk watermarks in effect (``cluster.routing.allocation.disk.*``: a
    transient setting wins over a persistent one, which wins over the default), each as
    the engine takes it: a percentage or ratio of disk used (``"85%"``, ``"0.85"``) or an
    absolute amount of free space (``"50gb"``). ``enabled`` is ``threshold_enabled``;
    ``low_max_headroom`` (Elasticsearch 8.5+) caps the free space a percentage asks for;
    ``sources`` says where each value came from."""

    enabled: bool = True
    low: str = WATERMARK_DEFAULTS["low"]
    high: str = WATERMARK_DEFAULTS["high"]
    flood_stage: str = WATERMARK_DEFAULTS["flood_stage"]
    low_max_headroom: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # {"low": "transient", ...}


@dataclass(frozen=True)
class PrivilegeCheck:
    """What the engine said of the caller's privileges. ``checked`` is false where the
    engine has security but no API to evaluate privileges (OpenSearch)."""

    checked: bool
    user: str | None = None
    missing: tuple[str, ...] = ()  # "cluster:monitor", "<index>:write", ...
    note: str = ""


@dataclass(frozen=True)
class IndexSummary:
    """One index as ``cleanup`` and ``undo`` see it: name, creation time, open or closed,
    its aliases and the ``_meta`` of its mappings ({} when it has none)."""

    name: str
    created_ms: int
    open: bool
    aliases: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


# -- data streams ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DataStreamUse:
    """What a name is to the engine's data streams: a data stream (``kind="data_stream"``),
    a backing index (``"backing_index"``) or an alias of data streams (``"alias"``, ES 7.14+);
    ``data_streams`` are the streams concerned, ``backing_indices`` theirs, as far as known."""

    kind: Literal["data_stream", "backing_index", "alias"]
    name: str
    data_streams: tuple[str, ...]
    backing_indices: tuple[str, ...] = ()


@dataclass(frozen=True)
class LifecycleStatus:
    """What an engine's lifecycle management says of one index: Elasticsearch ILM
    (``GET <index>/_ilm/explain``) or OpenSearch ISM (``GET _plugins/_ism/explain/<index>``).
    ``policy`` is None when the index is not managed; ``phase`` is ILM's phase or ISM's
    state; ``lifecycle_date_ms`` the date ILM counts the index's age from."""

    policy: str | None
    phase: str | None = None
    lifecycle_date_ms: int | None = None

    @property
    def managed(self) -> bool:
        return self.policy is not None


# -- index templates --
@dataclass(frozen=True)
class IndexTemplate:
    """An index template as the engine stores it: ``kind`` "composable"
    (``_index_template``, ``priority``) or "legacy" (``_template``, its ``order`` as
    ``priority``); ``settings``, ``mappings`` and ``aliases`` are its own template body
    (a composable one's component templates are named in ``composed_of``, not merged)."""

    name: str
    kind: Literal["composable", "legacy"]
    index_patterns: tuple[str, ...]
    priority: int
    settings: dict[str, Any] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)
    aliases: dict[str, Any] = field(default_factory=dict)
    composed_of: tuple[str, ...] = ()
    data_stream: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """The calls a run makes against a cluster, by topic."""

    url: str  # shown and stored without credentials

    # -- cluster and health: who answers, its state, its nodes' disks, its security --------
    def info(self) -> EngineInfo: ...

    def cluster_health(
        self, index: str | None = None, wait_for_status: str | None = None, timeout_s: float = 30
    ) -> dict[str, Any]:
        """GET _cluster/health[/index]; ``timed_out`` is true when the wait ran out."""
        ...

    def plugins(self) -> set[str]:
        """The component names of the plugins and modules installed on any node."""
        ...

    def data_node_disks(self) -> list[NodeDisk]:
        """Disk space of every data node (``_nodes/stats/fs``)."""
        ...

    def disk_watermarks(self) -> DiskWatermarks:
        """The disk watermarks in effect (``GET _cluster/settings?include_defaults=true``)."""
        ...

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        """Does the caller hold ``cluster`` privileges and, per ``(names, privileges)``,
        index privileges? None when the engine has no security enabled."""
        ...

    # -- indices and settings: one concrete index's definition, state and life -------------
    def index_exists(self, index: str) -> bool: ...

    def get_index(self, index: str) -> IndexDefinition: ...

    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None: ...

    def put_settings(self, index: str, settings: Mapping[str, Any]) -> None: ...

    def refresh(self, index: str) -> None: ...

    def force_merge(self, index: str, max_num_segments: int) -> str | None:
        """_forcemerge each shard to ``max_num_segments``, in the background: its task."""

    def count(self, index: str) -> int: ...

    def delete_index(self, index: str) -> None: ...

    def index_status(self, index: str) -> IndexStatus:
        """``_cat/indices`` of one concrete index; IndexNotFound if there is none."""
        ...

    def describe_indices(self, pattern: str) -> list[IndexSummary]:
        """Every index (open or closed) matching ``pattern``; [] when none does."""
        ...

    def max_seq_nos(self, index: str) -> dict[str, int]:
        """Each primary shard's ``max_seq_no``, keyed by shard number
        (``GET <index>/_stats/docs?level=shards``). Every index, update and delete on a
        shard raises it, refreshed or not, and it is kept across restarts; a no-op update
        leaves it. IndexNotFound for a missing index; EngineError when the stats are
        refused (they need the ``monitor`` index privilege)."""
        ...

    # -- aliases: where an alias points, and the one atomic swap ---------------------------
    def get_alias(self, alias: str) -> dict[str, dict[str, dict[str, Any]]]:
        """``{index: {alias_name: properties}}`` for every index the alias is on; {} if none."""
        ...

    def get_index_aliases(self, index: str) -> dict[str, dict[str, Any]]:
        """Every alias of one index with its properties: ``{alias_name: properties}``."""
        ...

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        """One atomic _aliases request."""
        ...

    # -- write blocks: the source kept read-only while the last writes are copied ----------
    def add_write_block(self, index: str) -> None:
        """``PUT <index>/_block/write``: refuse writes to ``index``. Returns once every
        shard has the block, i.e. after the writes in flight have finished."""
        ...

    def remove_write_block(self, index: str) -> None:
        """Reset ``index.blocks.write`` on ``index`` (to its default: writable)."""
        ...

    # -- documents and search: bulk writes, scans, point-in-time pages, lookups by ID ------
    def bulk(self, actions: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        """Index ``actions`` (helpers.bulk format); return (succeeded, errors)."""
        ...

    def scan(
        self, index: str, query: Mapping[str, Any] | None = None, preserve_order: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every hit of ``query`` (all documents by default), as ``{_id, _source, ...}``;
        in the query's sort order only with ``preserve_order``."""
        ...

    def search(self, index: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        """One search request; ``index`` None for a point-in-time search (the PIT names it).
        Returns the raw response (``hits.hits`` holds the hits)."""
        ...

    def open_pit(self, index: str, keep_alive: str) -> str | None:
        """Open a point in time on ``index``; None when the engine has no PIT API."""
        ...

    def close_pit(self, pit_id: str) -> None:
        """Close a point in time; one that is already gone is not an error."""
        ...

    def mget(
        self, index: str, docs: Sequence[tuple[str, str | None]], source: bool = True
    ) -> dict[str, dict[str, Any] | None]:
        """``POST <index>/_mget`` of ``docs`` as ``(_id, routing or None)``: for each ID its
        ``_source`` ({} when ``source`` is false), or None when ``index`` has no such
        document. IndexNotFound for a missing index; EngineError for a failed lookup."""
        ...

    # -- reindex and tasks: the server-side copy, found again by its opaque ID -------------
    def start_reindex(self, request: ReindexRequest) -> str:
        """Start ``_reindex`` with ``wait_for_completion=false``; return the task ID."""
        ...

    def get_task(self, task_id: str) -> TaskStatus | None:
        """The task's status, or None when the engine no longer knows it (vanished)."""
        ...

    def list_reindex_tasks(self, opaque_id: str | None = None) -> list[TaskStatus]:
        """Running reindex tasks, those carrying ``opaque_id`` only when it is given."""
        ...

    def cancel_task(self, task_id: str) -> None: ...

    def rethrottle(self, task_id: str, requests_per_second: float) -> None: ...

    def delete_task_result(self, task_id: str) -> bool:
        """Delete a finished task's stored result; False when none is stored. Raises
        ``EngineError`` when the engine refuses (Elasticsearch 8 forbids it)."""
        ...

    # -- lease: one run per alias, as a document of the tool's own lease index -------------
    def get_lease(self, key: str) -> StoredLease | None:
        """The lease document ``key`` of :data:`LEASE_INDEX` (a realtime GET); None if
        there is none (or no lease index yet)."""
        ...

    def put_lease(
        self,
        key: str,
        doc: Mapping[str, Any],
        *,
        seq_no: int | None = None,
        primary_term: int | None = None,
    ) -> StoredLease:
        """Write a lease: ``op_type=create`` when ``seq_no`` is None (the lease index is
        created, hidden, on first use), else only if it is still at ``seq_no`` /
        ``primary_term``. :class:`~reindex_fsm.errors.LeaseConflict` on a 409."""
        ...

    def delete_lease(self, key: str, seq_no: int, primary_term: int) -> None:
        """Delete a lease if it is still at ``seq_no``/``primary_term`` (LeaseConflict
        if not); one that is already gone is not an error."""
        ...

    # -- ingest pipelines: what a copy's transform names must exist ------------------------
    def pipeline_exists(self, name: str) -> bool:
        """Whether the ingest pipeline ``name`` exists (``GET _ingest/pipeline/<name>``)."""
        ...

    # -- data streams: a name that is a data stream, an alias of some, or a backing index --
    def data_stream_use(self, name: str) -> DataStreamUse | None:
        """What ``name`` is to the data streams (``GET _resolve/index/<name>``); None when
        it is none of them, or the engine has no such API. Reads only."""

    # -- lifecycle: Elasticsearch ILM and OpenSearch ISM, handed over at the swap ----------
    def ilm_explain(self, index: str) -> LifecycleStatus | None:
        """``GET <index>/_ilm/explain``; None when the engine has no ILM (no such API).
        IndexNotFound for a missing index."""
        ...

    def ilm_remove_policy(self, index: str) -> None:
        """``POST <index>/_ilm/remove``: ILM stops managing ``index`` (its
        ``index.lifecycle.name`` and ``rollover_alias`` are removed)."""
        ...

    def ism_explain(self, index: str) -> LifecycleStatus | None:
        """``GET _plugins/_ism/explain/<index>``; None when the engine has no ISM plugin
        (no such API). IndexNotFound for a missing index."""
        ...

    def ism_add_policy(self, index: str, policy_id: str) -> None:
        """``POST _plugins/_ism/add/<index>``; EngineError naming the reason when ISM
        lists the index among its failed ones (already managed, closed, no such policy)."""
        ...

    def ism_remove_policy(self, index: str) -> None:
        """``POST _plugins/_ism/remove/<index>`` (ISM also sets the index's
        ``auto_manage`` to false); an index no policy manages is not an error."""

    # -- index templates: what a new index's name would be given, and the run's own ------
    def index_templates(self) -> list[IndexTemplate]:
        """Every composable (``GET _index_template``) and legacy (``GET _template``)
        index template; a kind the engine has no API for is left out."""
        ...

    def simulate_index(self, index: str) -> dict[str, Any] | None:
        """What the composable templates would give a new index named ``index``
        (``POST _index_template/_simulate_index/<index>``, component templates merged):
        ``{"settings", "mappings", "aliases"}``, {} when none matches; None when the
        engine has no such API."""
        ...

    def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        """``PUT _index_template/<name>``: create or replace a composable template."""
        ...

    def delete_index_template(self, name: str) -> bool:
        """``DELETE _index_template/<name>``; False when there was none."""

    # -- OpenSearch security: a privilege probed by a request that can change nothing ------
    def privilege_refusal(
        self, action: str, method: str, path: str, body: Any = None
    ) -> str | None:
        """Send a request the engine cannot carry out (it names an index that does not
        exist, or asks what is always refused) to learn whether the security plugin lets
        ``action`` through: the action named by its 403 refusal, None when the request
        got past the privilege check (any other answer). Credentials refused (401) raise."""
        ...

    # -- another cluster as the source --
    def reindex_now(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST _reindex?wait_for_completion=true`` with ``body``: the answer (counts,
        failures); an engine refusal raises EngineError. For short requests only (the
        allowlist probe of a ``_reindex`` from remote, which copies no document)."""
        ...


_DISK = "cluster.routing.allocation.disk."


def watermarks_from_settings(body: Mapping[str, Any]) -> DiskWatermarks:
    """The watermarks in a ``GET _cluster/settings?include_defaults=true`` answer (flat or
    nested keys): transient over persistent over defaults."""
    layers = {
        name: flat_settings(body.get(name) or {})
        for name in ("transient", "persistent", "defaults")
    }

    def value(key: str) -> tuple[str | None, str]:
        for name, layer in layers.items():
            if _DISK + key in layer:
                return str(layer[_DISK + key]), name
        return None, "default"

    found: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in ("low", "high", "flood_stage"):
        raw, where = value(f"watermark.{key}")
        if raw is not None:
            found[key] = raw
        sources[key] = where
    enabled, _ = value("threshold_enabled")
    headroom, _ = value("watermark.low.max_headroom")
    return DiskWatermarks(
        enabled=str(enabled).lower() != "false",
        low_max_headroom=headroom if headroom not in (None, "-1") else None,
        sources=sources,
        **found,
    )


def flat_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings (``{"index": {"refresh_interval": ...}}``) -> dotted keys, as given."""
    out: dict[str, Any] = {}
    for key, inner in settings.items():
        if isinstance(inner, Mapping):
            out.update(flat_settings(inner, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = inner
    return out


def index_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """An index's settings, nested or flat -> flat keys, all under ``index.``, sorted."""
    flat = flat_settings(settings)
    return dict(
        sorted(((k if k.startswith("index.") else f"index.{k}"), v) for k, v in flat.items())
    )
