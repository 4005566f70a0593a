"""Copy tuning on a real engine: the scroll batch size chosen from the source's primary
store and document count is one the engine accepts, the copy it drives is complete, and
the flag's value reaches the engine as ``source.size`` (the copy's batches show it)."""

from __future__ import annotations

import pytest

from reindex_fsm import api
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.machine import State
from reindex_fsm.steps.copy import tuning

from .conftest import make_config, options

pytestmark = pytest.mark.integration


def test_the_chosen_batch_size_copies_everything(cfg, engine, names, make_source):
    n_docs = make_source(900)
    status = engine.index_status(names.source)
    rec = api.start(cfg, names.alias, options(verify=True, target_index=names.target)).record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.target_count == n_docs
    chosen = rec.plan["copy_tuning"]
    average = tuning.average_doc_bytes(status.primary_store_bytes, n_docs)
    assert chosen["average_doc_bytes"] == pytest.approx(average, rel=0.5)  # store grows
    assert tuning.MIN_BATCH <= chosen["batch_size"] <= tuning.DEFAULT_BATCH
    assert rec.plan["reindex"]["source"]["size"] == chosen["batch_size"]


def test_the_flag_sets_the_engines_batches(tmp_path, engine, engine_url, names, make_source):
    """150 documents in batches of 40, one slice: the finished task counts four batches
    (read at VERIFYING, before the run deletes the task's stored result)."""
    n_docs = make_source(150)
    seen: list[int] = []

    def observe(_point: str) -> None:
        (run,) = cfg.repo().list()
        seen.append(engine.request("GET", f"/_tasks/{run.task_id}")["response"]["batches"])

    cfg = make_config(
        tmp_path, engine_url, crash=lambda: Crashpoints(at="commit.VERIFYING", action=observe)
    )
    run_options = options(verify=True, target_index=names.target, reindex_batch_size=40, slices=1)
    rec = api.start(cfg, names.alias, run_options).record
    assert rec.state is State.SWAPPED, rec.error
    assert rec.target_count == n_docs
    assert seen == [4]
    assert rec.plan["copy_tuning"]["batch_size"] == 40
    assert rec.plan["copy_tuning"]["batch_size_from"] == "--reindex-batch-size"
