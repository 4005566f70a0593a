"""An in-memory engine implementing the Engine protocol, for unit tests.

It records the ordered calls, lets a test script how reindex tasks progress
(documents copied per poll, failures, cancellation, a task that vanishes), and
injects faults (an error on the Nth call of a method, connection refused).
The cluster outlives a simulated process death: a test keeps the same
FakeEngine, rebuilds everything else from the database, and resumes.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.base import (
    ENGINE_WRITES,
    DiskWatermarks,
    EngineInfo,
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
from ..errors import EngineError, EngineUnreachable, IndexNotFound, LeaseConflict, TaskNotFound

_MUTATING = ENGINE_WRITES | {"put_lease", "delete_lease"}


class Docs(dict):  # type: ignore[type-arg]
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


@dataclass
class FakeTask:
    task_id: str
    request: ReindexRequest
    pending: list[str]  # document IDs still to copy
    script: TaskScript
    total: int
    polls: int = 0
    created: int = 0
    updated: int = 0
    version_conflicts: int = 0
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


def _matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """The two queries a run sends with ``_reindex``: match_all and a range (gte)."""
    if "match_all" in query:
        return True
    ((field_name, bounds),) = query["range"].items()
    value: Any = doc
    for part in field_name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value is not None and value >= bounds["gte"]


class FakeEngine:
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
        self.tasks: dict[str, FakeTask] = {}
        self.calls: list[Call] = []
        self.task_script = TaskScript()
        self._faults: dict[tuple[str, int], BaseException] = {}
        self._counts: dict[str, int] = {}
        self._task_ids = itertools.count(1)
        self.refusing = False
        self.plugin_names: set[str] = set()
        self.pits: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.pit_supported = True
        self._init_lease_and_preflight()
        # issue 5: ingest pipelines by name, and whether finished task results may be
        # deleted (False: refused, as Elasticsearch 8 does).
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.task_results_deletable = True
        self._created = itertools.count(1)
        self._uuids = itertools.count(1)  # an index made again under the same name is another
        self._sticky: dict[str, BaseException] = {}  # method -> error on every call (fail_always)
        self.next_task_scripts: list[TaskScript] = []  # one each for the next reindex tasks
        # A reindex into a missing index: False, an AssertionError (the tool must never
        # let it); True, created as a real engine does (dynamic mappings, no _meta).
        self.auto_create_missing_dest = False

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
            mappings=copy.deepcopy(dict(mappings or {"properties": {}})),
            docs={k: copy.deepcopy(v) for k, v in (docs or {}).items()},
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

    def vanish_task(self, task_id: str) -> None:
        self.tasks[task_id].vanished = True

    def call_names(self, *, mutating_only: bool = False) -> list[str]:
        return [c.method for c in self.calls if not mutating_only or c.method in _MUTATING]

    def advance(self, task_id: str, polls: int = 1) -> None:
        """Let a task progress as if it had been polled ``polls`` times."""
        for _ in range(polls):
            self._progress(self.tasks[task_id])

    def snapshot(self) -> dict[str, Any]:
        """The whole cluster as plain data (a deep copy), for before/after comparisons."""
        return copy.deepcopy(
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

    # -- Engine protocol -----------------------------------------------------------
    def info(self) -> EngineInfo:
        self._call("info")
        return self._info

    def get_alias(self, alias: str) -> dict[str, dict[str, dict[str, Any]]]:
        self._call("get_alias", alias)
        return {
            name: {alias: dict(idx.aliases[alias])}
            for name, idx in self.indices.items()
            if alias in idx.aliases
        }

    def get_index_aliases(self, index: str) -> dict[str, dict[str, Any]]:
        self._call("get_index_aliases", index)
        return {k: dict(v) for k, v in self._index(index).aliases.items()}

    def index_exists(self, index: str) -> bool:
        self._call("index_exists", index)
        return index in self.indices

    def get_index(self, index: str) -> IndexDefinition:
        self._call("get_index", index)
        idx = self._index(index)
        return IndexDefinition(copy.deepcopy(idx.settings), copy.deepcopy(idx.mappings))

    def create_index(
        self, index: str, settings: Mapping[str, Any], mappings: Mapping[str, Any]
    ) -> None:
        self._call("create_index", index)
        if index in self.indices or any(index in i.aliases for i in self.indices.values()):
            raise EngineError(
                f"resource_already_exists_exception: index [{index}] already exists", status=400
            )
        stored = {k: v for k, v in settings.items()}
        stored.setdefault("index.number_of_shards", "1")
        stored.setdefault("index.number_of_replicas", "1")
        stored.update(
            {"index.uuid": f"uuid-{index}-{next(self._uuids)}", "index.provided_name": index}
        )
        stored.setdefault("index.creation_date", str(1_700_000_000_000 + next(self._created)))
        self.indices[index] = FakeIndex(settings=stored, mappings=copy.deepcopy(dict(mappings)))

    def put_settings(self, index: str, settings: Mapping[str, Any]) -> None:
        self._call("put_settings", index)
        stored = self._index(index).settings
        for key, value in settings.items():
            if value is None:  # null resets a setting to its default
                stored.pop(key, None)
            else:
                stored[key] = value

    def cluster_health(
        self, index: str | None = None, wait_for_status: str | None = None, timeout_s: float = 30
    ) -> dict[str, Any]:
        self._call("cluster_health", index)
        if index is not None:
            self._index(index)
        return {
            "status": self.health_status,
            "number_of_data_nodes": len(self.disks),
            "unassigned_shards": self.unassigned_shards,
            "timed_out": False,
        }

    def refresh(self, index: str) -> None:
        self._call("refresh", index)
        self._index(index)

    def count(self, index: str) -> int:
        self._call("count", index)
        return len(self._index(index).docs)

    def update_aliases(self, actions: list[dict[str, Any]]) -> None:
        self._call("update_aliases", len(actions))
        staged = {name: dict(idx.aliases) for name, idx in self.indices.items()}
        for action in actions:  # validate and apply on a copy: all or nothing
            ((kind, spec),) = action.items()
            if spec["index"] not in staged:
                raise IndexNotFound(spec["index"])
            aliases = staged[spec["index"]]
            if kind == "add":
                props = {k: v for k, v in spec.items() if k not in ("index", "alias")}
                aliases[spec["alias"]] = props
            elif kind == "remove":
                if spec["alias"] not in aliases:
                    if spec.get("must_exist"):
                        raise EngineError(
                            f"aliases_not_found_exception: [{spec['alias']}] missing", status=404
                        )
                    continue
                del aliases[spec["alias"]]
            else:
                raise EngineError(f"unknown alias action {kind}", status=400)
        for name, aliases in staged.items():
            self.indices[name].aliases = aliases

    def delete_index(self, index: str) -> None:
        self._call("delete_index", index)
        self._index(index)
        del self.indices[index]

    def start_reindex(self, request: ReindexRequest) -> str:
        self._call("start_reindex", request.source, request.dest, request.op_type)
        src = self._index(request.source)
        query = dict(request.body()["source"].get("query") or {"match_all": {}})
        pending = sorted(k for k, doc in src.docs.items() if _matches(query, doc))
        task_id = f"fake-node:{next(self._task_ids)}"
        self.tasks[task_id] = FakeTask(
            task_id=task_id,
            request=request,
            pending=pending,
            script=self.next_task_scripts.pop(0) if self.next_task_scripts else self.task_script,
            total=len(pending),
            rps=request.requests_per_second,
        )
        return task_id

    def _progress(self, task: FakeTask) -> None:
        if task.completed or task.vanished:
            return
        task.polls += 1
        script = task.script
        if task.cancelled:
            task.completed = True
            return
        if script.vanish_after_polls is not None and task.polls > script.vanish_after_polls:
            task.vanished = True
            return
        if script.fail_after_polls is not None and task.polls > script.fail_after_polls:
            task.failures.append(
                {
                    "id": task.pending[0] if task.pending else None,
                    "cause": {
                        "type": "mapper_parsing_exception",
                        "reason": "injected bulk failure",
                    },
                }
            )
            task.completed = True
            return
        if script.stall:
            return
        src = self.indices.get(task.request.source)
        dest = self.indices.get(task.request.dest)
        if dest is None:  # a real engine would auto-create it; the tool must never let it
            if not self.auto_create_missing_dest:
                raise AssertionError(f"reindex into missing index {task.request.dest}")
            dest = self.add_index(task.request.dest, {}, mappings={"properties": {}})
        for _ in range(min(script.docs_per_poll, len(task.pending))):
            doc_id = task.pending.pop(0)
            if src is None or doc_id not in src.docs:
                continue
            if doc_id in dest.docs and task.request.op_type == "create":
                task.version_conflicts += 1
                if task.request.conflicts == "abort":
                    task.failures.append(
                        {"id": doc_id, "cause": {"type": "version_conflict_engine_exception"}}
                    )
                    task.completed = True
                    return
                continue
            if doc_id in dest.docs:
                task.updated += 1
            else:
                task.created += 1
            dest.docs[doc_id] = copy.deepcopy(src.docs[doc_id])
        if not task.pending:
            task.completed = True

    def _status(self, task: FakeTask) -> TaskStatus:
        return TaskStatus(
            task_id=task.task_id,
            completed=task.completed,
            total=task.total,
            created=task.created,
            updated=task.updated,
            version_conflicts=task.version_conflicts,
            failures=tuple(task.failures),
            cancelled=task.cancelled,
            opaque_id=task.request.opaque_id,
            description=f"reindex from [{task.request.source}] to [{task.request.dest}]",
        )

    def get_task(self, task_id: str) -> TaskStatus | None:
        self._call("get_task", task_id)
        task = self.tasks.get(task_id)
        if task is None or task.vanished:
            return None
        self._progress(task)
        if task.vanished:
            return None
        return self._status(task)

    def list_reindex_tasks(self, opaque_id: str | None = None) -> list[TaskStatus]:
        self._call("list_reindex_tasks", opaque_id)
        return [
            self._status(t)
            for t in self.tasks.values()
            if not t.completed
            and not t.vanished
            and (opaque_id is None or t.request.opaque_id == opaque_id)
        ]

    def cancel_task(self, task_id: str) -> None:
        self._call("cancel_task", task_id)
        task = self.tasks.get(task_id)
        if task is None or task.vanished or task.completed:
            raise EngineError(f"task [{task_id}] is not running", status=404)
        task.cancelled = True

    def rethrottle(self, task_id: str, requests_per_second: float) -> None:
        self._call("rethrottle", task_id, requests_per_second)
        task = self.tasks.get(task_id)
        if task is None or task.vanished or task.completed:
            raise TaskNotFound(task_id)
        task.rps = requests_per_second

    def bulk(self, actions: Iterable[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
        self._call("bulk")
        ok, errors = 0, []
        for action in actions:
            idx = self._index(action["_index"])
            op = action.get("_op_type", "index")
            if op == "delete":
                idx.docs.pop(action["_id"], None)
            elif op == "create" and action["_id"] in idx.docs:
                errors.append({"create": {"_id": action["_id"], "status": 409}})
                continue
            else:
                source = action["_source"]  # a dict, or JSON as the clients accept it
                idx.docs[action["_id"]] = (
                    json.loads(source) if isinstance(source, str | bytes) else copy.deepcopy(source)
                )
            ok += 1
        return ok, errors

    def scan(
        self, index: str, query: Mapping[str, Any] | None = None, preserve_order: bool = False
    ) -> Iterator[dict[str, Any]]:
        self._call("scan", index)
        for doc_id, source in sorted(self._index(index).docs.items()):
            yield {"_index": index, "_id": doc_id, "_source": copy.deepcopy(source)}

    def search(self, index: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        self._call("search", index)
        pit = body.get("pit")
        if pit:
            if pit["id"] not in self.pits:
                raise EngineError("search_context_missing_exception: no such PIT", status=404)
            docs = list(self.pits[pit["id"]])
        else:
            docs = sorted(self._index(str(index)).docs.items())
        query = body.get("query") or {"match_all": {}}
        if "ids" in query:
            wanted = set(query["ids"]["values"])
            docs = [d for d in docs if d[0] in wanted]
        elif "function_score" in query:
            seed = str(query["function_score"].get("random_score", {}).get("seed", 0))
            docs.sort(key=lambda d: zlib.crc32(f"{seed}:{d[0]}".encode()))
        after = body.get("search_after")
        if after is not None:
            docs = [d for d in docs if d[0] > after[0]]
        hits = [
            {"_index": index, "_id": doc_id, "_source": copy.deepcopy(src), "sort": [doc_id]}
            for doc_id, src in docs[: int(body.get("size", 10))]
        ]
        return {"hits": {"hits": hits}, **({"pit_id": pit["id"]} if pit else {})}

    def open_pit(self, index: str, keep_alive: str) -> str | None:
        self._call("open_pit", index)
        if not self.pit_supported:
            return None
        pit_id = f"pit-{len(self.pits) + 1}-{index}"
        self.pits[pit_id] = sorted(copy.deepcopy(self._index(index).docs).items())
        return pit_id

    def close_pit(self, pit_id: str) -> None:
        self._call("close_pit", pit_id)
        self.pits.pop(pit_id, None)

    def plugins(self) -> set[str]:
        self._call("plugins")
        return set(self.plugin_names)

    def close(self) -> None:
        pass

    # -- write policy (issue 5) ----------------------------------------------------------
    def add_write_block(self, index: str) -> None:
        self._call("add_write_block", index)
        self._index(index).settings["index.blocks.write"] = "true"

    def remove_write_block(self, index: str) -> None:
        self._call("remove_write_block", index)
        self._index(index).settings.pop("index.blocks.write", None)

    def write_blocked(self, index: str) -> bool:
        return str(self._index(index).settings.get("index.blocks.write")).lower() == "true"

    def write(self, index_or_alias: str, doc_id: str, source: dict[str, Any] | None) -> None:
        """A client's write through an alias (``source`` None: a delete), refused like a
        real engine's while the index has a write block."""
        targets = [n for n, i in self.indices.items() if index_or_alias in i.aliases]
        name = targets[0] if targets else index_or_alias
        if self.write_blocked(name):
            raise EngineError(
                f"cluster_block_exception: index [{name}] blocked by: "
                "[FORBIDDEN/8/index write (api)];",
                status=403,
            )
        docs = self._index(name).docs
        if source is None:
            docs.pop(doc_id, None)
        else:
            docs[doc_id] = copy.deepcopy(source)

    # -- deep verification (issue 5) ------------------------------------------
    def mget(
        self, index: str, docs: Sequence[tuple[str, str | None]], source: bool = True
    ) -> dict[str, dict[str, Any] | None]:
        self._call("mget", index, len(docs))
        stored = self._index(index).docs
        return {
            doc_id: (copy.deepcopy(stored[doc_id]) if source else {}) if doc_id in stored else None
            for doc_id, _routing in docs
        }

    # -- lease and preflight (issue 5) --
    def _init_lease_and_preflight(self) -> None:
        # lease documents by key: (doc, seq_no); the primary term is always 1 here
        self.leases: dict[str, tuple[dict[str, Any], int]] = {}
        self.lease_index_created = False
        self._seq_nos = itertools.count(0)
        self.health_status = "green"
        self.unassigned_shards = 0
        self.closed: set[str] = set()  # closed indices
        self.store_bytes: dict[str, int] = {}  # primary store size per index (default below)
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
        self.security_enabled = False  # Elasticsearch; OpenSearch: the security plugin
        self.security_user = "reindexer"
        self.security_roles = ["reindex_role"]
        self.missing_privileges: set[str] = set()  # "cluster:monitor", "<index>:write", ...

    def get_lease(self, key: str) -> StoredLease | None:
        self._call("get_lease", key)
        found = self.leases.get(key)
        return StoredLease(copy.deepcopy(found[0]), found[1], 1) if found else None

    def put_lease(
        self,
        key: str,
        doc: Mapping[str, Any],
        *,
        seq_no: int | None = None,
        primary_term: int | None = None,
    ) -> StoredLease:
        self._call("put_lease", key, "create" if seq_no is None else f"if_seq_no={seq_no}")
        found = self.leases.get(key)
        if seq_no is None:
            self.lease_index_created = True
            if found is not None:
                raise LeaseConflict(key)
        elif found is None or found[1] != seq_no or primary_term != 1:
            raise LeaseConflict(key)
        stored = (copy.deepcopy(dict(doc)), next(self._seq_nos))
        self.leases[key] = stored
        return StoredLease(copy.deepcopy(stored[0]), stored[1], 1)

    def delete_lease(self, key: str, seq_no: int, primary_term: int) -> None:
        self._call("delete_lease", key, seq_no)
        found = self.leases.get(key)
        if found is None:
            return
        if found[1] != seq_no or primary_term != 1:
            raise LeaseConflict(key)
        del self.leases[key]

    def index_status(self, index: str) -> IndexStatus:
        self._call("index_status", index)
        idx = self._index(index)
        closed = index in self.closed
        size = self.store_bytes.get(index, 1000 * len(idx.docs))
        return IndexStatus(
            index,
            "close" if closed else "open",
            None if closed else self.health_status,
            None if closed else size,
        )

    def data_node_disks(self) -> list[NodeDisk]:
        self._call("data_node_disks")
        return list(self.disks)

    def disk_watermarks(self) -> DiskWatermarks:
        self._call("disk_watermarks")
        return watermarks_from_settings(copy.deepcopy(self.cluster_settings))

    def check_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        if self._info.flavor == "opensearch":  # as the adapter: the plugin, then authinfo
            if "opensearch-security" not in self.plugins():
                return None
            roles = ", ".join(self.security_roles) or "none"
            return PrivilegeCheck(
                checked=False,
                user=self.security_user,
                note=f"OpenSearch has no privilege-check API; user {self.security_user}, "
                f"roles: {roles}",
            )
        return self.has_privileges(cluster, index)

    def has_privileges(
        self, cluster: list[str], index: list[tuple[list[str], list[str]]]
    ) -> PrivilegeCheck | None:
        """Elasticsearch's ``_has_privileges`` (None: security off), whatever the fake's
        own flavor: the contract server answers it as Elasticsearch with this."""
        self._call("check_privileges")
        if not self.security_enabled:
            return None
        wanted = [f"cluster:{p}" for p in cluster] + [
            f"{name}:{p}" for names, privileges in index for name in names for p in privileges
        ]
        missing = tuple(w for w in wanted if w in self.missing_privileges)
        return PrivilegeCheck(checked=True, user=self.security_user, missing=missing)

    # -- transforms, undo, retention, task records (issue 5) -----------------------------
    def pipeline_exists(self, name: str) -> bool:
        self._call("pipeline_exists", name)
        return name in self.pipelines

    def describe_indices(self, pattern: str) -> list[IndexSummary]:
        self._call("describe_indices", pattern)
        found = [
            IndexSummary(
                name=name,
                created_ms=int(idx.settings.get("index.creation_date", 0)),
                open=not idx.closed,
                aliases=tuple(sorted(idx.aliases)),
                meta=copy.deepcopy(idx.mappings.get("_meta") or {}),
            )
            for name, idx in self.indices.items()
            if fnmatch.fnmatchcase(name, pattern) and not name.startswith(".")
        ]
        return sorted(found, key=lambda i: (i.created_ms, i.name))

    def max_seq_nos(self, index: str) -> dict[str, int]:
        self._call("max_seq_nos", index)
        docs = self._index(index).docs
        return {"0": docs.seq_no if isinstance(docs, Docs) else -1}

    def delete_task_result(self, task_id: str) -> bool:
        self._call("delete_task_result", task_id)
        task = self.tasks.get(task_id)
        if task is None or task.vanished:
            return False
        if not task.completed:
            raise EngineError(f"task [{task_id}] is still running", status=409)
        if not self.task_results_deletable:
            raise EngineError(
                "security_exception: action [indices:data/write/delete] is unauthorized "
                "on restricted indices [.tasks]",
                status=403,
            )
        task.vanished = True  # its stored result is gone: GET _tasks/<id> is a 404 now
        return True
