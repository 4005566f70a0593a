"""`start --recompute-embeddings` into a k-NN vector target: the same load with the graph
built while loading (the engine's default) and with its build deferred to after the load
(``reindex_fsm/steps/vector_load.py``), alternating in one process, docs/s and ratios.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh), the
alias and JSONL of ``bench_recompute.py`` (short documents, the default ``hashing``
embedder computed during the run, 256 dimensions), each run the whole tool in-process:
`api.start(..., RunOptions(verify=True, recompute_embeddings=True, ...))` timed from plan
to swap (the deferred variant's force-merge included, it is in verification). After each
run a k-NN query with a document's own vector must find that document first.

Variants (``--variants``):

- ``lucene``: the tool's own mapping on OpenSearch k-NN (``knn_vector``, hnsw, engine
  lucene): the graph is built as each vector is indexed; nothing defers it (the run's
  plan says so).
- ``faiss-deferred``: ``--vector-mapping`` knn_vector hnsw faiss l2: no graph while
  copying (``index.knn.advanced.approximate_threshold`` -1), one force-merge before
  verification.
- ``faiss-default`` (``--no-defer-vector-graph``): the same faiss field with the graph
  built during the load: needs the k-NN plugin's native faiss library, which the local
  engine does not have (a faiss segment with a graph never flushes there), so it is only
  run when asked for, on an engine that has it.
- ``float``: ``{"type": "float", "index": false}``: no vector index at all, the floor of
  what the engine does with the vector (informational).

The ratio is each variant's docs/s over ``lucene``'s in the same repeat; medians over
repeats. The load average before and after each run is in the results.

    python bench/bench_vector_load.py --docs 20000 --repeats 3 \\
        --out bench/results/vector-load-20k-opensearch-2.19.6.json
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import click
from _common import bench_engine, report
from bench_recompute import _code_version, _reset, _tool, jsonl_for

from reindex_fsm import api
from reindex_fsm.embedders import hashing
from reindex_fsm.options import RunOptions

FAISS = {
    "type": "knn_vector",
    "dimension": hashing.DIMENSION,
    "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"},
}
# variant: (--vector-mapping, defer the graph)
VARIANTS: dict[str, tuple[dict[str, Any] | None, bool]] = {
    "lucene": (None, True),
    "faiss-deferred": (FAISS, True),
    "faiss-default": (FAISS, False),
    "float": ({"type": "float", "index": False, "doc_values": False}, True),
}
PROBE_ROW = 4321  # the document whose own vector is the k-NN query


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _knn_finds_itself(engine: Any, index: str, path: Path) -> bool | None:
    """Does a k-NN query with one document's vector find that document first (None: the
    field is not k-NN searchable)?"""
    props = engine.get_index(index).mappings["properties"]["embedding"]
    if props.get("type") != "knn_vector":
        return None
    with path.open("rb") as fh:
        for row, line in enumerate(fh):
            if row == PROBE_ROW:
                doc = json.loads(line)
                break
    vector = hashing.compute_embeddings([doc["text"]])[0].tolist()
    body = {"size": 1, "query": {"knn": {"embedding": {"vector": vector, "k": 5}}}}
    top = engine.request("POST", f"/{index}/_search", body=body)["hits"]["hits"][0]
    return bool(top["_id"] == str(doc["id"]))


def _segments(engine: Any, index: str) -> int:
    return len(engine.request("GET", f"/_cat/segments/{index}", params={"format": "json"}))


@click.command()
@click.option("--docs", type=int, default=20_000, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--variants", default="lucene,faiss-deferred,float", show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(
    docs: int, repeats: int, batch_size: int, variants: str, workdir: str | None, out: str | None
) -> None:
    """Docs/s of a recompute load into a k-NN target, graph built during or after it."""
    wanted = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = set(wanted) - set(VARIANTS)
    if unknown or "lucene" not in wanted:
        raise click.UsageError(f"variants from {sorted(VARIANTS)}, lucene among them")
    work = Path(workdir or tempfile.mkdtemp(prefix="bench-vector-"))
    work.mkdir(parents=True, exist_ok=True)
    path = jsonl_for(work, docs)
    runs: list[dict[str, Any]] = []
    with bench_engine() as (url, engine):
        info = engine.info()
        for repeat in range(repeats):
            order = wanted if repeat % 2 == 0 else list(reversed(wanted))
            for variant in order:
                mapping, defer = VARIANTS[variant]
                _reset(engine)
                options = RunOptions(
                    verify=True,
                    recompute_embeddings=True,
                    documents_path=str(path),
                    batch_size=batch_size,
                    vector_mapping=mapping,
                    defer_vector_graph=defer,
                )
                state_db = f"sqlite:///{work}/state-{variant}-{repeat}-{uuid.uuid4().hex[:8]}.db"
                before = _load()
                timed = _tool(url, state_db, options, docs)
                cfg = api.Config(state_db=state_db, engine_url=url)
                (record,) = api.history(cfg)
                target = record.target_index
                row = {
                    "repeat": repeat,
                    "variant": variant,
                    "seconds": round(timed["seconds"], 2),
                    "docs_per_s": round(docs / timed["seconds"], 1),
                    "phases": timed["phases"],
                    "copy_settings": record.plan["copy_settings"],
                    "knn_finds_itself": _knn_finds_itself(engine, target, path),
                    "segments_after": _segments(engine, target),
                    "load_before": before,
                    "load_after": _load(),
                }
                runs.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        _reset(engine)
    summary: dict[str, Any] = {}
    for variant in wanted:
        rates = [r["docs_per_s"] for r in runs if r["variant"] == variant]
        ratios = []
        for repeat in range(repeats):
            mine = [r for r in runs if r["variant"] == variant and r["repeat"] == repeat]
            base = [r for r in runs if r["variant"] == "lucene" and r["repeat"] == repeat]
            ratios.append(round(mine[0]["docs_per_s"] / base[0]["docs_per_s"], 2))
        summary[variant] = {
            "docs_per_s_median": round(statistics.median(rates), 1),
            "docs_per_s_range": [min(rates), max(rates)],
            "ratio_to_lucene_median": round(statistics.median(ratios), 2),
            "ratio_to_lucene_range": [min(ratios), max(ratios)],
            "knn_all_correct": all(
                r["knn_finds_itself"] in (True, None) for r in runs if r["variant"] == variant
            ),
        }
    report(
        {
            "engine": f"{info.flavor} {info.version}",
            "docs": docs,
            "batch_size": batch_size,
            "repeats": repeats,
            "code": _code_version(),
            "summary": summary,
            "runs": runs,
        },
        out,
    )


if __name__ == "__main__":
    main()
