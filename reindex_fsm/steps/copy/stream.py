"""The recompute copy's stream: reading, embedding and indexing overlap. Batch k+1 is
embedded (in a thread, or in ``--workers`` processes) while batch k is indexed. Batch
``b`` belongs to stripe ``b % workers``; every stripe has its own checkpoint, stored
with the state (one compare-and-set transaction) after each of its batches is
acknowledged: the next batch it owns and the input position to read on from. A resume
reads from the earliest stripe position and skips the batches a stripe already has, so
nothing is lost; indexing is by document ID, so a batch indexed twice is not duplicated.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import ProcessPoolExecutor
from concurrent.futures.thread import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ... import embedders, events
from ...engine.base import TaskStatus
from ...errors import EmbedderError
from ...plan import Plan, RecomputePlan
from .. import target as own_target
from ..context import RunContext
from .base import bulk_refused
from .readers import Batch, IndexReader, JsonlReader, PositionLost

if TYPE_CHECKING:  # only in annotations: the CLI's start-up does not load numpy
    import numpy as np

STRATEGY = "recompute"  # the name in its stored progress


def recompute_plan(p: Plan) -> RecomputePlan:
    if p.recompute is None:
        raise ValueError(f"run {p.run_id} was not planned to recompute embeddings")
    return p.recompute


def initial_progress(workers: int) -> dict[str, Any]:
    stripes = [
        {"next_batch": s, "resume_batch": 0, "position": None, "indexed": 0, "rejected": 0}
        for s in range(workers)
    ]
    return {"strategy": STRATEGY, "stripes": stripes, "indexed": 0, "rejected": 0}


# Each embedding process loads the embedder once.
_worker_fn: embedders.EmbedFn | None = None


def _exit_with_parent(parent: int) -> None:
    # A SIGKILLed parent cannot shut the pool down, and a worker waits on its call queue
    # forever (it holds both ends of the pipe): leave when the parent is gone.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _worker_init(spec: str, parent: int) -> None:
    global _worker_fn
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _worker_fn = embedders.resolve(spec, warn_zeros=False)


def _worker_embed(texts: list[str]) -> np.ndarray:
    assert _worker_fn is not None
    return _worker_fn(texts)


def _executor(spec: str, workers: int) -> Executor:
    if workers == 1:
        return ThreadPoolExecutor(1, thread_name_prefix="embed")
    # spawn: the parent holds engine and database connections that must not be forked.
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(spec, os.getpid()),
    )


# The clients' own JSON form (compact, UTF-8 as is).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _done_future(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class Stream:
    """One pass of the copy: reads, embeds, indexes and checkpoints until the input ends."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.plan = ctx.plan
        self.rp: RecomputePlan = recompute_plan(self.plan)
        self.workers = self.rp.workers
        self.fields = self.rp.fields
        self.embedder = embedders.load(self.rp.embedder, warn_zeros=False)
        if self.embedder.dimension != self.rp.dimension:
            raise EmbedderError(
                f"embedder {self.rp.embedder!r} now returns dimension "
                f"{self.embedder.dimension}, the run was planned with {self.rp.dimension}"
            )
        stored = ctx.record.progress or {}
        self._start_from(stored if stored.get("strategy") == STRATEGY else None)

    def _start_from(self, progress: dict[str, Any] | None) -> None:
        """Go on from stored progress, or from the start (None)."""
        self.progress: dict[str, Any] = dict(progress or initial_progress(self.workers))
        self.stripes: list[dict[str, Any]] = [dict(s) for s in self.progress["stripes"]]

    def reader(self) -> tuple[Iterator[Batch], Any]:
        start = min(self.stripes, key=lambda s: s["resume_batch"])
        batch_size = self.rp.batch_size
        if self.rp.source == "jsonl":
            jsonl = JsonlReader(self.rp.to_dict(), self.fields, batch_size)
            return jsonl.batches(start["resume_batch"], start["position"]), None
        index_reader = IndexReader(
            self.ctx.engine,
            self.plan.source_index,
            self.fields,
            batch_size,
            skipping=self.rp.skip_file is not None,
        )
        return index_reader.batches(start["resume_batch"], start["position"]), index_reader

    def embed(self, executor: Executor, batch: Batch) -> Future[Any]:
        """Start embedding ``batch``: with one worker, a thread embeds, checks and serializes
        it (so that the main thread only sends); with more, a process embeds it."""
        if not batch.docs:
            return _done_future([])
        if self.workers == 1:
            return executor.submit(self._prepare, batch)
        return executor.submit(_worker_embed, batch.texts)

    def _prepare(self, batch: Batch) -> list[str]:
        return self._sources(batch, self.embedder(batch.texts))  # checked by Embedder

    def _sources(self, batch: Batch, vectors: np.ndarray) -> list[str]:
        """Each document with its vector as the JSON the client would send."""
        field = self.fields.vector
        return [
            _dumps({**doc, field: row})
            for (_, _, doc), row in zip(batch.docs, vectors.tolist(), strict=True)
        ]

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        except PositionLost as exc:
            # Elasticsearch only: read everything again into a fresh PIT. Indexing is by
            # ID, so what was indexed before is overwritten with the same documents.
            self._start_from(None)
            self.ctx.checkpoint(
                event="copy_restarted", detail={"reason": str(exc)}, progress=self.progress
            )
            return self._run()

    def _run(self) -> dict[str, Any]:
        batches, closeable = self.reader()
        executor = _executor(self.rp.embedder, self.workers)
        in_flight: dict[Future[Any], Batch] = {}
        try:
            for batch in batches:
                stripe = self.stripes[batch.number % self.workers]
                if batch.number < stripe["next_batch"]:
                    continue  # this stripe acknowledged it before a crash
                self.ctx.crash("recompute.read")
                in_flight[self.embed(executor, batch)] = batch
                # Up to `workers` batches embed while the oldest finished one is indexed.
                while len(in_flight) > self.workers:
                    self._index_one(in_flight)
            while in_flight:
                self._index_one(in_flight)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            if closeable is not None:
                closeable.close()
        return self.progress

    def _index_one(self, in_flight: dict[Future[Any], Batch]) -> None:
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        future = min(done, key=lambda f: in_flight[f].number)
        batch = in_flight.pop(future)
        try:
            result = future.result()
        except EmbedderError:
            raise
        except Exception as exc:
            raise EmbedderError(
                f"embedder {self.rp.embedder!r} failed on batch {batch.number}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self.workers > 1 and batch.docs:
            vectors = embedders.check_batch(
                self.rp.embedder,
                result,
                len(batch.docs),
                self.embedder.dimension,
                self.embedder.allows_zero_rows,
            )
            result = self._sources(batch, vectors)
        self.ctx.crash("recompute.embedded")
        self._bulk(batch, result)
        self.ctx.crash("recompute.indexed")
        self._write_rejects(batch)
        self._checkpoint(batch)

    def _bulk(self, batch: Batch, sources: list[str]) -> None:
        if not batch.docs:
            return
        # a target deleted meanwhile would be re-created by this bulk with default mappings
        own_target.check_copy(self.ctx, None)
        target = self.plan.target_index
        # _source is already JSON: both clients' serializers pass strings through.
        actions = (
            {"_op_type": "index", "_index": target, "_id": doc_id, "_source": source}
            for (doc_id, _, _), source in zip(batch.docs, sources, strict=True)
        )
        _, errors = self.ctx.engine.bulk(actions)
        if errors:
            raise bulk_refused(self.ctx, errors, len(batch.docs), batch.number, "the engine")

    def _write_rejects(self, batch: Batch) -> None:
        # A JSONL file's rejects were written whole at plan time; the index's are found now.
        skip_file = self.rp.skip_file
        if not batch.rejected or self.rp.source != "index" or not skip_file:
            return
        with open(skip_file, "a", encoding="utf-8") as out:
            for reject in batch.rejected:
                out.write(json.dumps({"batch": batch.number, **reject}) + "\n")

    def _checkpoint(self, batch: Batch) -> None:
        s = batch.number % self.workers
        stripe = self.stripes[s]
        stripe.update(
            next_batch=batch.number + self.workers,
            resume_batch=batch.number + 1,
            position=batch.end,
            indexed=stripe["indexed"] + len(batch.docs),
            rejected=stripe["rejected"] + len(batch.rejected),
        )
        self.progress = {
            "strategy": STRATEGY,
            "stripes": self.stripes,
            "indexed": sum(x["indexed"] for x in self.stripes),
            "rejected": sum(x["rejected"] for x in self.stripes),
            "batches": self.progress.get("batches", 0) + 1,
        }
        self.ctx.checkpoint(progress=self.progress)
        progress = events.Progress.from_status(self._status(), STRATEGY, self.progress["batches"])
        self.ctx.reporter.emit(self.ctx.record, progress)

    def _status(self) -> TaskStatus:
        expected = self.rp.expected or self.rp.source_count or 0
        return TaskStatus(
            task_id=STRATEGY,
            completed=False,
            total=int(expected),
            created=int(self.progress["indexed"]),
            description=f"recompute embeddings ({self.rp.embedder})",
        )
