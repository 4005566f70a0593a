"""REINDEXING from another cluster by this tool (``--source-url``, when the target
cluster cannot ``_reindex`` from it, or ``--remote-copy scan``): read the source index
in batches through a point in time and ``search_after``, bulk-index each batch into the
target (by ID, with its routing: a batch indexed twice is not duplicated), and store the
position after each acknowledged batch with the run's state. A resume reads on from the
stored position.

The order of the read: ``_id`` on OpenSearch and Elasticsearch 7 (stable across points
in time, so a resume after the point in time expired reads on from the stored key);
``_shard_doc`` on Elasticsearch 8 and later (which refuse to sort on ``_id``), whose keys
hold only in their point in time: a resume whose point in time expired copies again from
the start (by ID, so nothing is doubled).

Reading and indexing overlap: the next batch is read (one thread) while this one is indexed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

from ... import events
from ...engine.base import Engine, EngineInfo, TaskStatus
from ...engine.sourced import source_of
from ...errors import UsageError
from ...options import RunOptions
from ...plan import Plan
from .. import target as own_target
from ..context import RunContext
from .base import CopiedFrom, Prepared, bulk_refused
from .readers import Batch, Fields, IndexReader, PositionLost

STRATEGY = "remote-scan"  # the name in its stored progress
FLAG = "--source-url"
_READ_AHEAD = 2  # batches read before they are indexed


def sorts_by_id(info: EngineInfo) -> bool:
    """The source can be read in ``_id`` order: OpenSearch, Elasticsearch before 8."""
    return info.flavor != "elasticsearch" or info.major_minor[0] < 8


class SourceReader(IndexReader):
    """The source index in batches of (ID, routing, _source): a batch's docs hold the
    routing (``""`` for none) where the recompute reader holds the text."""

    def __init__(self, engine: Engine, index: str, batch_size: int) -> None:
        super().__init__(engine, index, Fields("_id", "_id", ""), batch_size, skipping=False)
        self.by_id = sorts_by_id(engine.info())

    def _batch(self, number: int, hits: list[dict[str, Any]]) -> Batch:
        docs = [(h["_id"], str(h.get("_routing") or ""), h.get("_source") or {}) for h in hits]
        end: dict[str, Any] = {"after": hits[-1]["sort"]}
        if not self.by_id:
            end["pit"] = self.pit_id
        return Batch(number, docs, [], end)


def initial_progress() -> dict[str, Any]:
    return {"strategy": STRATEGY, "batch": 0, "position": None, "indexed": 0}


def _read_ahead(batches: Iterator[Batch]) -> Generator[Batch, None, None]:
    """``batches`` read by a thread, up to :data:`_READ_AHEAD` ahead of the consumer; a
    consumer that stops early (an error, a crash point) lets the thread end."""
    box: queue.Queue[Any] = queue.Queue(_READ_AHEAD)
    done = object()
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                box.put(batch)
            box.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            box.put(exc)

    reader = threading.Thread(target=read, name="remote-read", daemon=True)
    reader.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # make room for a put it waits on; it then sees stop
            with contextlib.suppress(queue.Empty):
                box.get(timeout=0.05)


class RemoteCopy:
    """One pass of the copy: read, index, checkpoint, until the source ends."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.plan = ctx.plan
        self.source = source_of(ctx.engine)
        stored = ctx.record.progress or {}
        self.progress = dict(stored) if stored.get("strategy") == STRATEGY else initial_progress()

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        except PositionLost as exc:  # its point in time is gone: copy again (by ID)
            self.progress = initial_progress()
            self.ctx.checkpoint(
                event="copy_restarted", detail={"reason": str(exc)}, progress=self.progress
            )
            return self._run()

    def _run(self) -> dict[str, Any]:
        size = int((self.plan.source_cluster or {}).get("batch_size") or 1000)
        reader = SourceReader(self.source, self.plan.source_index, size)
        batches = reader.batches(int(self.progress["batch"]), self.progress["position"])
        ahead = _read_ahead(batches)
        try:
            for batch in ahead:
                self.ctx.crash("remote_scan.read")
                self._bulk(batch)
                self.ctx.crash("remote_scan.indexed")
                self._checkpoint(batch)
        finally:
            ahead.close()  # the reading thread ends before its point in time is closed
            reader.close()
        return self.progress

    def _bulk(self, batch: Batch) -> None:
        if not batch.docs:
            return
        # a target deleted meanwhile would be re-created by this bulk with default mappings
        own_target.check_copy(self.ctx, None)
        target = self.plan.target_index
        actions = []
        for doc_id, routing, source in batch.docs:
            action = {"_op_type": "index", "_index": target, "_id": doc_id, "_source": source}
            if routing:
                action["routing"] = routing
            actions.append(action)
        _, errors = self.ctx.engine.bulk(actions)
        if errors:
            raise bulk_refused(
                self.ctx, errors, len(batch.docs), batch.number, "the target cluster"
            )

    def _checkpoint(self, batch: Batch) -> None:
        self.progress = {
            "strategy": STRATEGY,
            "batch": batch.number + 1,
            "position": batch.end,
            "indexed": int(self.progress["indexed"]) + len(batch.docs),
        }
        self.ctx.checkpoint(progress=self.progress)
        status = TaskStatus(
            task_id=STRATEGY,
            completed=False,
            total=int(self.plan.source_count),
            created=int(self.progress["indexed"]),
            description=f"copy from {(self.plan.source_cluster or {}).get('url')}",
        )
        progress = events.Progress.from_status(status, STRATEGY, batch.number + 1)
        self.ctx.reporter.emit(self.ctx.record, progress)


# -- what both remote copies answer alike -------------------------------------------------
def source_count_now(ctx: RunContext) -> int:
    """The source's count on the source cluster now (verification compares the clusters):
    under the run's write block, the count taken then; else counted again."""
    p = ctx.plan
    if not p.reads_source_only and ctx.record.source_count is not None:
        return int(ctx.record.source_count)
    return source_of(ctx.engine).count(p.source_index)


def remote_verify_checks(ctx: RunContext, target_count: int, detail: dict[str, Any]) -> list[str]:
    p = ctx.plan
    cluster = p.source_cluster or {}
    expected = source_count_now(ctx)
    detail.update(source_count=expected, source_cluster=cluster.get("url"))
    if target_count == expected:
        return []
    changed = (
        ""
        if p.reads_source_only is False
        else " (the source takes writes: see --block-source-writes)"
    )
    return [
        f"target {p.target_index} has {target_count} documents, source {p.source_index} on "
        f"{cluster.get('url')} has {expected}{changed}"
    ]


def remote_refuses(options: RunOptions, name: str) -> UsageError | None:
    if options.script is not None and name == "scan":
        return UsageError(
            "--script applies to a _reindex copy, not to --remote-copy scan",
            hint="drop --script, or copy with --remote-copy reindex",
        )
    return None


class RemoteStrategy:
    """What the two copies from another cluster share: chosen by --source-url and
    --remote-copy, planned by reindex_fsm.remote, verified against the source cluster."""

    name: str
    mode: str  # the --remote-copy value the plan records for it ("scan", "reindex")
    progress_key: str  # its stored progress's count of documents written
    flag = FLAG
    can_rethrottle = False
    copies_again_by_reindex = False  # the source is on another cluster

    def chosen_by(self, options: RunOptions) -> bool:
        scan = options.remote_copy == "scan"
        return options.source_url is not None and scan == (self.mode == "scan")

    def planned(self, p: Plan) -> bool:
        return (p.source_cluster or {}).get("copy") == self.mode

    def refuses(self, options: RunOptions) -> UsageError | None:
        return remote_refuses(options, self.mode)

    def warnings(self, options: RunOptions) -> list[str]:
        return []

    def input_file(self, options: RunOptions) -> str | None:
        return None

    def prepare(
        self,
        engine: Engine,
        info: EngineInfo,
        options: RunOptions,
        source_index: str,
        source_count: int,
        source_mappings: dict[str, Any],
    ) -> Prepared:
        return Prepared()  # planned by reindex_fsm.remote

    def initial_progress(self, p: Plan) -> dict[str, Any]:
        """The progress a copy begins with (a resumed one keeps what was stored)."""
        raise NotImplementedError

    def start(self, ctx: RunContext) -> dict[str, Any]:
        own_target.require_own_target(ctx)
        stored = ctx.record.progress or {}
        progress = (
            stored if stored.get("strategy") == self.name else self.initial_progress(ctx.plan)
        )
        return {"progress": progress, "detail": {"strategy": self.name}}

    def source_index_count(self, p: Plan) -> int:
        return p.source_count

    def input_path(self, p: Plan) -> str | None:
        return None

    def verify_check(self, p: Plan) -> str | None:
        return f"target count == the source's count on {(p.source_cluster or {}).get('url')}"

    def verify_checks(
        self, ctx: RunContext, target_count: int, detail: dict[str, Any]
    ) -> list[str]:
        return remote_verify_checks(ctx, target_count, detail)

    def copied_from(self, p: Plan) -> CopiedFrom:
        return CopiedFrom()

    def copied(self, progress: dict[str, Any]) -> int | None:
        if progress.get("strategy") == self.name:
            return int(progress.get(self.progress_key) or 0)
        return None


class RemoteScanCopy(RemoteStrategy):
    """``--source-url`` read and bulk-indexed by this tool."""

    name = STRATEGY
    mode = "scan"
    progress_key = "indexed"
    rate_set_by = "--remote-batch-size"

    def describe(self, p: Plan) -> dict[str, Any]:
        cluster = p.source_cluster or {}
        return {
            "step": "copy",
            "strategy": "read the source cluster and bulk-index (scan)",
            "from": cluster.get("url"),
            "source_index": p.source_index,
            "target_index": p.target_index,
            "batch_size": cluster.get("batch_size"),
            "why": (cluster.get("probe") or {}).get("detail") or "--remote-copy scan",
        }

    def initial_progress(self, p: Plan) -> dict[str, Any]:
        return initial_progress()

    def wait(self, ctx: RunContext) -> dict[str, Any]:
        progress = RemoteCopy(ctx).run()
        return {
            "progress": progress,
            "detail": {"strategy": STRATEGY, "indexed": progress["indexed"]},
        }
