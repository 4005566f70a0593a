"""The whole ``reindex-fsm start`` process against an expert by hand and a plain `_reindex`.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh), one
source of N realistic documents (``reindex_fsm.testing.sample``: generated articles, an
analysis chain with custom analyzers, multi-fields, 3 shards, 0 replicas) sits behind an
alias. Three ways of moving the alias onto a verified copy run alternating, in one process:

- tool:   ``reindex-fsm start --alias A --verify --force`` as a fresh process (start-up,
          imports, planning, preflight, lease, target, the async `_reindex` followed through
          the Tasks API, restore, count verification, swap), on a state database that
          already exists (as an operator's does);
- expert: what a careful operator types by hand, as requests from this process (no
          start-up paid): create the target with the source's settings and mappings plus
          replicas 0 and refresh -1; ``_reindex?slices=auto&wait_for_completion=true``;
          put replicas and the refresh interval back; refresh; count; one ``_aliases`` swap;
- plain:  the same without the tuning: create with the source's settings, one
          ``_reindex?wait_for_completion=true`` (one slice), refresh, count, swap.

Every variant ends with the alias on a new index holding all N documents; after each one
the alias goes back to the source and the new index is deleted, so each starts from the
same cluster. The order of the three rotates from repeat to repeat. Reported per size: the
median and range of each variant's wall time, and the medians of the per-repeat ratios
tool/expert and tool/plain.

    python bench/bench_cli.py --docs 20000 --docs 200000 --repeats 3 --out-dir bench/results
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from _common import bench_engine, report

from reindex_fsm.steps.planning import target_settings
from reindex_fsm.store import open_store
from reindex_fsm.testing.sample import SAMPLE_MAPPINGS, generate_docs, sample_settings

# OpenSearch 2.19 answers a blocking _reindex with one TASK_RESOURCE_USAGE header per scroll
# phase (hundreds for 200k documents); Python's http.client refuses more than 100 headers.
http.client._MAXHEADERS = 100_000  # type: ignore[attr-defined]
ALIAS = "bench-cli"
SOURCE = "bench-cli-src"
TOOL = Path(sys.executable).with_name("reindex-fsm")
BY_HAND = ("expert", "plain")


def _on_alias(engine: Any) -> list[str]:
    return sorted(engine.get_alias(ALIAS))


def _reset(engine: Any) -> None:
    """The alias back on the source alone; every other bench index deleted."""
    on = _on_alias(engine)
    if on != [SOURCE]:
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": ALIAS}} for i in on]
        actions.append({"add": {"index": SOURCE, "alias": ALIAS, "is_write_index": True}})
        engine.update_aliases(actions)
    body = engine.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    for row in body:
        if row["index"].startswith(ALIAS) and row["index"] != SOURCE:
            engine.delete_index(row["index"])
    # A write block the tool put on the source stays there after a swap (the source is the
    # previous index now); the next variant must find the source as the first one did.
    engine.put_settings(SOURCE, {"index.blocks.write": None})


def _swap(engine: Any, dest: str) -> None:
    engine.update_aliases(
        [
            {"remove": {"index": SOURCE, "alias": ALIAS}},
            {"add": {"index": dest, "alias": ALIAS, "is_write_index": True}},
        ]
    )


def _by_hand(engine: Any, n: int, dest: str, tuned: bool) -> float:
    definition = engine.get_index(SOURCE)
    t0 = time.perf_counter()
    settings = target_settings(definition.settings, {})
    params = {"wait_for_completion": "true"}
    create = dict(settings)
    if tuned:
        create.update({"index.number_of_replicas": 0, "index.refresh_interval": "-1"})
        params["slices"] = "auto"
    engine.create_index(dest, create, definition.mappings)
    resp = engine.request(
        "POST",
        "/_reindex",
        params=params,
        body={"source": {"index": SOURCE}, "dest": {"index": dest}},
    )
    if tuned:
        keys = ("index.number_of_replicas", "index.refresh_interval")
        engine.put_settings(dest, {key: settings.get(key) for key in keys})
    engine.refresh(dest)
    count = engine.count(dest)
    _swap(engine, dest)
    elapsed = time.perf_counter() - t0
    if count != n or resp.get("failures"):
        raise SystemExit(f"{dest}: {count} of {n} documents: {json.dumps(resp)[:300]}")
    return elapsed


def _tool(tool: str, url: str, state_db: str, extra: list[str], _repeat: int) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REINDEX_FSM_")}
    argv = [tool, "-q", "start", "--alias", ALIAS, "--verify", "--force"]
    argv += ["--engine-url", url, "--state-db", state_db, *extra]
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the tool exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def _ensure_source(engine: Any, docs: int) -> None:
    if engine.index_exists(SOURCE) and engine.count(SOURCE) == docs:
        _reset(engine)
        return
    if engine.index_exists(SOURCE):
        engine.delete_index(SOURCE)
    t0 = time.perf_counter()
    # The sample's index and documents, loaded with refresh off and two bulk threads (the
    # sample's own loader is one thread: a million documents would take most of an hour
    # here), then given the sample's refresh interval and merged to a few segments.
    settings = sample_settings(engine)
    engine.create_index(SOURCE, {**settings, "index.refresh_interval": "-1"}, SAMPLE_MAPPINGS)
    actions = (
        {"_op_type": "index", "_index": SOURCE, "_id": doc_id, "_source": source}
        for doc_id, source in generate_docs(docs)
    )
    for ok, item in engine.helpers.parallel_bulk(
        engine._client, actions, thread_count=2, chunk_size=2000, raise_on_error=False
    ):
        if not ok:
            raise SystemExit(f"a sample document was refused: {item}")
    engine.put_settings(SOURCE, {"index.refresh_interval": settings["index.refresh_interval"]})
    engine.update_aliases([{"add": {"index": SOURCE, "alias": ALIAS, "is_write_index": True}}])
    engine.request("POST", f"/{SOURCE}/_forcemerge", params={"max_num_segments": 5})
    engine.refresh(SOURCE)
    if engine.count(SOURCE) != docs:
        raise SystemExit(f"the source holds {engine.count(SOURCE)} of {docs} documents")
    print(f"loaded {docs} documents in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    _reset(engine)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_size(
    url: str, engine: Any, docs: int, repeats: int, tools: dict[str, str], extra: list[str]
) -> dict[str, Any]:
    """``tools``: label -> the ``reindex-fsm`` executable (e.g. this checkout's as "tool" and
    an older checkout's as "tool-before", each on a state database of its own)."""
    _ensure_source(engine, docs)
    variants = (*tools, *BY_HAND)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, Callable[[int], float]] = {
            "expert": lambda i: _by_hand(engine, docs, f"{ALIAS}-expert-{i}", tuned=True),
            "plain": lambda i: _by_hand(engine, docs, f"{ALIAS}-plain-{i}", tuned=False),
        }
        for label, tool in tools.items():
            state_db = f"sqlite:///{tmp}/{label}.db"
            if tool == str(TOOL):
                open_store(state_db)  # the operator's state database exists already
            else:  # an older checkout makes its own (its schema may be older)
                subprocess.run(
                    [
                        tool,
                        "start",
                        "--alias",
                        ALIAS,
                        "--dry-run",
                        "--engine-url",
                        url,
                        "--state-db",
                        state_db,
                    ],
                    check=True,
                    capture_output=True,
                )
            runs[label] = functools.partial(_tool, tool, url, state_db, extra)
        for i in range(repeats):
            k = i % len(variants)
            order = variants[k:] + variants[:k]
            times: dict[str, float] = {}
            for which in order:
                times[which] = runs[which](i)
                _reset(engine)
            row: dict[str, Any] = dict(times)
            for label in tools:
                for by_hand in BY_HAND:
                    row[f"{label}/{by_hand}"] = times[label] / times[by_hand]
            row["order"] = "/".join(order)
            rows.append(row)
            print(
                f"{docs} docs, repeat {i + 1}: "
                + "  ".join(f"{v} {times[v]:.2f}s" for v in variants)
                + "".join(f"  {k} {v:.3f}" for k, v in row.items() if "/" in k and k != "order"),
                file=sys.stderr,
            )
    ratios = [k for k in rows[0] if "/" in k and k != "order"]
    return {
        "docs": docs,
        "repeats": repeats,
        "tools": tools,
        "tool_args": extra,
        **{f"{v}_s": _spread([r[v] for r in rows]) for v in variants},
        **{f"median {k}": statistics.median(r[k] for r in rows) for k in ratios},
        "rows": rows,
    }


@click.command()
@click.option("--docs", "sizes", type=int, multiple=True, default=[20_000, 200_000])
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--tool-arg", "extra", multiple=True, help="One more argument for the tool's start.")
@click.option(
    "--tool-before",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Another checkout's reindex-fsm executable, run as variant tool-before.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write each size's result as cli-<docs>-<engine>.json here too.",
)
def main(
    sizes: tuple[int, ...],
    repeats: int,
    extra: tuple[str, ...],
    tool_before: str | None,
    out_dir: str | None,
) -> None:
    tools = {"tool": str(TOOL)}
    if tool_before:
        tools["tool-before"] = tool_before
    with bench_engine() as (url, engine):
        info = engine.info()
        for docs in sizes:
            result = {
                "engine": info.__dict__,
                **bench_size(url, engine, docs, repeats, tools, list(extra)),
            }
            out = None
            if out_dir:
                out = str(Path(out_dir) / f"cli-{docs // 1000}k-{info.flavor}-{info.version}.json")
            report(result, out)
        engine.delete_index(SOURCE)


if __name__ == "__main__":
    main()
