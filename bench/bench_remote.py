"""The copy from another cluster (``--source-url``) against a bare ``_reindex`` from
remote of the same data, on the same machine, side by side in one process.

Two engines (``--source-url``, ``--target-url``; the target's reindex.remote.allowlist
must take the source, as the test engines' does): one source of N realistic documents
(reindex_fsm.testing.sample) behind an alias on the source cluster, then per repeat,
in alternating order:

- tool (reindex): ``api.start(..., RunOptions(source_url=..., remote_copy="reindex"))``:
  plan (the allowlist probe, the ``_seq_no`` ranges), create the target, the ranges'
  ``_reindex`` from remote tasks followed through the Tasks API, restore settings, count
  both clusters, create the alias on the target cluster;
- tool (scan): the same with ``remote_copy="scan"`` (the tool reads and bulk-indexes);
- baseline: create an index with the same settings and mappings on the target cluster,
  then one blocking ``POST _reindex?wait_for_completion=true`` from remote into it.

The result: the medians, and each tool mode's time over the baseline's (its ratio).

    python bench/bench_remote.py --source-url http://127.0.0.1:9200 \
        --target-url http://127.0.0.1:9201 --docs 100000 --repeats 3
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
from _common import report

from reindex_fsm import api
from reindex_fsm.engine.connect import connect
from reindex_fsm.engine.urls import parse_engine_url
from reindex_fsm.options import RunOptions
from reindex_fsm.remote import carried_settings
from reindex_fsm.steps.planning import target_settings
from reindex_fsm.testing.sample import create_sample

http.client._MAXHEADERS = 100_000  # type: ignore[attr-defined]  # see bench_cli.py
ALIAS = "bench-remote"
SOURCE = "bench-remote-src"
MODES = ("reindex", "scan")


def _reset(target: Any) -> None:
    """Every bench index and alias of the target cluster deleted."""
    body = target.request("GET", "/_cat/indices", params={"format": "json", "h": "index"})
    for row in body:
        if row["index"].startswith(ALIAS):
            target.delete_index(row["index"])


def _tool(source_url: str, target_url: str, state_db: str, mode: str) -> float:
    cfg = api.Config(
        state_db=state_db, engine_url=target_url, client_options={"request_timeout": 300}
    )
    options = RunOptions(verify=True, source_url=source_url, remote_copy=mode)
    t0 = time.perf_counter()
    outcome = api.start(cfg, ALIAS, options)
    elapsed = time.perf_counter() - t0
    if outcome.record.state.value != "SWAPPED":
        raise SystemExit(f"tool run ({mode}) ended {outcome.record.state}: {outcome.record.error}")
    return elapsed


def _baseline(source: Any, target: Any, source_url: str, n: int, i: int) -> float:
    definition = source.get_index(SOURCE)
    dest = f"{ALIAS}-baseline-{i}"
    settings = target_settings(carried_settings(definition.settings), {})
    t0 = time.perf_counter()
    target.create_index(dest, settings, definition.mappings)
    remote = {"host": parse_engine_url(source_url).node_url}
    resp = target.request(
        "POST",
        "/_reindex",
        params={"wait_for_completion": "true"},
        body={"source": {"remote": remote, "index": SOURCE}, "dest": {"index": dest}},
    )
    elapsed = time.perf_counter() - t0
    if resp.get("created", 0) + resp.get("updated", 0) != n or resp.get("failures"):
        raise SystemExit(f"baseline reindex incomplete: {json.dumps(resp)[:300]}")
    return elapsed


@click.command()
@click.option("--source-url", required=True, help="The source cluster.")
@click.option("--target-url", required=True, help="The target cluster.")
@click.option("--docs", type=int, default=100_000, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write here.")
def main(source_url: str, target_url: str, docs: int, repeats: int, out: str | None) -> None:
    source = connect(source_url, request_timeout=900)
    target = connect(target_url, request_timeout=900)
    try:
        if not source.index_exists(SOURCE) or source.count(SOURCE) != docs:
            if source.index_exists(SOURCE):
                source.delete_index(SOURCE)
            t0 = time.perf_counter()
            create_sample(source, SOURCE, ALIAS, docs, settings={"index.number_of_replicas": 0})
            print(f"loaded {docs} documents in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        _reset(target)
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):
                order = ["baseline", *MODES] if i % 2 == 0 else [*reversed(MODES), "baseline"]
                times: dict[str, float] = {}
                for which in order:
                    if which == "baseline":
                        times["baseline"] = _baseline(source, target, source_url, docs, i)
                    else:
                        db = f"sqlite:///{tmp}/state-{which}-{i}.db"
                        times[which] = _tool(source_url, target_url, db, which)
                    _reset(target)
                row = {
                    **times,
                    **{f"ratio_{m}": times[m] / times["baseline"] for m in MODES},
                    "order": "/".join(order),
                }
                rows.append(row)
                print(
                    f"repeat {i + 1}: baseline {times['baseline']:.2f}s  "
                    + "  ".join(
                        f"{m} {times[m]:.2f}s (ratio {row[f'ratio_{m}']:.3f})" for m in MODES
                    )
                    + f"  ({row['order']})",
                    file=sys.stderr,
                )
        result = {
            "docs": docs,
            "repeats": repeats,
            "source": source.info().__dict__,
            "target": target.info().__dict__,
            "median_baseline_s": statistics.median(r["baseline"] for r in rows),
            **{f"median_{m}_s": statistics.median(r[m] for r in rows) for m in MODES},
            **{
                f"median_ratio_{m}": statistics.median(r[f"ratio_{m}"] for r in rows) for m in MODES
            },
            "rows": rows,
        }
        report(result, out)
    finally:
        source.close()
        target.close()


if __name__ == "__main__":
    main()
