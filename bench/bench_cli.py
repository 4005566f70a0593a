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
import shlex
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
PREFIX = "bench-cli"  # alias bench-cli-<N>, its source bench-cli-<N>-src
TOOL = Path(sys.executable).with_name("reindex-fsm")
BY_HAND = ("expert", "plain")


def _names(docs: int) -> tuple[str, str]:
    alias = f"{PREFIX}-{docs}"
    return alias, f"{alias}-src"


def _reset(engine: Any, docs: int) -> None:
    """The alias back on the source alone; every other index of this size deleted."""
    alias, source = _names(docs)
    on = sorted(engine.get_alias(alias))
    if on != [source]:
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": alias}} for i in on]
        actions.append({"add": {"index": source, "alias": alias, "is_write_index": True}})
        engine.update_aliases(actions)
    body = engine.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    for row in body:
        if row["index"].startswith(f"{alias}-") and row["index"] != source:
            engine.delete_index(row["index"])
    # A write block the tool put on the source stays there after a swap (the source is the
    # previous index now); the next variant must find the source as the first one did.
    engine.put_settings(source, {"index.blocks.write": None})


def _swap(engine: Any, docs: int, dest: str) -> None:
    alias, source = _names(docs)
    engine.update_aliases(
        [
            {"remove": {"index": source, "alias": alias}},
            {"add": {"index": dest, "alias": alias, "is_write_index": True}},
        ]
    )


def _by_hand(engine: Any, n: int, tuned: bool, repeat: int) -> float:
    alias, source = _names(n)
    dest = f"{alias}-{'expert' if tuned else 'plain'}-{repeat}"
    definition = engine.get_index(source)
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
        body={"source": {"index": source}, "dest": {"index": dest}},
    )
    if tuned:
        keys = ("index.number_of_replicas", "index.refresh_interval")
        engine.put_settings(dest, {key: settings.get(key) for key in keys})
    engine.refresh(dest)
    count = engine.count(dest)
    _swap(engine, n, dest)
    elapsed = time.perf_counter() - t0
    if count != n or resp.get("failures"):
        raise SystemExit(f"{dest}: {count} of {n} documents: {json.dumps(resp)[:300]}")
    return elapsed


def _tool(tool: str, url: str, state_db: str, extra: list[str], docs: int, _repeat: int) -> float:
    alias, _ = _names(docs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REINDEX_FSM_")}
    argv = [tool, "-q", "start", "--alias", alias, "--verify", "--force"]
    argv += ["--engine-url", url, "--state-db", state_db, *extra]
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the tool exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return elapsed


def _ensure_source(engine: Any, docs: int) -> None:
    alias, source = _names(docs)
    if engine.index_exists(source) and engine.count(source) == docs:
        _reset(engine, docs)
        return
    if engine.index_exists(source):
        engine.delete_index(source)
    t0 = time.perf_counter()
    # The sample's index and documents, loaded with refresh off and two bulk threads (the
    # sample's own loader is one thread: a million documents would take most of an hour
    # here), then given the sample's refresh interval and merged to a few segments.
    settings = sample_settings(engine)
    engine.create_index(source, {**settings, "index.refresh_interval": "-1"}, SAMPLE_MAPPINGS)
    actions = (
        {"_op_type": "index", "_index": source, "_id": doc_id, "_source": doc}
        for doc_id, doc in generate_docs(docs)
    )
    for ok, item in engine.helpers.parallel_bulk(
        engine._client, actions, thread_count=2, chunk_size=2000, raise_on_error=False
    ):
        if not ok:
            raise SystemExit(f"a sample document was refused: {item}")
    engine.put_settings(source, {"index.refresh_interval": settings["index.refresh_interval"]})
    engine.update_aliases([{"add": {"index": source, "alias": alias, "is_write_index": True}}])
    engine.request("POST", f"/{source}/_forcemerge", params={"max_num_segments": 5})
    engine.refresh(source)
    if engine.count(source) != docs:
        raise SystemExit(f"the source holds {engine.count(source)} of {docs} documents")
    print(f"loaded {docs} documents in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    _reset(engine, docs)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_size(
    url: str,
    engine: Any,
    docs: int,
    repeats: int,
    tools: dict[str, tuple[str, list[str]]],
    extra: list[str],
    by_hand: tuple[str, ...] = BY_HAND,
) -> dict[str, Any]:
    """``tools``: label -> (the ``reindex-fsm`` executable, arguments of its own): this
    checkout's as "tool", an older checkout's as "tool-before", this one with other options
    as a ``--variant``; each on a state database of its own."""
    _ensure_source(engine, docs)
    alias, _ = _names(docs)
    variants = (*tools, *by_hand)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, Callable[[int], float]] = {
            "expert": functools.partial(_by_hand, engine, docs, True),
            "plain": functools.partial(_by_hand, engine, docs, False),
        }
        for label, (tool, own_args) in tools.items():
            state_db = f"sqlite:///{tmp}/{label}.db"
            if tool == str(TOOL):
                open_store(state_db)  # the operator's state database exists already
            else:  # an older checkout makes its own (its schema may be older)
                subprocess.run(
                    [
                        tool,
                        "start",
                        "--alias",
                        alias,
                        "--dry-run",
                        "--engine-url",
                        url,
                        "--state-db",
                        state_db,
                    ],
                    check=True,
                    capture_output=True,
                )
            args = [*extra, *own_args]
            runs[label] = functools.partial(_tool, tool, url, state_db, args, docs)
        for i in range(repeats):
            k = i % len(variants)
            order = variants[k:] + variants[:k]
            times: dict[str, float] = {}
            for which in order:
                times[which] = runs[which](i)
                _reset(engine, docs)
            row: dict[str, Any] = dict(times)
            for label in tools:
                for manual in by_hand:
                    row[f"{label}/{manual}"] = times[label] / times[manual]
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
    "--variant",
    multiple=True,
    metavar="LABEL=ARGS",
    help="This checkout's tool with more start options, e.g. "
    "'async=--copy-set index.translog.durability=async' (repeatable).",
)
@click.option("--no-plain", is_flag=True, help="Leave the plain _reindex out (the expert stays).")
@click.option("--drop-sources", is_flag=True, help="Delete each size's source at the end.")
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
    variant: tuple[str, ...],
    no_plain: bool,
    drop_sources: bool,
    out_dir: str | None,
) -> None:
    tools: dict[str, tuple[str, list[str]]] = {"tool": (str(TOOL), [])}
    if tool_before:
        tools["tool-before"] = (tool_before, [])
    for spec in variant:
        label, _, args = spec.partition("=")
        tools[label] = (str(TOOL), shlex.split(args))
    by_hand = ("expert",) if no_plain else BY_HAND
    with bench_engine() as (url, engine):
        info = engine.info()
        for docs in sizes:
            result = {
                "engine": info.__dict__,
                **bench_size(url, engine, docs, repeats, tools, list(extra), by_hand),
            }
            out = None
            if out_dir:
                out = str(Path(out_dir) / f"cli-{docs // 1000}k-{info.flavor}-{info.version}.json")
            report(result, out)
            if drop_sources:
                engine.delete_index(_names(docs)[1])


if __name__ == "__main__":
    main()
