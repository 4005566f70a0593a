"""REINDEXING by recomputing embeddings: read documents (a JSONL file or the source index),
embed their text, bulk-index them with the vector into the target.

At plan time (:func:`prepare`), before anything is written: the embedder is loaded and
probed for its dimension, a JSONL file is checked whole, and the vector field's mapping
is chosen for the engine.

While copying (:func:`run_wait`), reading, embedding and indexing overlap: batch k+1 is
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
from typing import Any

import numpy as np

from .. import embedders, events
from ..documents import (
    BATCH_BYTES,
    Batch,
    Fields,
    IndexReader,
    JsonlReader,
    PositionLost,
    file_sha256,
    inspect_jsonl,
)
from ..engine.base import Engine, EngineInfo, TaskStatus
from ..errors import BadInput, CopyFailed, EmbedderError, UsageError
from ..options import RunOptions
from ..plan import Plan
from . import target as own_target
from .context import RunContext
from .copy import describe_failure, require_own_target

VECTOR_TYPES = ("dense_vector", "knn_vector")
SAMPLE_MIN_COSINE = 0.999  # a stored vector this close to a fresh embedding of its text


# -- plan time -----------------------------------------------------------------------------


def fields_for(options: RunOptions) -> Fields:
    id_field = options.id_field or ("id" if options.documents_path else "_id")
    return Fields(id=id_field, text=options.text_field, vector=options.vector_field)


def _declared_dimension(mapping: dict[str, Any]) -> int | None:
    value = mapping.get("dims", mapping.get("dimension"))
    return int(value) if value is not None else None


def _settings_for(mapping: dict[str, Any]) -> dict[str, Any]:
    """A knn_vector field needs the index created with k-NN on."""
    return {"index.knn": "true"} if mapping.get("type") == "knn_vector" else {}


def vector_mapping(
    engine: Engine,
    info: EngineInfo,
    options: RunOptions,
    dimension: int,
    source_mappings: dict[str, Any],
    zeros: bool,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The vector field's mapping, settings the target needs for it, and what was chosen."""
    name = options.vector_field
    existing = (source_mappings.get("properties") or {}).get(name)
    if options.vector_mapping is not None:
        given = _declared_dimension(options.vector_mapping)
        if given is not None and given != dimension:
            raise BadInput(
                f"--vector-mapping declares dimension {given}, but embedder "
                f"{options.embedder!r} returns {dimension}",
                hint="fix the mapping or choose the matching embedder",
            )
        given_mapping = dict(options.vector_mapping)
        return given_mapping, _settings_for(given_mapping), "given by --vector-mapping"
    if existing is not None:
        have = _declared_dimension(existing)
        if existing.get("type") in VECTOR_TYPES and have != dimension:
            raise BadInput(
                f"the source maps {name!r} as {existing.get('type')} of dimension {have}, "
                f"but embedder {options.embedder!r} returns {dimension}: stopping before "
                "anything is written",
                hint="use an embedder of that dimension, or pass --vector-mapping to "
                "replace the field's mapping knowingly",
            )
        if existing.get("type") in VECTOR_TYPES or existing.get("type") == "float":
            kept = dict(existing)
            return kept, _settings_for(kept), f"the source's {existing.get('type')} mapping"
    if info.flavor == "elasticsearch":
        # ES refuses zero vectors under cosine; the zeros embedder gets l2_norm.
        similarity = "l2_norm" if zeros else "cosine"
        return (
            {"type": "dense_vector", "dims": dimension, "index": True, "similarity": similarity},
            {},
            "dense_vector (Elasticsearch)",
        )
    if any("knn" in component for component in engine.plugins()):
        space = "l2" if zeros else "cosinesimil"
        knn = {
            "type": "knn_vector",
            "dimension": dimension,
            "method": {"name": "hnsw", "engine": "lucene", "space_type": space},
        }
        return knn, _settings_for(knn), "knn_vector (OpenSearch k-NN plugin, lucene engine)"
    raise BadInput(
        f"this OpenSearch ({engine.url}) has no k-NN plugin, so it has no vector field type "
        f"for {name!r}",
        hint="install the opensearch-knn plugin, or pass --vector-mapping "
        '\'{"type": "float"}\' to store the vector as a plain float array (not k-NN '
        "searchable)",
    )


def prepare(
    engine: Engine,
    info: EngineInfo,
    options: RunOptions,
    source_index: str,
    source_count: int,
    source_mappings: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Check everything a recompute run needs before anything is written.

    Returns the recompute plan, the mappings to merge over the source's, and extra
    target settings."""
    if options.batch_size < 1:
        raise UsageError(f"--batch-size {options.batch_size} must be at least 1")
    if options.workers < 1:
        raise UsageError(f"--workers {options.workers} must be at least 1")
    if (
        options.skip_invalid
        and options.documents_path
        and (os.path.abspath(options.skip_invalid) == os.path.abspath(options.documents_path))
    ):
        raise UsageError("--skip-invalid must not be the --documents-path file itself")
    fields = fields_for(options)
    embedder = embedders.load(options.embedder, warn_zeros=False)  # the CLI has warned
    zeros = embedder.allows_zero_rows
    mapping, settings, chosen = vector_mapping(
        engine, info, options, embedder.dimension, source_mappings, zeros
    )
    plan: dict[str, Any] = {
        "source": "jsonl" if options.documents_path else "index",
        "index": source_index,
        "fields": {"id": fields.id, "text": fields.text, "vector": fields.vector},
        "embedder": options.embedder,
        "dimension": embedder.dimension,
        "vector_mapping": mapping,
        "vector_mapping_chosen": chosen,
        "batch_size": options.batch_size,
        "workers": options.workers,
        "skip_file": os.path.abspath(options.skip_invalid) if options.skip_invalid else None,
        "verify_sample": options.verify_sample,
        "source_count": source_count,  # of the source index
    }
    if options.documents_path:
        if options.max_line_bytes < 1:
            raise UsageError(f"--max-line-bytes {options.max_line_bytes} must be at least 1")
        # the bounds are stored: every later read of the file cuts the same batches
        plan["max_line_bytes"] = options.max_line_bytes
        plan["batch_bytes"] = BATCH_BYTES
        summary = inspect_jsonl(
            options.documents_path,
            fields,
            options.skip_invalid,
            write=False,
            max_line_bytes=options.max_line_bytes,
        )
        plan.update(summary.to_dict())
        plan["expected"] = summary.documents
    else:
        plan["expected"] = None  # the source's count less what is rejected on the way
    return plan, {"properties": {fields.vector: mapping}}, settings


def plan(p: Plan) -> dict[str, Any]:
    rp = dict(p.recompute or {})
    rp.pop("duplicate_lines", None)
    return {"step": "copy", "strategy": "recompute embeddings", **rp}


# -- copying ---------------------------------------------------------------------------------


def initial_progress(workers: int) -> dict[str, Any]:
    stripes = [
        {"next_batch": s, "resume_batch": 0, "position": None, "indexed": 0, "rejected": 0}
        for s in range(workers)
    ]
    return {"strategy": "recompute", "stripes": stripes, "indexed": 0, "rejected": 0}


def run_start(ctx: RunContext) -> dict[str, Any]:
    require_own_target(ctx)
    rp = ctx.plan.recompute or {}
    if rp["source"] == "jsonl":
        # The file must be the one checked at plan time; with --skip-invalid, the check is
        # done again to write the rejected lines (a plan writes nothing).
        if rp.get("skip_file"):
            fields = Fields(**rp["fields"])
            limit = rp.get("max_line_bytes")
            summary = inspect_jsonl(rp["path"], fields, rp["skip_file"], True, limit)
            digest = summary.sha256
        else:
            digest = file_sha256(rp["path"])
        if digest != rp["sha256"]:
            raise BadInput(
                f"{rp['path']}: changed since the run was planned",
                hint="put the planned file back, or abort this run and start a new one",
            )
    elif rp.get("skip_file"):
        # The index's rejects are appended batch by batch: start from an empty file.
        try:
            open(rp["skip_file"], "w").close()
        except OSError as exc:
            raise BadInput(f"{rp['skip_file']}: cannot be written: {exc.strerror or exc}") from exc
    progress = initial_progress(int(rp["workers"]))
    return {
        "progress": progress,
        "detail": {"strategy": "recompute", "embedder": rp["embedder"], "source": rp["source"]},
    }


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


class _Stream:
    """One pass of the copy: reads, embeds, indexes and checkpoints until the input ends."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.plan = ctx.plan
        self.rp: dict[str, Any] = self.plan.recompute or {}
        self.workers = int(self.rp["workers"])
        self.fields = Fields(**self.rp["fields"])
        self.embedder = embedders.load(self.rp["embedder"], warn_zeros=False)
        if self.embedder.dimension != self.rp["dimension"]:
            raise EmbedderError(
                f"embedder {self.rp['embedder']!r} now returns dimension "
                f"{self.embedder.dimension}, the run was planned with {self.rp['dimension']}"
            )
        stored = ctx.record.progress or {}
        self._start_from(stored if stored.get("strategy") == "recompute" else None)

    def _start_from(self, progress: dict[str, Any] | None) -> None:
        """Go on from stored progress, or from the start (None)."""
        self.progress: dict[str, Any] = dict(progress or initial_progress(self.workers))
        self.stripes: list[dict[str, Any]] = [dict(s) for s in self.progress["stripes"]]

    def reader(self) -> tuple[Iterator[Batch], Any]:
        start = min(self.stripes, key=lambda s: s["resume_batch"])
        batch_size = int(self.rp["batch_size"])
        if self.rp["source"] == "jsonl":
            jsonl = JsonlReader(self.rp, self.fields, batch_size)
            return jsonl.batches(start["resume_batch"], start["position"]), None
        index_reader = IndexReader(
            self.ctx.engine,
            self.plan.source_index,
            self.fields,
            batch_size,
            skipping=self.rp.get("skip_file") is not None,
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
        executor = _executor(self.rp["embedder"], self.workers)
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
                f"embedder {self.rp['embedder']!r} failed on batch {batch.number}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self.workers > 1 and batch.docs:
            vectors = embedders.check_batch(
                self.rp["embedder"],
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
            first = errors[0]
            item = next(iter(first.values()), {}) if isinstance(first, dict) else {}
            why = describe_failure(item) if isinstance(item, dict) and item else str(first)
            raise CopyFailed(
                f"{len(errors)} of {len(batch.docs)} documents of batch {batch.number} were "
                f"refused by the engine, first: {why}",
                run_id=self.ctx.run_id,
                state=self.ctx.record.state.value,
            )

    def _write_rejects(self, batch: Batch) -> None:
        # A JSONL file's rejects were written whole at plan time; the index's are found now.
        skip_file = self.rp.get("skip_file")
        if not batch.rejected or self.rp["source"] != "index" or not skip_file:
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
            "strategy": "recompute",
            "stripes": self.stripes,
            "indexed": sum(x["indexed"] for x in self.stripes),
            "rejected": sum(x["rejected"] for x in self.stripes),
            "batches": self.progress.get("batches", 0) + 1,
        }
        self.ctx.checkpoint(progress=self.progress)
        progress = events.Progress.from_status(
            self._status(), "recompute", self.progress["batches"]
        )
        self.ctx.reporter.emit(self.ctx.record, progress)

    def _status(self) -> TaskStatus:
        expected = self.rp.get("expected") or self.rp.get("source_count") or 0
        return TaskStatus(
            task_id="recompute",
            completed=False,
            total=int(expected),
            created=int(self.progress["indexed"]),
            description=f"recompute embeddings ({self.rp['embedder']})",
        )


def run_wait(ctx: RunContext) -> dict[str, Any]:
    progress = _Stream(ctx).run()
    detail = {
        "strategy": "recompute",
        "indexed": progress.get("indexed", 0),
        "rejected": progress.get("rejected", 0),
    }
    return {"progress": progress, "detail": detail}


# -- verification ----------------------------------------------------------------------------


def expected_count(
    p: Plan, progress: dict[str, Any] | None, source_count: int | None = None
) -> int:
    """Documents the target should hold: a file's valid lines, or the source index's
    count (``source_count``: counted again under the write block) less rejects."""
    rp = p.recompute or {}
    if rp.get("expected") is not None:
        return int(rp["expected"])
    count = source_count if source_count is not None else rp["source_count"]
    return int(count) - int((progress or {}).get("rejected", 0))


def mapped_dimension(engine: Engine, p: Plan) -> int | None:
    rp = p.recompute or {}
    props = engine.get_index(p.target_index).mappings.get("properties") or {}
    return _declared_dimension(props.get(rp["fields"]["vector"]) or {})


def sample_check(ctx: RunContext) -> dict[str, Any]:
    """Embed a random sample of the target's documents again and compare with their
    stored vectors: the smallest cosine similarity, and how many are off."""
    p = ctx.plan
    rp = p.recompute or {}
    fields = Fields(**rp["fields"])
    size = int(rp.get("verify_sample", 50))
    seed = int(ctx.run_id, 16) % 2**31 if all(c in "0123456789abcdef" for c in ctx.run_id) else 7
    body = {
        "size": size,
        "query": {
            "function_score": {
                "query": {"match_all": {}},
                "random_score": {"seed": seed, "field": "_seq_no"},
            }
        },
    }
    hits = ctx.engine.search(p.target_index, body)["hits"]["hits"]
    if not hits:
        return {"sample": 0, "min_cosine": None, "mismatched": [], "bad_dimension": []}
    embedder = embedders.load(rp["embedder"], warn_zeros=False)
    texts, stored, ids, bad_dimension = [], [], [], []
    for hit in hits:
        source = hit.get("_source") or {}
        text, _ = fields.text_of(source)
        vector = source.get(fields.vector)
        if not isinstance(vector, list) or len(vector) != rp["dimension"]:
            bad_dimension.append(hit["_id"])
            continue
        texts.append(text or "")
        stored.append(vector)
        ids.append(hit["_id"])
    mismatched: list[str] = []
    min_cosine: float | None = None
    if texts:
        fresh = embedder(texts)
        kept = np.asarray(stored, dtype=np.float32)
        if embedder.allows_zero_rows:
            close = np.all(np.isclose(fresh, kept, atol=1e-6), axis=1)
            mismatched = [i for i, ok in zip(ids, close, strict=True) if not ok]
            min_cosine = 1.0 if not mismatched else 0.0
        else:
            norms = np.linalg.norm(fresh, axis=1) * np.linalg.norm(kept, axis=1)
            cosine = np.sum(fresh * kept, axis=1) / np.where(norms == 0, 1, norms)
            min_cosine = float(cosine.min())
            mismatched = [i for i, c in zip(ids, cosine, strict=True) if c < SAMPLE_MIN_COSINE]
    return {
        "sample": len(hits),
        "min_cosine": min_cosine,
        "mismatched": mismatched[:10],
        "bad_dimension": bad_dimension[:10],
    }
