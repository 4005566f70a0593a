"""REINDEXING from another cluster by the target cluster's ``_reindex`` from remote
(``--source-url``, when the target cluster's ``reindex.remote.allowlist`` takes the
source: probed at plan time, reindex_fsm.remote).

A ``_reindex`` from remote cannot be sliced, so the copy is cut into ranges of the
source's ``_seq_no`` (``--remote-ranges``), each its own task, started with the run's
opaque ID, checkpointed and retried on its own. Why ``_seq_no``: every document of a
shard has exactly one, and a range query on it is answered by the source cluster
itself (the remote search sees only what the source has), so disjoint ranges that cover
``[0, max _seq_no]`` of every shard copy each document exactly once whatever shard it is
in; the last range is open-ended (a write made after the plan has a higher ``_seq_no``).
``_id`` cannot be queried by range, and a document field need not exist or be unique.
A document updated during the copy gets a new ``_seq_no``: the last range takes it, or
verification sees the difference (``--block-source-writes`` keeps the source still).

Every task copies with ``op_type=index``: a range copied again (a retry, a task finished
unrecorded before a crash) overwrites the same documents. At most :data:`PARALLEL` ranges
run at a time. Each start is recorded first (``starting``, its ``attempts``), its task ID
right after: on resume, a running task of the run that no range has recorded is the one
range recorded as starting (only one start is ever in flight).
"""

from __future__ import annotations

from typing import Any

from ... import events
from ...engine.base import Engine, ReindexRequest, TaskStatus
from ...engine.sourced import remote_auth_of
from ...engine.urls import parse_engine_url
from ...errors import CopyFailed
from ...plan import Plan
from .. import target as own_target
from ..context import RunContext
from ..poll import Backoff, Waiter
from .base import describe_failure, reason
from .remote_scan import RemoteStrategy

STRATEGY = "remote-reindex"
PARALLEL = 2  # range tasks running at a time
MAX_ATTEMPTS = 3  # starts of one range before the copy fails (a resume starts again)


def plan_ranges(source: Engine, index: str, wanted: int) -> list[dict[str, Any]]:
    """``wanted`` disjoint ``_seq_no`` ranges covering every document of ``index`` (fewer
    when it has fewer sequence numbers); the last one has no upper bound."""
    top = max(source.max_seq_nos(index).values(), default=-1)
    count = max(1, min(wanted, top + 1))
    step = (top + 1) // count if top >= 0 else 0
    ranges = []
    for n in range(count):
        gte = n * step
        lt = (n + 1) * step if n < count - 1 else None
        ranges.append({"n": n, "gte": gte, "lt": lt})
    return ranges


def range_query(r: dict[str, Any]) -> dict[str, Any]:
    bounds: dict[str, Any] = {"gte": r["gte"]}
    if r.get("lt") is not None:
        bounds["lt"] = r["lt"]
    return {"range": {"_seq_no": bounds}}


def initial_progress(p: Plan) -> dict[str, Any]:
    ranges = [
        {**r, "task_id": None, "attempts": 0, "done": False, "created": 0, "updated": 0}
        for r in (p.source_cluster or {}).get("ranges") or []
    ]
    return {"strategy": STRATEGY, "ranges": ranges, "copied": 0}


def range_request(ctx: RunContext, r: dict[str, Any]) -> ReindexRequest:
    p, opts = ctx.plan, ctx.options
    cluster = p.source_cluster or {}
    remote = {"host": parse_engine_url(cluster["url"]).node_url, **remote_auth_of(ctx.engine)}
    source = {
        "remote": remote,
        "index": p.source_index,
        "size": int(cluster.get("batch_size") or 1000),
        "query": range_query(r),
    }
    return ReindexRequest(
        source=p.source_index,
        dest=p.target_index,
        opaque_id=ctx.opaque_id,
        op_type="index",  # a range copied again overwrites the same documents
        conflicts="proceed",
        slices=1,  # a _reindex from remote cannot be sliced
        requests_per_second=opts.requests_per_second,
        extra={"source": source},
        pipeline=opts.pipeline,
        script=opts.script,
    )


class RangeCopy:
    """Follows the ranges to their end: starts, polls, retries, checkpoints."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        stored = ctx.record.progress or {}
        if stored.get("strategy") == STRATEGY:
            self.progress = {**stored, "ranges": [dict(r) for r in stored["ranges"]]}
        else:
            self.progress = initial_progress(ctx.plan)
        for r in self.progress["ranges"]:  # a resumed run tries its failed ranges again
            if r.get("failed"):
                r.pop("failed")
                r["attempts"] = 0

    @property
    def ranges(self) -> list[dict[str, Any]]:
        return list(self.progress["ranges"])

    def _store(self, event: str | None = None, detail: dict[str, Any] | None = None) -> None:
        self.progress["copied"] = sum(int(r["created"]) + int(r["updated"]) for r in self.ranges)
        self.ctx.checkpoint(event=event, detail=detail, progress=self.progress)

    def run(self) -> dict[str, Any]:
        waiter = Waiter(self.ctx.clock, self.ctx.sleep, Backoff.of(self.ctx.options))
        while True:
            changed = self._poll_running()
            changed = self._start_more() or changed
            if changed:
                self._report()
            if all(r["done"] for r in self.ranges):
                return self.progress
            if changed:
                waiter.reset()
            waiter.pause()

    def _poll_running(self) -> bool:
        changed = False
        for r in self.ranges:
            if r["done"] or not r.get("task_id"):
                continue
            own_target.check_copy(self.ctx, r["task_id"])
            status = self.ctx.engine.get_task(r["task_id"])
            if status is None:  # vanished (a node restart): start the range again
                r["task_id"] = None
                self._store("range_restarted", {"range": r["n"], "reason": "task vanished"})
                changed = True
                continue
            counts = {"created": status.created, "updated": status.updated}
            if not status.completed:
                if counts != {"created": r["created"], "updated": r["updated"]}:
                    r.update(counts)
                    self._store()
                    changed = True
                continue
            r.update(counts)
            if status.cancelled or status.failed:
                self._failed(r, status)
            else:
                r["done"] = True
                self._store("range_copied", {"range": r["n"], "task_id": r["task_id"], **counts})
            changed = True
        return changed

    def _failed(self, r: dict[str, Any], status: TaskStatus) -> None:
        if status.cancelled:
            why = "cancelled"
        elif status.error:
            why = reason(status.error)
        else:
            why = f"{len(status.failures)} document(s) failed, first: "
            why += describe_failure(status.failures[0])
        if int(r["attempts"]) >= MAX_ATTEMPTS:
            r["failed"] = why
            self._store()
            raise CopyFailed(
                f"range {r['n']} of the copy from remote (task {r['task_id']}) failed "
                f"{r['attempts']} times, last: {why}",
                run_id=self.ctx.run_id,
                state=self.ctx.record.state.value,
                task_id=r["task_id"],
            )
        r["task_id"] = None
        self._store("range_retried", {"range": r["n"], "reason": why})

    def _start_more(self) -> bool:
        started = False
        while True:
            running = [r for r in self.ranges if not r["done"] and r.get("task_id")]
            pending = [r for r in self.ranges if not r["done"] and not r.get("task_id")]
            if not pending or len(running) >= PARALLEL:
                return started
            self._start(pending[0])
            started = True

    def _orphan(self) -> str | None:
        """A running task of this run that no range has recorded (see the module)."""
        known = {r.get("task_id") for r in self.ranges}
        listed = self.ctx.engine.list_reindex_tasks(self.ctx.opaque_id)
        return next((t.task_id for t in listed if t.task_id not in known), None)

    def _start(self, r: dict[str, Any]) -> None:
        if r.get("starting"):  # recorded as started, its task ID not: a crash in between
            orphan = self._orphan()
            if orphan is not None:  # started before a crash, its ID not recorded
                r.update(task_id=orphan, starting=False)
                self._store("range_adopted", {"range": r["n"], "task_id": orphan})
                return
        own_target.require_own_target(self.ctx)
        r.update(attempts=int(r["attempts"]) + 1, starting=True)
        self._store()  # the intent: a start in flight
        task_id = self.ctx.engine.start_reindex(range_request(self.ctx, r))
        self.ctx.crash("remote_reindex.range_started")
        r.update(task_id=task_id, starting=False)
        detail = {"range": r["n"], "task_id": task_id, "attempt": r["attempts"]}
        self._store("range_started", detail)

    def _report(self) -> None:
        status = TaskStatus(
            task_id=STRATEGY,
            completed=False,
            total=int(self.ctx.plan.source_count),
            created=int(self.progress["copied"]),
            description=f"_reindex from {(self.ctx.plan.source_cluster or {}).get('url')}",
        )
        done = sum(1 for r in self.ranges if r["done"])
        self.ctx.reporter.emit(self.ctx.record, events.Progress.from_status(status, STRATEGY, done))


class RemoteReindexCopy(RemoteStrategy):
    """``--source-url`` copied by the target cluster's ``_reindex`` from remote."""

    name = STRATEGY
    mode = "reindex"
    progress_key = "copied"
    rate_set_by = "--requests-per-second (each range's task)"

    def describe(self, p: Plan) -> dict[str, Any]:
        cluster = p.source_cluster or {}
        return {
            "step": "copy",
            "strategy": "_reindex from remote, in _seq_no ranges",
            "from": cluster.get("url"),
            "ranges": [range_query(r)["range"]["_seq_no"] for r in cluster.get("ranges") or []],
            "parallel": PARALLEL,
            "probe": (cluster.get("probe") or {}).get("detail"),
        }

    def initial_progress(self, p: Plan) -> dict[str, Any]:
        return initial_progress(p)

    def wait(self, ctx: RunContext) -> dict[str, Any]:
        progress = RangeCopy(ctx).run()
        detail = {"strategy": STRATEGY, "ranges": len(progress["ranges"])}
        return {"progress": progress, "detail": {**detail, "copied": progress["copied"]}}
