"""The copy strategies behind one protocol: the registry, what a strategy refuses, a
stored plan of the earlier shape resumed, a toy strategy that drives a whole run on its
own module alone, and the one poll helper's backoff."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import Engine, EngineInfo
from reindex_fsm.errors import UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.plan import Plan, RecomputePlan
from reindex_fsm.steps.context import RunContext
from reindex_fsm.steps.copy import registry
from reindex_fsm.steps.copy.base import CopiedFrom, CopyStrategy, Prepared
from reindex_fsm.steps.copy.recompute import RecomputeEmbeddings
from reindex_fsm.steps.copy.reindex import ReindexCopy
from reindex_fsm.steps.poll import Backoff, Waiter
from reindex_fsm.testing.fake import FakeEngine

from .conftest import ALIAS, SOURCE, FakeClock, db_rows, make_config
from .test_recompute import FLOAT, Kill, KillAt, opts, write_jsonl

# -- the registry ------------------------------------------------------------------------


def test_options_choose_the_strategy() -> None:
    assert registry.strategy_for_options(RunOptions()).name == "reindex"
    chosen = registry.strategy_for_options(RunOptions(recompute_embeddings=True))
    assert chosen.name == "recompute"
    assert isinstance(chosen, RecomputeEmbeddings)


def test_the_default_strategy_cannot_be_removed() -> None:
    with pytest.raises(ValueError):
        registry.unregister("reindex")


def test_documents_copied_is_asked_of_each_strategy() -> None:
    assert registry.documents_copied(None) is None
    assert registry.documents_copied({"total": 9}) is None
    assert registry.documents_copied({"created": 5, "updated": 2, "noops": 1}) == 8
    assert registry.documents_copied({"strategy": "recompute", "indexed": 12}) == 12


# -- refuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"pipeline": "p"}, "--pipeline and --script apply to the _reindex copy"),
        ({"script": {"source": "x"}}, "--pipeline and --script apply to the _reindex copy"),
        ({"write_policy": "catch-up", "since_field": "t"}, "catch-up is not supported"),
    ],
)
def test_recompute_refuses_options_it_cannot_honour(given: dict[str, Any], message: str) -> None:
    options = RunOptions(recompute_embeddings=True, **given)
    refused = RecomputeEmbeddings().refuses(options)
    assert isinstance(refused, UsageError) and message in str(refused)
    assert ReindexCopy().refuses(RunOptions(**given)) is None


def test_a_refused_option_stops_the_start_before_anything_is_written(
    cfg: api.Config, fake: FakeEngine, state_db: str
) -> None:
    before, rows = fake.snapshot(), db_rows(state_db)
    with pytest.raises(UsageError, match="apply to the _reindex copy"):
        api.start(cfg, ALIAS, opts(pipeline="p"))
    assert fake.snapshot() == before and db_rows(state_db) == rows
    assert fake.call_names(mutating_only=True) == []


def test_only_a_reindex_copy_can_be_rethrottled() -> None:
    assert ReindexCopy().can_rethrottle
    recompute = RecomputeEmbeddings()
    assert not recompute.can_rethrottle
    assert recompute.flag == "--recompute-embeddings"
    assert recompute.rate_set_by == "--batch-size and --workers"


def test_warnings_name_the_zeros_embedder() -> None:
    options = RunOptions(recompute_embeddings=True, embedder="zeros")
    assert RecomputeEmbeddings().warnings(options) == [
        "the zeros embedder writes all-zero vectors: it is for tests only"
    ]
    assert ReindexCopy().warnings(options) == []


# -- the typed recompute plan and the stored shape ----------------------------------------

# A recompute plan of a JSONL file, as the earlier code stored it (every key it wrote).
OLD_JSONL_PLAN: dict[str, Any] = {
    "source": "jsonl",
    "index": "documents-v1",
    "fields": {"id": "id", "text": "text", "vector": "embedding"},
    "embedder": "hashing:16",
    "dimension": 16,
    "vector_mapping": {"type": "float"},
    "vector_mapping_chosen": "given by --vector-mapping",
    "batch_size": 7,
    "workers": 1,
    "skip_file": None,
    "verify_sample": 50,
    "source_count": 2500,
    "max_line_bytes": 4194304,
    "batch_bytes": 16777216,
    "path": "/data/d.jsonl",
    "size": 1234,
    "mtime_ns": 1700000000000000000,
    "sha256": "ab" * 32,
    "lines": 40,
    "documents": 40,
    "rejected": 0,
    "duplicate_lines": [],
    "first_rejects": [],
    "expected": 40,
}
# The same from the source index: no file keys, no bounds.
OLD_INDEX_KEYS = {
    "source",
    "index",
    "fields",
    "embedder",
    "dimension",
    "vector_mapping",
    "vector_mapping_chosen",
    "batch_size",
    "workers",
    "skip_file",
    "verify_sample",
    "source_count",
    "expected",
}


def test_an_old_recompute_plan_loads_typed_and_stores_the_same_dict() -> None:
    rp = RecomputePlan.from_dict(OLD_JSONL_PLAN)
    assert rp.fields.vector == "embedding" and rp.expected == 40 and rp.path == "/data/d.jsonl"
    assert rp.to_dict() == OLD_JSONL_PLAN
    index_only = {k: v for k, v in OLD_JSONL_PLAN.items() if k in OLD_INDEX_KEYS}
    index_only.update(source="index", expected=None)
    assert RecomputePlan.from_dict(index_only).to_dict() == index_only


def test_new_runs_store_the_shape_old_runs_have(
    cfg: api.Config, fake: FakeEngine, tmp_path: Path
) -> None:
    planned = api.plan(cfg, ALIAS, opts()).to_dict()
    assert set(planned["recompute"]) == OLD_INDEX_KEYS
    assert api.plan(cfg, ALIAS, RunOptions()).to_dict()["recompute"] is None
    path = write_jsonl(tmp_path / "d.jsonl", 10)
    from_file = api.plan(cfg, ALIAS, opts(documents_path=str(path))).to_dict()
    assert set(from_file["recompute"]) == set(OLD_JSONL_PLAN)


def test_a_run_stored_with_an_old_shape_plan_resumes(tmp_path: Path) -> None:
    """A recompute run killed mid-copy whose stored plan is the earlier code's dict (written
    back by hand, key by key) resumes on the fake engine and ends as a clean run."""
    from .conftest import make_cluster

    fake = make_cluster()
    state_db = f"sqlite:///{tmp_path}/state.db"
    killed = make_config(fake, state_db, crash=lambda: KillAt("recompute.indexed", 2))
    with pytest.raises(Kill):
        api.start(killed, ALIAS, opts(batch_size=500, text_field="title"))
    cfg = make_config(fake, state_db)
    (run,) = api.history(cfg)
    repo = cfg.repo()
    record = repo.get(run.id)
    stored = dict(record.plan)
    old = {k: stored["recompute"][k] for k in OLD_INDEX_KEYS}  # exactly the old keys
    assert old["source"] == "index" and old["expected"] is None
    repo.checkpoint(run.id, record.state, plan={**stored, "recompute": old})
    out = api.resume(cfg, run.id)
    assert out.record.state is State.SWAPPED, out.record.error
    target = fake.indices[out.record.target_index].docs
    assert set(target) == set(fake.indices[SOURCE].docs)
    assert all(len(doc["embedding"]) == old["dimension"] for doc in target.values())
    assert out.record.progress["indexed"] == len(target)


def test_a_plan_of_the_earlier_code_loads() -> None:
    p = Plan(
        run_id="r",
        alias="a",
        source_index="s",
        target_index="t",
        source_count=40,
        settings={},
        mappings={},
        aliases={},
        alias_actions=[],
        reindex={},
        engine={},
        planned_at="2026-11-25T03:00:00+00:00",
        recompute=RecomputePlan.from_dict(OLD_JSONL_PLAN),
    )
    stored = p.to_dict()
    assert stored["recompute"] == OLD_JSONL_PLAN
    assert Plan.from_dict(stored) == p
    assert registry.strategy_for(p).name == "recompute"
    assert registry.strategy_for(Plan.from_dict({**stored, "recompute": None})).name == "reindex"


# -- a new strategy: its module and one registry line ---------------------------------------


class ScanCopy:
    """A toy third strategy: the run reads the source with a scroll and bulk-indexes every
    document itself. It lives here only; nothing in the runner or the steps knows it."""

    name = "scan-copy"
    flag = "--scan-copy"
    can_rethrottle = False
    rate_set_by = "nothing"
    copies_again_by_reindex = False

    def __init__(self) -> None:
        self.started = self.waited = 0

    def chosen_by(self, options: RunOptions) -> bool:
        return True  # while registered, every run copies with it

    def planned(self, p: Plan) -> bool:
        return True

    def refuses(self, options: RunOptions) -> UsageError | None:
        return UsageError("--scan-copy cannot run a pipeline") if options.pipeline else None

    def warnings(self, options: RunOptions) -> list[str]:
        return []

    def input_file(self, options: RunOptions) -> str | None:
        return None

    def prepare(
        self,
        engine: Engine,
        info: EngineInfo,
        options: RunOptions,
        source_index: str,
        source_count: int,
        source_mappings: dict[str, Any],
    ) -> Prepared:
        return Prepared(settings={"index.max_result_window": "20000"})

    def describe(self, p: Plan) -> dict[str, Any]:
        return {"step": "copy", "strategy": self.name, "from": p.source_index}

    def start(self, ctx: RunContext) -> dict[str, Any]:
        self.started += 1
        return {"progress": {"strategy": self.name, "indexed": 0}}

    def wait(self, ctx: RunContext) -> dict[str, Any]:
        self.waited += 1
        p = ctx.plan
        hits = list(ctx.engine.scan(p.source_index, {"query": {"match_all": {}}}))
        ctx.engine.bulk(
            {
                "_op_type": "index",
                "_index": p.target_index,
                "_id": h["_id"],
                "_source": h["_source"],
            }
            for h in hits
        )
        return {"progress": {"strategy": self.name, "indexed": len(hits)}}

    def source_index_count(self, p: Plan) -> int:
        return p.source_count

    def input_path(self, p: Plan) -> str | None:
        return None

    def verify_check(self, p: Plan) -> str | None:
        return f"target count == {p.source_count} (scanned)"

    def verify_checks(
        self, ctx: RunContext, target_count: int, detail: dict[str, Any]
    ) -> list[str]:
        detail["scanned"] = True
        expected = detail["source_count"]
        return [] if target_count == expected else [f"{target_count} != {expected}"]

    def copied_from(self, p: Plan) -> CopiedFrom:
        return CopiedFrom()

    def copied(self, progress: dict[str, Any]) -> int | None:
        return progress.get("indexed") if progress.get("strategy") == self.name else None


@pytest.fixture
def scan_copy() -> Iterator[ScanCopy]:
    strategy = ScanCopy()
    registry.register(strategy)  # the one registry line a new strategy adds
    try:
        yield strategy
    finally:
        registry.unregister(strategy.name)


def test_a_new_strategy_drives_a_whole_run_through_the_protocol(
    cfg: api.Config, fake: FakeEngine, scan_copy: ScanCopy
) -> None:
    strategy: CopyStrategy = scan_copy  # it satisfies the protocol (checked by mypy too)
    described = api.describe(api.plan(cfg, ALIAS, RunOptions()), RunOptions())
    assert {"step": "copy", "strategy": "scan-copy", "from": SOURCE} in described
    assert described[3]["check"] == f"target count == {len(fake.indices[SOURCE].docs)} (scanned)"
    out = api.start(cfg, ALIAS, RunOptions(verify=True))
    rec = out.record
    assert rec.state is State.SWAPPED, rec.error
    assert (scan_copy.started, scan_copy.waited) == (1, 1)
    assert fake.indices[rec.target_index].docs == fake.indices[SOURCE].docs
    assert fake.indices[rec.target_index].settings["index.max_result_window"] == "20000"
    names = fake.call_names()
    assert "start_reindex" not in names and "bulk" in names and "rethrottle" not in names
    assert registry.documents_copied(rec.progress) == len(fake.indices[SOURCE].docs)
    with pytest.raises(UsageError, match="--scan-copy cannot run a pipeline"):
        api.start(cfg, ALIAS, RunOptions(pipeline="p"))
    assert strategy.name == "scan-copy"


def test_without_the_registry_line_the_default_copies_again(
    cfg: api.Config, fake: FakeEngine
) -> None:
    assert "scan-copy" not in registry.STRATEGIES
    assert registry.strategy_for_options(RunOptions()).name == "reindex"
    assert registry.strategy_for_options(opts(vector_mapping=FLOAT)).name == "recompute"


# -- the poll helper -------------------------------------------------------------------------


def test_pauses_grow_by_half_up_to_the_cap_without_real_time() -> None:
    clock = FakeClock()
    waiter = Waiter(clock, clock.sleep, Backoff(1.0, 3.0))
    for _ in range(5):
        assert waiter.pause()
    assert clock.sleeps == [1.0, 1.5, 2.25, 3.0, 3.0]
    waiter.reset()
    waiter.pause()
    assert clock.sleeps[-1] == 1.0


def test_a_deadline_stops_the_pauses() -> None:
    clock = FakeClock()
    clock.t = 100.0
    waiter = Waiter(clock, clock.sleep, Backoff(2.0, 2.0), timeout_s=5.0)
    paused = [waiter.pause() for _ in range(5)]
    assert paused == [True, True, True, False, False]  # at 106 the deadline (105) has passed
    assert clock.sleeps == [2.0, 2.0, 2.0] and waiter.expired()


def test_backoff_from_the_run_options_and_a_fixed_one() -> None:
    options = RunOptions(poll_interval_s=0.5, poll_max_interval_s=4.0)
    assert Backoff.of(options) == Backoff(0.5, 4.0, 1.5)
    fixed = Backoff.fixed(2.0)
    assert fixed.after(2.0) == 2.0
    assert Waiter(FakeClock(), FakeClock().sleep, fixed).deadline is None
