"""A full reindex-fsm run against a bare `_reindex?wait_for_completion=true`, side by side.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh), one
source of N realistic documents (reindex_fsm.testing.sample) is copied, alternating in one process:

- tool:     `api.start(..., RunOptions(verify=True))`: plan, create the target (with
            bulk-load tuning), async `_reindex` followed through the Tasks API, restore
            settings and wait for health, refresh, count-verify, atomic alias swap;
- baseline: create an index with the same settings and mappings, then one blocking
            `POST _reindex?wait_for_completion=true` into it (what an operator does by hand).

Each repeat runs both (their order alternating), then resets: the alias goes back to the
source and the new indices are deleted. The result is the median of tool/baseline times.

    python bench/bench_reindex.py --docs 200000 --repeats 5
"""

from __future__ import annotations

import http.client
import json
import statistics
import sys
import tempfile
import time
from typing import Any

import click
from _common import bench_engine, report

from reindex_fsm import api
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.planning import target_settings
from reindex_fsm.testing.sample import create_sample

# OpenSearch 2.19 answers a blocking _reindex with one TASK_RESOURCE_USAGE header per scroll
# phase (hundreds for 200k documents); Python's http.client refuses more than 100 headers.
# Only the baseline's blocking call needs this; the tool's async _reindex does not.
http.client._MAXHEADERS = 100_000  # type: ignore[attr-defined]
ALIAS = "bench-documents"
SOURCE = "bench-documents-src"


def _reset(engine: Any, keep: set[str]) -> None:
    """The alias back on the source (when there is one); every other bench index deleted."""
    on = engine.get_alias(ALIAS)
    if SOURCE in keep and SOURCE not in on:
        actions = [{"remove": {"index": idx, "alias": ALIAS}} for idx in on]
        actions.append({"add": {"index": SOURCE, "alias": ALIAS, "is_write_index": True}})
        engine.update_aliases(actions)
    body = engine.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    for row in body:
        name = row["index"]
        if name.startswith(ALIAS) and name not in keep:
            engine.delete_index(name)


def _tool(url: str, state_db: str) -> float:
    cfg = api.Config(state_db=state_db, engine_url=url, client_options={"request_timeout": 120})
    t0 = time.perf_counter()
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True))  # the defaults
    elapsed = time.perf_counter() - t0
    if outcome.record.state.value != "SWAPPED":
        raise SystemExit(f"tool run ended {outcome.record.state}: {outcome.record.error}")
    return elapsed


def _baseline(engine: Any, n: int, i: int) -> float:
    definition = engine.get_index(SOURCE)
    dest = f"{ALIAS}-baseline-{i}"
    t0 = time.perf_counter()
    engine.create_index(dest, target_settings(definition.settings, {}), definition.mappings)
    resp = engine.request(
        "POST",
        "/_reindex",
        params={"wait_for_completion": "true"},
        body={"source": {"index": SOURCE}, "dest": {"index": dest}},
    )
    elapsed = time.perf_counter() - t0
    if resp.get("created", 0) + resp.get("updated", 0) != n or resp.get("failures"):
        raise SystemExit(f"baseline reindex incomplete: {json.dumps(resp)[:300]}")
    return elapsed


@click.command()
@click.option("--docs", type=int, default=200_000, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the results as JSON here too.",
)
def main(docs: int, repeats: int, out: str | None) -> None:
    with bench_engine() as (url, engine):
        if not engine.index_exists(SOURCE) or engine.count(SOURCE) != docs:
            if engine.index_exists(SOURCE):
                engine.delete_index(SOURCE)
            _reset(engine, keep=set())
            t0 = time.perf_counter()
            create_sample(engine, SOURCE, ALIAS, docs, settings={"index.number_of_replicas": 0})
            print(f"loaded {docs} documents in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        _reset(engine, keep={SOURCE})
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):
                order = ("tool", "baseline") if i % 2 == 0 else ("baseline", "tool")
                times: dict[str, float] = {}
                for which in order:
                    if which == "tool":
                        times["tool"] = _tool(url, f"sqlite:///{tmp}/state-{i}.db")
                    else:
                        times["baseline"] = _baseline(engine, docs, i)
                _reset(engine, keep={SOURCE})
                ratio = times["tool"] / times["baseline"]
                rows.append({**times, "ratio": ratio, "order": "/".join(order)})
                print(
                    f"repeat {i + 1}: tool {times['tool']:.2f}s  baseline "
                    f"{times['baseline']:.2f}s  ratio {ratio:.3f}  ({'/'.join(order)})",
                    file=sys.stderr,
                )
        result = {
            "docs": docs,
            "repeats": repeats,
            "engine": engine.info().__dict__,
            "median_tool_s": statistics.median(r["tool"] for r in rows),
            "median_baseline_s": statistics.median(r["baseline"] for r in rows),
            "median_ratio": statistics.median(r["ratio"] for r in rows),
            "rows": rows,
        }
        report(result, out)


if __name__ == "__main__":
    main()
