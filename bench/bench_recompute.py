"""`start --recompute-embeddings` from a JSONL file: ingest throughput against a bare
`helpers.bulk` of the same documents with precomputed vectors, and the tool's peak RSS.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh), with
an alias over an empty source index (id keyword, text, lang keyword, n integer) and a
deterministic JSONL of short documents (`{"id", "text" of 8-16 words, "lang", "n"}`):

``throughput``: alternating in one process, on the same engine, repeat after repeat:

- tool:     `api.start(..., RunOptions(verify=True, recompute_embeddings=True, ...))`
            in-process, timed whole: plan (which reads and checks the JSONL), create the
            target, re-check the file (its sha256), read + embed + bulk-index batch after
            batch (batch k+1 embedded in a thread while batch k is indexed) with a
            checkpoint per batch, restore settings, refresh, verify (count, mapped dimension,
            a re-embedded sample), atomic alias swap;
- baseline: what a user with the vectors already at hand would write: create an index with
            exactly the settings and mappings the tool creates its target with (those of
            the tool's own plan, copy-time settings included: 0 replicas, refresh off),
            stream the same JSONL (`json.loads` per line) and `opensearchpy.helpers.bulk`
            each document with its precomputed vector (`chunk_size` = the tool's batch size,
            the same client class and the same `_source` bytes), then refresh. Timed:
            index creation + reading + bulk + refresh. The vectors are computed before the
            clock starts and held as one float32 matrix (`.tolist()` per document, as the
            tool does per batch).

Variants of the tool, each paired with its own baseline run (order alternating):

- ``excluded``: the tool runs with ``--embedder bench_recompute:precomputed_embeddings``,
  a `module:function` embedder that looks each text up in a text -> row table of the same
  precomputed matrix (prepared before timing; a text not in the table is hashed, so it is
  deterministic by text). Its cost is a dict lookup and a row gather (~0.1 ms a batch), so
  the tool's whole pipeline (reader, thread, per-batch checks, checkpoint, bulk) is measured
  with the embedding itself taken out. Measuring the hashing embedder's time and subtracting
  it was rejected: embedding overlaps indexing in a thread, so a subtraction would charge the
  tool less than nothing for the overlap and more than the truth for the GIL contention.
- ``included``: the default ``hashing`` embedder, computed during the run.
- ``included-w2`` (informational): the same with ``--workers 2`` (two embedding processes).

The ratio is tool docs/s / baseline docs/s per pair; the result is the median over repeats.
Both sides map the vector with the same ``--vector-mapping`` (default
``{"type": "float", "index": false, "doc_values": false}``: stored in ``_source`` only, so
the engine does the least per vector and the client side is what is compared; with a k-NN
mapping the HNSW graph build makes the engine the bottleneck for both sides alike: the
baseline measured 130-250 docs/s with the tool's default knn_vector, 3,000-5,000 with this;
``--vector-mapping default`` selects the tool's own choice).

``rss``: `reindex-fsm start ... --recompute-embeddings --documents-path F --force` as a
subprocess per size, peak RSS from `os.wait4`'s `ru_maxrss` (the process and its reaped
children, max not sum; --workers 1, so one process) and a /proc VmRSS trace sampled every
0.2 s for where it grows.

The load average (`os.getloadavg`) before and after each measurement is in the results.

    python bench/bench_recompute.py throughput --docs 100000 --repeats 5 \\
        --variants excluded,included,included-w2 \\
        --out bench/results/recompute-throughput-100k-opensearch-2.19.6-run3.json
    python bench/bench_recompute.py rss --sizes 10000,1000000 \\
        --out bench/results/recompute-rss-opensearch-2.19.6.json
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import numpy as np
from _common import bench_engine, report
from opensearchpy import helpers

from reindex_fsm import api
from reindex_fsm.embedders.hashing import compute_embeddings as hashing_embeddings
from reindex_fsm.options import RunOptions
from reindex_fsm.plan import Plan

if __name__ == "__main__":
    # `--embedder bench_recompute:precomputed_embeddings` must find this very module (with its
    # table), not import the file a second time.
    sys.modules.setdefault("bench_recompute", sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[1]
ALIAS = "bench-recompute"
SOURCE = "bench-recompute-src"
SOURCE_MAPPINGS = {
    "properties": {
        "id": {"type": "keyword"},
        "text": {"type": "text"},
        "lang": {"type": "keyword"},
        "n": {"type": "integer"},
    }
}
CHEAP_VECTOR = {"type": "float", "index": False, "doc_values": False}
PRECOMPUTED_SPEC = "bench_recompute:precomputed_embeddings"
# variant: (embedder, --workers). included-w2 (informational) embeds in 2 processes.
VARIANTS = {
    "excluded": (PRECOMPUTED_SPEC, 1),
    "included": ("hashing", 1),
    "included-w2": ("hashing", 2),
}
VECTOR_FIELD = "embedding"

# The precomputed vectors: one float32 row per JSONL line, and each text's row.
_MATRIX: np.ndarray = np.zeros((0, 256), dtype=np.float32)
_ROW_OF: dict[str, int] = {}


def precomputed_embeddings(texts: list[str]) -> np.ndarray:
    """The hashing embedder's vectors, looked up instead of computed (texts not in the table,
    such as the dimension probe, are hashed)."""
    rows = [_ROW_OF.get(t, -1) for t in texts]
    if -1 not in rows:
        return _MATRIX[rows]
    out = np.empty((len(texts), _MATRIX.shape[1]), dtype=np.float32)
    missing = [i for i, r in enumerate(rows) if r < 0]
    out[missing] = hashing_embeddings([texts[i] for i in missing])
    known = [i for i, r in enumerate(rows) if r >= 0]
    if known:
        out[known] = _MATRIX[[rows[i] for i in known]]
    return out


# -- data ----------------------------------------------------------------------------------


def write_jsonl(path: Path, docs: int, seed: int = 20240) -> None:
    """``docs`` short documents, the same for the same count and seed."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5000)]
    langs = ["en", "de", "fr", "es", "it"]
    tmp = path.with_suffix(".partial")
    with open(tmp, "w", encoding="utf-8") as out:
        for i in range(docs):
            text = " ".join(rng.choices(vocab, k=rng.randint(8, 16)))
            doc = {"id": f"d{i:07d}", "text": text, "lang": langs[i % 5], "n": i}
            out.write(json.dumps(doc) + "\n")
    tmp.rename(path)


def jsonl_for(workdir: Path, docs: int) -> Path:
    path = workdir / f"recompute-{docs}.jsonl"
    if not path.exists():
        t0 = time.perf_counter()
        write_jsonl(path, docs)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return path


def load_table(path: Path, batch_size: int = 5000) -> float:
    """Fill the precomputed table (hashing vectors of every line); returns the seconds."""
    global _MATRIX
    t0 = time.perf_counter()
    texts = [json.loads(line)["text"] for line in path.open("rb")]
    parts = [
        hashing_embeddings(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    ]
    _MATRIX = np.concatenate(parts)
    _ROW_OF.clear()
    for row, text in enumerate(texts):
        _ROW_OF.setdefault(text, row)
    return time.perf_counter() - t0


# -- engine --------------------------------------------------------------------------------


def _reset(engine: Any) -> None:
    """An empty source behind the alias; every other bench index deleted."""
    if not engine.index_exists(SOURCE):
        engine.create_index(
            SOURCE, {"index.number_of_shards": 1, "index.number_of_replicas": 0}, SOURCE_MAPPINGS
        )
    on = engine.get_alias(ALIAS)
    if set(on) != {SOURCE}:
        actions = [{"remove": {"index": idx, "alias": ALIAS}} for idx in on]
        actions.append({"add": {"index": SOURCE, "alias": ALIAS, "is_write_index": True}})
        engine.update_aliases(actions)
    body = engine.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    for row in body:
        name = row["index"]
        if name.startswith(ALIAS) and name != SOURCE:
            engine.delete_index(name)


def _code_version() -> dict[str, Any]:
    """Which code was measured: the commit, uncommitted changes, and the files' hashes."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip()

    # The modules a recompute run's speed depends on, found by import (not by path), so a
    # module that moves is still hashed.
    from reindex_fsm import embedders, store
    from reindex_fsm.embedders import hashing
    from reindex_fsm.steps.copy import readers, recompute, stream
    from reindex_fsm.store import repository

    modules = (recompute, stream, readers, embedders, hashing, store, repository)
    files = [Path(m.__file__).resolve().relative_to(ROOT).as_posix() for m in modules]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "reindex_fsm").splitlines(),
        "sha256": {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:12] for f in files},
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _options(
    path: Path, embedder: str, batch_size: int, mapping: dict[str, Any] | None, workers: int = 1
) -> RunOptions:
    return RunOptions(
        workers=workers,
        verify=True,
        recompute_embeddings=True,
        documents_path=str(path),
        batch_size=batch_size,
        embedder=embedder,
        vector_mapping=mapping,
    )


# -- throughput ----------------------------------------------------------------------------


def _tool(url: str, state_db: str, options: RunOptions, docs: int) -> dict[str, Any]:
    cfg = api.Config(state_db=state_db, engine_url=url, client_options={"request_timeout": 120})
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    outcome = api.start(cfg, ALIAS, options)
    elapsed = time.perf_counter() - t0
    record = outcome.record
    if record.state.value != "SWAPPED":
        raise SystemExit(f"tool run ended {record.state}: {record.error}")
    _, events = api.show(cfg, record.id)
    # Seconds of each step, from the stored transitions (wall clock).
    # Each transition's time is the work that led to it: start->PLANNED is the plan (the
    # JSONL's first full check), TARGET_CREATED->REINDEXING the re-check of the file,
    # REINDEXING->VERIFYING the copy, VERIFYING->SWAPPED the verification and the swap.
    phases: dict[str, float] = {}
    last = started_at
    for event in events:
        if event.from_state == event.to_state:
            continue
        key = f"{event.from_state or 'start'}->{event.to_state}"
        phases[key] = round((event.at - last).total_seconds(), 3)
        last = event.at
    ended_at = started_at + timedelta(seconds=elapsed)
    phases["after_last_transition"] = round((ended_at - last).total_seconds(), 3)
    if record.target_count != docs:
        raise SystemExit(f"tool indexed {record.target_count} of {docs}")
    return {"seconds": elapsed, "phases": phases}


def _baseline(engine: Any, p: Plan, path: Path, docs: int, batch_size: int, i: int) -> float:
    dest = f"{ALIAS}-baseline-{i}"
    matrix = _MATRIX

    def actions():  # type: ignore[no-untyped-def]
        with open(path, "rb") as fh:
            for row, raw in enumerate(fh):
                doc = json.loads(raw)
                yield {
                    "_op_type": "index",
                    "_index": dest,
                    "_id": str(doc["id"]),
                    "_source": {**doc, VECTOR_FIELD: matrix[row].tolist()},
                }

    t0 = time.perf_counter()
    engine.create_index(dest, {**p.settings, **p.copy_settings}, p.mappings)
    ok, errors = helpers.bulk(
        engine.client, actions(), chunk_size=batch_size, raise_on_error=False, stats_only=False
    )
    engine.refresh(dest)
    elapsed = time.perf_counter() - t0
    if ok != docs or errors or engine.count(dest) != docs:
        raise SystemExit(f"baseline indexed {ok} of {docs}: {str(errors)[:300]}")
    return elapsed


@click.group()
def main() -> None:
    """Recompute-embeddings benchmarks (see the module docstring)."""


@main.command()
@click.option("--docs", type=int, default=100_000, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--variants", default="excluded,included", show_default=True)
@click.option(
    "--vector-mapping",
    default=json.dumps(CHEAP_VECTOR),
    show_default=True,
    help="The vector field's mapping, for both sides; `default`: the tool's own choice "
    "(knn_vector, lucene HNSW, on OpenSearch with k-NN).",
)
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def throughput(
    docs: int,
    repeats: int,
    batch_size: int,
    variants: str,
    vector_mapping: str,
    workdir: str | None,
    out: str | None,
) -> None:
    """Docs/s of the tool against helpers.bulk with precomputed vectors."""
    mapping = None if vector_mapping == "default" else json.loads(vector_mapping)
    wanted = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = set(wanted) - set(VARIANTS)
    if unknown:
        raise click.UsageError(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    code = _code_version()
    with bench_engine() as (url, engine):
        with tempfile.TemporaryDirectory(prefix="bench-recompute-") as tmp:
            work = Path(workdir) if workdir else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            path = jsonl_for(work, docs)
            jsonl_bytes = path.stat().st_size
            table_s = load_table(path)
            print(f"precomputed {len(_MATRIX)} vectors in {table_s:.1f}s", file=sys.stderr)
            # What one pass over the file costs: reading lines, and json.loads of each.
            t0 = time.perf_counter()
            with open(path, "rb") as fh:
                for _ in fh:
                    pass
            read_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            with open(path, "rb") as fh:
                for raw in fh:
                    json.loads(raw)
            parse_s = time.perf_counter() - t0
            _reset(engine)
            # The tool's own plan gives the baseline its index settings and mappings.
            plan_cfg = api.Config(state_db=f"sqlite:///{tmp}/plan.db", engine_url=url)
            p = api.plan(plan_cfg, ALIAS, _options(path, "hashing", batch_size, mapping))
            rows: dict[str, list[dict[str, Any]]] = {v: [] for v in wanted}
            n = 0
            for i in range(repeats):
                for variant in wanted:
                    order = ("tool", "baseline") if n % 2 == 0 else ("baseline", "tool")
                    n += 1
                    row: dict[str, Any] = {"order": "/".join(order), "load_before": _load()}
                    for which in order:
                        if which == "tool":
                            spec, workers = VARIANTS[variant]
                            options = _options(path, spec, batch_size, mapping, workers)
                            tool = _tool(url, f"sqlite:///{tmp}/state-{n}.db", options, docs)
                            row["tool_s"] = tool["seconds"]
                            row["tool_phases_s"] = tool["phases"]
                        else:
                            row["baseline_s"] = _baseline(engine, p, path, docs, batch_size, n)
                    row["load_after"] = _load()
                    _reset(engine)
                    row["tool_docs_per_s"] = docs / row["tool_s"]
                    row["baseline_docs_per_s"] = docs / row["baseline_s"]
                    row["ratio"] = row["tool_docs_per_s"] / row["baseline_docs_per_s"]
                    rows[variant].append(row)
                    print(
                        f"repeat {i + 1} {variant}: tool {row['tool_docs_per_s']:.0f} docs/s "
                        f"baseline {row['baseline_docs_per_s']:.0f} docs/s ratio "
                        f"{row['ratio']:.3f} ({row['order']}) load {row['load_before']}",
                        file=sys.stderr,
                    )
        summary = {}
        for variant, vrows in rows.items():
            ratios = [r["ratio"] for r in vrows]
            summary[variant] = {
                "embedder": VARIANTS[variant][0],
                "workers": VARIANTS[variant][1],
                "median_tool_docs_per_s": statistics.median(r["tool_docs_per_s"] for r in vrows),
                "median_baseline_docs_per_s": statistics.median(
                    r["baseline_docs_per_s"] for r in vrows
                ),
                "median_ratio": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "goal": 0.9 if variant == "excluded" else 0.8,
                "rows": vrows,
            }
        result = {
            "bench": "recompute-throughput",
            "docs": docs,
            "repeats": repeats,
            "batch_size": batch_size,
            "vector_mapping": mapping,
            "engine": engine.info().__dict__,
            "cpus": os.cpu_count(),
            "code": code,
            "jsonl_bytes": jsonl_bytes,
            "one_pass_read_s": round(read_s, 3),
            "one_pass_json_loads_s": round(parse_s, 3),
            "precompute_s": round(table_s, 3),
            "variants": summary,
        }
        report(result, out)


# -- peak RSS ------------------------------------------------------------------------------


def _sample_rss(pid: int, trace: list[tuple[float, int]], stop: threading.Event) -> None:
    t0 = time.perf_counter()
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        trace.append((time.perf_counter() - t0, int(line.split()[1])))
                        break
        except OSError:
            return
        stop.wait(0.2)


def _rss_run(
    url: str, path: Path, docs: int, state_db: str, args: list[str], log: Path
) -> dict[str, Any]:
    cmd = [
        str(ROOT / ".venv" / "bin" / "reindex-fsm"),
        "start",
        "--alias",
        ALIAS,
        "--recompute-embeddings",
        "--documents-path",
        str(path),
        "--force",
        "--verify",
        "--json",
        "--engine-url",
        url,
        "--state-db",
        state_db,
        *args,
    ]
    load_before = _load()
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        trace: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, trace, stop), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {log.read_text()[-2000:]}")
    result = json.loads(log.read_text().strip().splitlines()[-1])
    if result.get("state") != "SWAPPED" or result.get("target_count") != docs:
        raise SystemExit(f"run did not index {docs}: {result}")
    # The trace at each tenth of the run, to see whether (and when) memory grows.
    deciles = []
    if trace:
        for k in range(11):
            at = elapsed * k / 10
            deciles.append(min(trace, key=lambda s: abs(s[0] - at))[1])
    return {
        "docs": docs,
        "peak_rss_kib": usage.ru_maxrss,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "sampled_max_vmrss_kib": max((s[1] for s in trace), default=None),
        "vmrss_kib_at_each_tenth": deciles,
        "seconds": round(elapsed, 1),
        "docs_per_s": round(docs / elapsed),
        "load_before": load_before,
        "load_after": _load(),
        "run_id": result.get("run_id"),
    }


@main.command()
@click.option("--sizes", default="10000,1000000", show_default=True)
@click.option("--embedder", default="hashing", show_default=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--vector-mapping", default=json.dumps(CHEAP_VECTOR), show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def rss(
    sizes: str,
    embedder: str,
    batch_size: int,
    workers: int,
    vector_mapping: str,
    workdir: str | None,
    out: str | None,
) -> None:
    """Peak RSS of the `reindex-fsm start` process at each size."""
    counts = [int(s) for s in sizes.split(",")]
    args = [
        "--embedder",
        embedder,
        "--batch-size",
        str(batch_size),
        "--workers",
        str(workers),
        "--vector-mapping",
        vector_mapping,
    ]
    code = _code_version()
    with bench_engine() as (url, engine):
        with tempfile.TemporaryDirectory(prefix="bench-recompute-") as tmp:
            work = Path(workdir) if workdir else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            rows = []
            for docs in counts:
                path = jsonl_for(work, docs)
                _reset(engine)
                row = _rss_run(
                    url, path, docs, f"{tmp}/state-{docs}.db", args, Path(tmp) / f"{docs}.log"
                )
                _reset(engine)
                rows.append(row)
                print(
                    f"{docs} docs: peak RSS {row['peak_rss_mib']} MiB, {row['seconds']}s "
                    f"({row['docs_per_s']} docs/s), load {row['load_before']}",
                    file=sys.stderr,
                )
        peaks = [r["peak_rss_kib"] for r in rows]
        result = {
            "bench": "recompute-rss",
            "embedder": embedder,
            "batch_size": batch_size,
            "workers": workers,
            "vector_mapping": json.loads(vector_mapping),
            "engine": engine.info().__dict__,
            "cpus": os.cpu_count(),
            "code": code,
            "rows": rows,
            "ratio_largest_to_smallest": peaks[-1] / peaks[0],
            "goal": "within 10%",
        }
        report(result, out)


if __name__ == "__main__":
    main()
