"""The fake cluster's state and the plumbing every fake engine call goes through.

:class:`FakeCore` holds everything the topic modules read and write (indices, tasks,
points in time, leases, the cluster's disks and settings, security), records each
engine call in order, raises the faults a test injected, and has the test controls
that are no engine call (``add_index``, ``fail_on``, ``snapshot``...).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...engine.base import ENGINE_WRITES, EngineInfo, NodeDisk, ReindexRequest
from ...errors import EngineError, EngineUnreachable, IndexNotFound
from .copying import clone

MUTATING = ENGINE_WRITES | {"put_lease", "delete_lease"}


class Docs(dict[str, Any]):
    """An index's documents; ``seq_no`` counts every write, as a shard's max_seq_no does
    (-1: none yet), whoever makes it (a bulk, a client's write, a copy, a test)."""

    seq_no = -1

    def __setitem__(self, key: Any, value: Any) -> None:
        self.seq_no += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.seq_no += 1
        super().__delitem__(key)

    def pop(self, key: Any, *default: Any) -> Any:
        self.seq_no += 1
        return super().pop(key, *default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        self.seq_no += len(self)
        super().clear()


@dataclass
class FakeIndex:
    settings: dict[str, Any]
    mappings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    closed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.docs, Docs):
            docs = Docs()
            dict.update(docs, self.docs)  # loaded, not written: max_seq_no stays -1
            self.docs = docs


@dataclass
class TaskScript:
    """How the next reindex task behaves."""

    docs_per_poll: int = 1000  # documents copied each time the task is polled
    fail_after_polls: int | None = None  # report a bulk failure and complete
    vanish_after_polls: int | None = None  # the engine forgets the task (node lost)
    stall: bool = False  # never progresses (for abort tests)
    # the task's running time grows this much per poll (0: the fake reports none, so no
    # ETA can be told from its progress)
    seconds_per_poll: float = 0.0


@dataclass
class FakeTask:
    """A reindex task and its counts, as BulkByScrollTask.Status keeps them."""

    task_id: str
    request: ReindexRequest
    pending: list[str]  # document IDs still to copy
    script: TaskScript
    total: int
    polls: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0  # a reindex deletes only by a script's ctx.op; the fake runs none
    version_conflicts: int = 0
    noops: int = 0  # likewise a script's ctx.op = "noop"
    failures: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
    completed: bool = False
    vanished: bool = False
    rps: float | None = None


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.method}({', '.join(map(str, self.args))})"


class FakeCore:
    """The state of one fake cluster, call recording and fault injection."""

    def __init__(
        self,
        flavor: str = "opensearch",
        version: str = "2.19.1",
        url: str = "http://fake-cluster:9200",
        cluster_uuid: str = "fake-cluster-uuid",
    ) -> None:
        self.url = url
        self._info = EngineInfo(
            flavor=flavor,  # type: ignore[arg-type]
            version=version,
            cluster_name="fake",
            cluster_uuid=cluster_uuid,
        )
        self.indices: dict[str, FakeIndex] = {}
        self.calls: list[Call] = []
        # -- faults and call counts
        self._faults: dict[tuple[str, int], BaseException] = {}
        self._sticky: dict[str, BaseException] = {}  # method -> error on every call (fail_always)
        self._counts: dict[str, int] = {}
        self.refusing = False
        # -- reindex tasks
        self.tasks: dict[str, FakeTask] = {}
        self.task_script = TaskScript()
        self.next_task_scripts: list[TaskScript] = []  # one each for the next reindex tasks
        self._task_ids = itertools.count(1)
        # Whether finished task results may be deleted (False: refused, as Elasticsearch 8 does).
        self.task_results_deletable = True
        # A reindex into a missing index: False, an AssertionError (the tool must never
        # let it); True, created as a real engine does (dynamic mappings, no _meta).
        self.auto_create_missing_dest = False
        # -- indices: creation dates and UUIDs (an index made again under the same name is
        # another one)
        self._created = itertools.count(1)
        self._uuids = itertools.count(1)
        self.closed: set[str] = set()  # closed indices
        self.store_bytes: dict[str, int] = {}  # primary store size per index (default: 1000/doc)
        # -- searches, plugins, ingest pipelines by name
        self.pits: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.pit_supported = True
        self.plugin_names: set[str] = set()
        self.pipelines: dict[str, dict[str, Any]] = {}
        # -- lease documents by key: (doc, seq_no); the primary term is always 1 here
        self.leases: dict[str, tuple[dict[str, Any], int]] = {}
        self.lease_index_created = False
        self._seq_nos = itertools.count(0)
        # -- cluster health, disks and settings
        self.health_status = "green"
        self.unassigned_shards = 0
        self.disks = [NodeDisk("fake-node", total_bytes=100 * 2**30, available_bytes=80 * 2**30)]
        # cluster settings as GET _cluster/settings layers them (flat keys); the defaults
        # are the engines' own (disk thresholds on, watermarks 85/90/95 %)
        self.cluster_settings: dict[str, dict[str, Any]] = {
            "transient": {},
            "persistent": {},
            "defaults": {
                "cluster.routing.allocation.disk.threshold_enabled": "true",
                "cluster.routing.allocation.disk.watermark.low": "85%",
                "cluster.routing.allocation.disk.watermark.high": "90%",
                "cluster.routing.allocation.disk.watermark.flood_stage": "95%",
            },
        }
        # -- security: Elasticsearch's setting; OpenSearch: the security plugin
        self.security_enabled = False
        self.security_user = "reindexer"
        self.security_roles = ["reindex_role"]
        self.missing_privileges: set[str] = set()  # "cluster:monitor", "<index>:write", ...
        # OpenSearch security: the actions its privilege probes are refused (403)
        self.refused_actions: set[str] = set()

    # -- test controls --------------------------------------------------------
    def add_index(
        self,
        name: str,
        docs: Mapping[str, dict[str, Any]] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
        aliases: Mapping[str, dict[str, Any]] | None = None,
    ) -> FakeIndex:
        idx = FakeIndex(
            settings={
                "index.number_of_shards": "1",
                "index.number_of_replicas": "1",
                "index.uuid": f"uuid-{name}-{next(self._uuids)}",
                "index.creation_date": "1700000000000",
                "index.provided_name": name,
                "index.version.created": "136408027",
                **(settings or {}),
            },
            mappings=clone(dict(mappings or {"properties": {}})),
            docs=clone(dict(docs or {})),
            aliases={k: dict(v) for k, v in (aliases or {}).items()},
        )
        self.indices[name] = idx
        return idx

    def fail_on(self, method: str, nth: int = 1, error: BaseException | None = None) -> None:
        """Raise ``error`` on the ``nth`` call (counted from now) of ``method``."""
        seen = self._counts.get(method, 0)
        self._faults[(method, seen + nth)] = error or EngineError(
            f"injected failure in {method}", status=500
        )

    def fail_always(self, method: str, error: BaseException | None = None) -> None:
        """Raise ``error`` on every call of ``method`` until :meth:`heal` (a sticky fault)."""
        self._sticky[method] = error or EngineError(f"injected failure in {method}", status=500)

    def heal(self) -> None:
        """Drop every injected fault: pending, sticky, refused connections, scripted tasks."""
        self._faults.clear()
        self._sticky.clear()
        self.refusing = False
        self.next_task_scripts.clear()

    def refuse_connections(self, refusing: bool = True) -> None:
        self.refusing = refusing

    def call_names(self, *, mutating_only: bool = False) -> list[str]:
        return [c.method for c in self.calls if not mutating_only or c.method in MUTATING]

    def snapshot(self) -> dict[str, Any]:
        """The whole cluster as plain data (a deep copy), for before/after comparisons."""
        return clone(
            {
                name: {
                    "settings": idx.settings,
                    "mappings": idx.mappings,
                    "docs": idx.docs,
                    "aliases": idx.aliases,
                }
                for name, idx in sorted(self.indices.items())
            }
        )

    def write_blocked(self, index: str) -> bool:
        """Whether ``index`` has a write block (read from the state: no engine call)."""
        return str(self._index(index).settings.get("index.blocks.write")).lower() == "true"

    # -- bookkeeping ------------------------------------------------------------
    def _call(self, method: str, *args: Any) -> None:
        if self.refusing:
            raise EngineUnreachable(self.url, "connection refused")
        n = self._counts.get(method, 0) + 1
        self._counts[method] = n
        self.calls.append(Call(method, args))
        fault = self._faults.pop((method, n), None) or self._sticky.get(method)
        if fault is not None:
            raise fault

    def _index(self, name: str) -> FakeIndex:
        try:
            return self.indices[name]
        except KeyError:
            raise IndexNotFound(name) from None
