"""Copy tuning the tool chooses at plan time: the _reindex scroll batch size (source.size)
from the source's average document size, stored with the plan (a restarted copy sends the
same), shown by --dry-run and the confirmation, overridden by --reindex-batch-size."""

from __future__ import annotations

import pytest

from reindex_fsm import api, render
from reindex_fsm.errors import UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.steps.copy import tuning
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, N_DOCS, SOURCE


@pytest.mark.parametrize(
    ("average", "window", "expected"),
    [
        (644, 10_000, tuning.DEFAULT_BATCH),  # the bench's sample: the engines' 1,000
        (20_000, 10_000, tuning.BATCH_BYTES // 20_000),  # 20 kB documents: 262, about 5 MiB
        (5 * 1024 * 1024, 10_000, tuning.MIN_BATCH),  # 5 MiB documents: never below 100
        (10, 10_000, tuning.DEFAULT_BATCH),  # tiny ones: larger batches did not pay
        (10, 500, 500),  # at most the source's index.max_result_window
        (10, 50, 50),  # a window under the minimum wins: the engine refuses more
        (None, 10_000, tuning.DEFAULT_BATCH),  # size unknown: the engines' default
    ],
)
def test_the_batch_size_holds_at_most_about_five_mib_within_bounds(average, window, expected):
    assert tuning.batch_size_for(average, window) == expected


def test_the_average_is_primary_store_bytes_per_document():
    assert tuning.average_doc_bytes(128_897_197, 200_000) == 644
    assert tuning.average_doc_bytes(None, 10) is None  # a closed index: unknown
    assert tuning.average_doc_bytes(1000, 0) is None  # an empty source


def test_the_plan_chooses_source_size_from_the_store_and_sends_it(cfg, fake):
    fake.store_bytes[SOURCE] = 20_000 * N_DOCS  # 20,000 bytes per document
    p = api.plan(cfg, ALIAS, RunOptions())
    expected = tuning.BATCH_BYTES // 20_000
    assert p.copy_tuning is not None
    assert p.copy_tuning["batch_size"] == expected
    assert p.copy_tuning["average_doc_bytes"] == 20_000
    assert "20000 bytes per document" in p.copy_tuning["batch_size_from"]
    assert p.reindex["source"] == {"index": SOURCE, "size": expected}
    # the batch size, never a cap on the documents copied
    assert "size" not in p.reindex and "max_docs" not in p.reindex
    copy_step = next(s for s in api.describe(p, RunOptions()) if s["step"] == "copy")
    assert copy_step["tuning"]["batch_size"] == expected
    (line,) = render.tuning_lines(p)
    assert f"_reindex batches of {expected:,} documents" in line
    assert any(x.startswith("tuning:") for x in render.confirmation(p, RunOptions()))


def test_the_run_sends_the_planned_batch_size_on_every_start_of_the_copy(cfg, fake):
    """A copy started again (its task vanished) sends the plan's size, not one chosen anew
    from what the source's store holds by then."""
    fake.store_bytes[SOURCE] = 50_000 * N_DOCS
    planned = api.plan(cfg, ALIAS, RunOptions())
    fake.store_bytes[SOURCE] = 10 * N_DOCS  # would choose 1,000 now
    fake.next_task_scripts = [TaskScript(docs_per_poll=10, vanish_after_polls=1)]
    rec = api.start(cfg, ALIAS, RunOptions(), planned).record
    assert rec.state is State.SWAPPED, rec.error
    sizes = [t.request.batch_size for t in fake.tasks.values()]
    assert len(sizes) == 2 and set(sizes) == {tuning.BATCH_BYTES // 50_000}
    assert rec.plan["copy_tuning"]["batch_size"] == tuning.BATCH_BYTES // 50_000


def test_the_flag_overrides_the_choice(cfg, fake):
    p = api.plan(cfg, ALIAS, RunOptions())
    assert p.copy_tuning["batch_size"] == tuning.DEFAULT_BATCH  # 1,000 bytes per document
    assert "larger batches did not pay" in p.copy_tuning["batch_size_from"]
    assert render.tuning_lines(p) == []  # the engines' default: no confirmation line
    p = api.plan(cfg, ALIAS, RunOptions(reindex_batch_size=250))
    assert p.copy_tuning["batch_size"] == 250
    assert p.copy_tuning["batch_size_from"] == "--reindex-batch-size"
    assert p.reindex["source"]["size"] == 250


def test_a_throttled_copy_keeps_the_engines_batch_size(cfg, fake):
    fake.store_bytes[SOURCE] = 20_000 * N_DOCS  # 262 unthrottled
    p = api.plan(cfg, ALIAS, RunOptions(requests_per_second=500))
    assert p.copy_tuning["batch_size"] == tuning.DEFAULT_BATCH
    assert "throttled" in p.copy_tuning["batch_size_from"]
    unthrottled = api.plan(cfg, ALIAS, RunOptions()).copy_tuning["batch_size"]
    assert unthrottled == tuning.BATCH_BYTES // 20_000


def test_a_batch_size_over_the_sources_result_window_is_refused_before_any_write(cfg, fake):
    fake.indices[SOURCE].settings["index.max_result_window"] = 500
    with pytest.raises(UsageError, match=r"--reindex-batch-size 600 is more than .*\(500\)"):
        api.start(cfg, ALIAS, RunOptions(reindex_batch_size=600))
    assert fake.call_names(mutating_only=True) == []
    assert api.plan(cfg, ALIAS, RunOptions()).copy_tuning["batch_size"] <= 500


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"reindex_batch_size": 0}, "must be at least 1"),
        ({"reindex_batch_size": 10_001}, "must be at most 10000"),
        (
            {"reindex_batch_size": 100, "recompute_embeddings": True},
            "not --recompute-embeddings",
        ),
        ({"reindex_batch_size": 100, "source_url": "http://other:9200"}, "not --source-url"),
    ],
)
def test_the_flag_is_refused_where_it_cannot_apply(values, match):
    with pytest.raises(UsageError, match=match):
        RunOptions(**values).validate()


def test_a_plan_made_before_the_tuning_keeps_the_engines_default():
    assert tuning.batch_size(None) is None
    assert tuning.batch_size({}) is None
    assert tuning.batch_size({"batch_size": 3000}) == 3000
