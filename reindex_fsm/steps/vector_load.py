"""Vector targets: the k-NN graph built once, after the load, where the engine allows it.

A target whose mappings hold a vector field indexed for approximate k-NN search builds a
graph (HNSW) as it is loaded: every flushed segment gets one, and every merge builds one
again. Where the engine can be told to store the vectors only while the run copies, the
run does that and builds the graph once, after the copy and before verification.

What the engines allow (read in their sources, OpenSearch k-NN 2.19):

- OpenSearch k-NN, a ``knn_vector`` field of a native engine (``faiss``, ``nmslib``, a
  trained model; a field without ``method.engine``, which 2.19 gives to faiss): the
  dynamic index setting ``index.knn.advanced.approximate_threshold`` (-1: build no graph;
  the default 0: build one for every segment). The plugin reads it each time a segment
  writer is made (``BasePerFieldKnnVectorsFormat.nativeEngineVectorsFormat``), so the
  run sets -1 while it copies (a copy-time setting, stored with the plan, put back to its
  final value by the restore before verification) and then force-merges the target to
  one segment per shard: the merge builds each shard's graph once. A segment without a
  graph is searched exactly (brute force): the k-NN query answers correctly throughout.
  A shard that holds ONE segment when the copy ends is not merged (Lucene skips a merge
  to one segment of one segment): it keeps exact search until its next merge.
- OpenSearch k-NN, a ``knn_vector`` field of the ``lucene`` engine (the tool's own
  choice): nothing defers it. The plugin applies the threshold to native engines only;
  Lucene's HNSW writer inserts each vector into the segment's graph as it is indexed.
- Elasticsearch ``dense_vector`` (8.x, 9.x): no setting defers the graph either (Lucene's
  HNSW writer again). 8.x/9.x let a mapping's ``index_options.type`` be updated from
  ``flat`` (no graph) to ``hnsw``, but that is a mapping change of the target (the
  planned definition checked before the swap), so the run does not do it. 7.x's
  dense_vector is not indexed at all.

``--no-defer-vector-graph`` keeps the engine's default during the copy; ``--copy-set``
overrides the setting like any copy-time setting.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..engine.base import EngineInfo
from ..errors import RunStepFailed
from ..options import RunOptions
from .context import RunContext
from .poll import Backoff, Waiter

THRESHOLD = "index.knn.advanced.approximate_threshold"
NO_GRAPH = "-1"  # the engine stores the vectors and builds no graph
SEGMENTS_AFTER = 1  # the force-merge's max_num_segments: one graph per shard
THRESHOLD_SINCE = (2, 18)  # the k-NN plugin version that added the setting
DEFAULT_ENGINE = "faiss"  # what OpenSearch k-NN 2.19 gives a knn_vector without method.engine


def vector_fields(mappings: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, dict]]:
    """``(path, mapping)`` of every ``knn_vector``/``dense_vector`` field, objects included."""
    for name, field in (mappings.get("properties") or {}).items():
        if not isinstance(field, Mapping):
            continue
        path = f"{prefix}{name}"
        if field.get("type") in ("knn_vector", "dense_vector"):
            yield path, dict(field)
        if "properties" in field:
            yield from vector_fields(field, f"{path}.")


def _knn_engine(field: Mapping[str, Any]) -> str:
    if field.get("model_id"):
        return "model"
    method = field.get("method") or {}
    return str(method.get("engine") or DEFAULT_ENGINE) if isinstance(method, Mapping) else "?"


def _version(text: str | None) -> tuple[int, int] | None:
    try:
        major, minor = (text or "").split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def decide(
    mappings: Mapping[str, Any], settings: Mapping[str, Any], version: str | None = None
) -> tuple[bool, str]:
    """Can the graph build be deferred for a target of these mappings and settings on an
    OpenSearch of ``version`` (None: not known), and why (or why not)."""
    fields = list(vector_fields(mappings))
    if not fields:
        return False, "no vector field"
    dense = [path for path, f in fields if f.get("type") == "dense_vector"]
    if dense:
        return False, (
            f"dense_vector ({', '.join(dense)}): Elasticsearch has no setting that defers "
            "the HNSW build (only a mapping change from index_options flat to hnsw, which "
            "the run does not make)"
        )
    if str(settings.get("index.knn", "")).lower() != "true":
        return False, "index.knn is not on: the knn_vector fields build no graph"
    lucene = [path for path, f in fields if _knn_engine(f) == "lucene"]
    if lucene:
        return False, (
            f"knn_vector of the lucene engine ({', '.join(lucene)}): OpenSearch's "
            f"{THRESHOLD} applies to faiss/nmslib only; Lucene builds the graph as each "
            "vector is indexed"
        )
    known = _version(version)
    if known is not None and known < THRESHOLD_SINCE:
        return False, (
            f"OpenSearch {version} has no {THRESHOLD} (k-NN "
            f"{'.'.join(map(str, THRESHOLD_SINCE))} and later)"
        )
    engines = sorted({_knn_engine(f) for _, f in fields})
    return True, (
        f"knn_vector of {'/'.join(engines)}: no graph while copying ({THRESHOLD}={NO_GRAPH}), "
        f"built once by a force-merge to {SEGMENTS_AFTER} segment per shard before verify"
    )


def copy_settings(
    options: RunOptions,
    mappings: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    info: EngineInfo | None = None,
) -> dict[str, Any]:
    """The copy-time setting that defers the graph build, when the target allows it."""
    if not options.defer_vector_graph or mappings is None:
        return {}
    version = info.version if info is not None and info.flavor == "opensearch" else None
    deferred, _ = decide(mappings, settings, version)
    return {THRESHOLD: NO_GRAPH} if deferred else {}


def deferred(copy_time: Mapping[str, Any]) -> bool:
    """Did the plan defer the graph build (its copy-time settings say no graph)?"""
    return str(copy_time.get(THRESHOLD)) == NO_GRAPH


def describe(
    mappings: Mapping[str, Any],
    settings: Mapping[str, Any],
    copy_time: Mapping[str, Any],
    version: str | None = None,
) -> str:
    """What the plan does about the vector graph, for --dry-run."""
    can, why = decide(mappings, settings, version)
    if deferred(copy_time):
        return why
    if can:
        return f"not deferred (--no-defer-vector-graph or --copy-set); it could be: {why}"
    return f"not deferred: {why}"


def build_graphs(ctx: RunContext) -> dict[str, Any]:
    """Before verification, after the restore (the threshold is back to its final value):
    force-merge the target so that each shard's graph is built once. Run again on a
    resume: a merge already done makes the next one a no-op, and one still running on the
    engine is waited for by the next request (the force-merge thread pool runs one at a
    time per node)."""
    p = ctx.plan
    if not deferred(p.copy_settings):
        return {}
    task_id = ctx.engine.force_merge(p.target_index, SEGMENTS_AFTER)
    ctx.crash("verify.vector_merge_started")
    status = None
    if task_id is not None:
        waiter = Waiter(ctx.clock, ctx.sleep, Backoff.of(ctx.options), None)
        while True:
            status = ctx.engine.get_task(task_id)
            if status is None or status.completed:
                break
            waiter.sleep()
        if status is not None and status.error is not None:
            raise RunStepFailed(
                f"the force-merge of {p.target_index} that builds its vector graph failed: "
                f"{status.error.get('reason') or status.error}",
                run_id=ctx.run_id,
                state=ctx.record.state.value,
            )
    ctx.engine.refresh(p.target_index)
    return {"vector_graph": f"built by a force-merge to {SEGMENTS_AFTER} segment per shard"}
