"""Deep verification (`--verify deep`) against just scanning both indices, side by side.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh), a
source of N realistic documents (reindex_fsm.testing.sample) and an identical copy of it (one
blocking `_reindex`) are compared, alternating in one process:

- tool:     `deep_verify.verify(...)`: scroll the source, one `_mget` of the target per
            500 documents, SHA-256 of both sides' canonical `_source`, mappings compared;
- baseline: `helpers.scan` of the source, then of the target (every document read once
            from each side, nothing compared): the least any full comparison must do.

The result is the median throughput (source documents per second) of each and their ratio.

`rss` runs the tool's verification in a fresh process at each given size and reports its
peak RSS (`ru_maxrss`): memory must not grow with the index.

    python bench/bench_verify.py throughput --docs 50000 --repeats 3
    python bench/bench_verify.py rss --sizes 10000,100000
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from _common import bench_engine, report

from reindex_fsm.engine.connect import connect
from reindex_fsm.options import RunOptions
from reindex_fsm.plan import Plan
from reindex_fsm.steps import deep_verify
from reindex_fsm.steps.planning import target_settings
from reindex_fsm.testing.sample import create_sample

PREFIX = "bench-verify"
DEEP = RunOptions(verify=True, verify_level="deep")


def _names(n: int) -> tuple[str, str]:
    return f"{PREFIX}-{n}-src", f"{PREFIX}-{n}-copy"


def _prepare(engine: Any, n: int) -> tuple[str, str]:
    """A source of ``n`` documents and an identical copy, made once and reused."""
    source, copy = _names(n)
    if engine.index_exists(copy) and engine.count(copy) == n:
        return source, copy
    for name in (source, copy):
        if engine.index_exists(name):
            engine.delete_index(name)
    t0 = time.perf_counter()
    create_sample(engine, source, f"{PREFIX}-{n}", n, settings={"index.number_of_replicas": 0})
    definition = engine.get_index(source)
    engine.create_index(copy, target_settings(definition.settings, {}), definition.mappings)
    task = engine.request(
        "POST",
        "/_reindex",
        params={"wait_for_completion": "false"},
        body={"source": {"index": source}, "dest": {"index": copy}},
    )["task"]
    while not engine.request("GET", f"/_tasks/{task}").get("completed"):
        time.sleep(1)
    engine.refresh(copy)
    assert engine.count(copy) == n, "the copy is incomplete"
    print(f"prepared {n} documents in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return source, copy


def _plan(engine: Any, source: str, copy: str) -> Plan:
    """What verify needs of a plan: the two names and the planned mappings."""
    return Plan(
        run_id="bench",
        alias=f"{PREFIX}-alias",
        source_index=source,
        target_index=copy,
        source_count=engine.count(source),
        settings={},
        mappings=engine.get_index(copy).mappings,
        aliases={},
        alias_actions=[],
        reindex={"source": {"index": source}, "dest": {"index": copy}},
        engine={},
        planned_at="",
    )


def _tool(engine: Any, source: str, copy: str) -> float:
    plan = _plan(engine, source, copy)
    t0 = time.perf_counter()
    record = deep_verify.verify(engine, plan, DEEP, "bench", plan.source_count)
    elapsed = time.perf_counter() - t0
    if deep_verify.problems(record) or record["documents"]["compared"] != plan.source_count:
        raise SystemExit(f"the verification of an identical copy failed: {record}")
    return elapsed


def _baseline(engine: Any, source: str, copy: str, n: int) -> float:
    t0 = time.perf_counter()
    seen = 0
    for index in (source, copy):
        for _hit in engine.helpers.scan(engine.client, index=index, size=1000):
            seen += 1
    elapsed = time.perf_counter() - t0
    if seen != 2 * n:
        raise SystemExit(f"baseline scanned {seen} documents, expected {2 * n}")
    return elapsed


@click.group()
def main() -> None:
    """Deep verification benchmarks."""


@main.command()
@click.option("--docs", type=int, default=50_000, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def throughput(docs: int, repeats: int, out: str | None) -> None:
    """Median docs/s of the deep verification and of scanning both indices."""
    with bench_engine() as (_url, engine):
        source, copy = _prepare(engine, docs)
        rows: list[dict[str, Any]] = []
        for i in range(repeats):
            order = ("tool", "baseline") if i % 2 == 0 else ("baseline", "tool")
            times: dict[str, float] = {}
            for which in order:
                if which == "tool":
                    times["tool"] = _tool(engine, source, copy)
                else:
                    times["baseline"] = _baseline(engine, source, copy, docs)
            row = {
                "tool_docs_per_s": docs / times["tool"],
                "baseline_docs_per_s": docs / times["baseline"],
                "ratio": times["baseline"] / times["tool"],
                "order": "/".join(order),
            }
            rows.append(row)
            print(
                f"repeat {i + 1}: tool {row['tool_docs_per_s']:.0f} docs/s, baseline "
                f"{row['baseline_docs_per_s']:.0f} docs/s, ratio {row['ratio']:.2f}",
                file=sys.stderr,
            )
        info = engine.info()
        ratios = [r["ratio"] for r in rows]
        report(
            {
                "engine": f"{info.flavor} {info.version}",
                "documents": docs,
                "repeats": repeats,
                "tool_docs_per_s_median": statistics.median(r["tool_docs_per_s"] for r in rows),
                "baseline_docs_per_s_median": statistics.median(
                    r["baseline_docs_per_s"] for r in rows
                ),
                "ratio_tool_over_baseline_throughput_median": statistics.median(ratios),
                "ratio_range": [min(ratios), max(ratios)],
                "rows": rows,
            },
            out,
        )


@main.command("once", hidden=True)
@click.option("--url", required=True)
@click.option("--docs", type=int, required=True)
def once(url: str, docs: int) -> None:
    """One verification in this process; prints its time and peak RSS as JSON."""
    engine = connect(url, request_timeout=300)
    source, copy = _names(docs)
    elapsed = _tool(engine, source, copy)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"docs": docs, "seconds": elapsed, "peak_rss_mib": peak_kib / 1024}))


@main.command()
@click.option("--sizes", default="10000,100000", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def rss(sizes: str, out: str | None) -> None:
    """Peak RSS of a fresh process verifying each size."""
    with bench_engine() as (url, engine):
        rows: list[dict[str, Any]] = []
        for n in (int(s) for s in sizes.split(",")):
            _prepare(engine, n)
            result = subprocess.run(
                [sys.executable, str(Path(__file__)), "once", "--url", url, "--docs", str(n)],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row["docs_per_s"] = n / row["seconds"]
            rows.append(row)
            print(f"{n} documents: {row['peak_rss_mib']:.1f} MiB", file=sys.stderr)
        info = engine.info()
        report(
            {
                "engine": f"{info.flavor} {info.version}",
                "rows": rows,
                "rss_ratio_largest_over_smallest": rows[-1]["peak_rss_mib"]
                / rows[0]["peak_rss_mib"],
            },
            out,
        )


if __name__ == "__main__":
    main()
