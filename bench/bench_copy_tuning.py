"""The copy tuning the tool chooses, each on and off: whole reindex-fsm runs, alternating.

On a real engine (REINDEX_FSM_ENGINE_URL, else a local one from scripts/engine.sh), the
source of bench_reindex.py (N realistic documents, 3 shards) is copied by
``api.start(..., RunOptions(verify=True, ...))`` once per variant per repeat, the
variants' order rotating each repeat:

- tuned:        the defaults (the scroll batch size chosen from the documents' size: the
                engines' 1,000 for documents under about 5 KiB);
- batch-1000:   ``--reindex-batch-size 1000``, the engines' own default;
- batch-8000:   ``--reindex-batch-size 8000``, about 5 MiB of the sample's documents (what
                the tool chose before the figures said it did not pay: 8,141);
- translog:     the defaults plus ``--copy-set index.translog.durability=async`` and a
                2gb flush threshold (the translog tuning, not a default: it did not pay);
- slices-6:     the defaults with ``--slices 6`` (two per shard).

Each run's time is divided by the same repeat's ``tuned`` time; the result is the median
of those ratios per variant (noise on a shared machine moves a whole repeat).

    python bench/bench_copy_tuning.py --docs 200000 --repeats 3 --variants tuned,batch-1000
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from typing import Any

import click
from _common import bench_engine, report
from bench_reindex import ALIAS, SOURCE, _reset

from reindex_fsm import api
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.sample import create_sample

TRANSLOG = {"index.translog.durability": "async", "index.translog.flush_threshold_size": "2gb"}
VARIANTS: dict[str, dict[str, Any]] = {
    "tuned": {},
    "batch-1000": {"reindex_batch_size": 1000},
    "batch-8000": {"reindex_batch_size": 8000},
    "translog": {"copy_settings_overrides": TRANSLOG},
    "slices-6": {"slices": 6},
}


def _run(url: str, state_db: str, values: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    cfg = api.Config(state_db=state_db, engine_url=url, client_options={"request_timeout": 600})
    t0 = time.perf_counter()
    outcome = api.start(cfg, ALIAS, RunOptions(verify=True, **values))
    elapsed = time.perf_counter() - t0
    if outcome.record.state.value != "SWAPPED":
        raise SystemExit(f"tool run ended {outcome.record.state}: {outcome.record.error}")
    return elapsed, outcome.record.plan.get("copy_tuning") or {}


@click.command()
@click.option("--docs", type=int, default=200_000, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--variants", default="tuned,batch-8000", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(docs: int, repeats: int, variants: str, out: str | None) -> None:
    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or "tuned" not in names:
        raise SystemExit(f"variants are {', '.join(VARIANTS)} (tuned among them): {unknown}")
    with bench_engine() as (url, engine):
        if not engine.index_exists(SOURCE) or engine.count(SOURCE) != docs:
            if engine.index_exists(SOURCE):
                engine.delete_index(SOURCE)
            _reset(engine, keep=set())
            create_sample(engine, SOURCE, ALIAS, docs, settings={"index.number_of_replicas": 0})
        _reset(engine, keep={SOURCE})
        rows: list[dict[str, Any]] = []
        chosen: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):
                order = names[i % len(names) :] + names[: i % len(names)]
                times: dict[str, float] = {}
                for name in order:
                    db = f"sqlite:///{tmp}/state-{i}-{name}.db"
                    times[name], tuning = _run(url, db, VARIANTS[name])
                    chosen.setdefault(name, tuning)
                    _reset(engine, keep={SOURCE})
                ratios = {n: times[n] / times["tuned"] for n in names}
                rows.append({"times": times, "ratios": ratios, "order": "/".join(order)})
                shown = "  ".join(f"{n} {times[n]:.2f}s ({ratios[n]:.3f})" for n in order)
                print(f"repeat {i + 1}: {shown}", file=sys.stderr)
        result = {
            "docs": docs,
            "repeats": repeats,
            "engine": engine.info().__dict__,
            "chosen": chosen,
            "median_s": {n: statistics.median(r["times"][n] for r in rows) for n in names},
            "range_s": {
                n: [min(r["times"][n] for r in rows), max(r["times"][n] for r in rows)]
                for n in names
            },
            "median_ratio_to_tuned": {
                n: statistics.median(r["ratios"][n] for r in rows) for n in names
            },
            "rows": rows,
        }
        report(result, out)


if __name__ == "__main__":
    main()
