"""Batches on the fake engine: the API (reindex_fsm.batch), its store, concurrency, the
slices budget, the failure policies, resume and abort of a batch, and a crash between the
batch's writes and its runs'."""

from __future__ import annotations

import _thread
import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from reindex_fsm import api
from reindex_fsm.batch import (
    BatchItem,
    BatchSettings,
    abort_batch,
    is_batch_id,
    list_batches,
    new_batch_id,
    resolve_aliases,
    resume_batch,
    show_batch,
    start_batch,
)
from reindex_fsm.errors import BatchFinished, BatchNotFound, ExitCode, LockHeld, UsageError
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.store.batches import BatchRepository
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import db_rows, make_config

ALIASES = [f"logs-{i:02d}" for i in range(6)]


class Serialized:
    """The fake, one call at a time: it is a test double made for one thread, and the
    batch drives runs from several."""

    def __init__(self, fake: FakeEngine) -> None:
        self._fake = fake
        self._lock = threading.RLock()
        self.barrier: threading.Barrier | None = None  # copies that must start together
        self.before_start: Any = None  # called before each copy starts, outside the lock
        self.slices_running: dict[str, int] = {}
        self.most_slices = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fake, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "start_reindex" and self.barrier is not None:
                self.barrier.wait()  # outside the lock: the copies start together
            if name == "start_reindex" and self.before_start is not None:
                self.before_start()
            with self._lock:
                result = attr(*args, **kwargs)
                if name == "start_reindex":
                    request = args[0]
                    shards = int(
                        self._fake.indices[request.source].settings["index.number_of_shards"]
                    )
                    slices = shards if request.slices == "auto" else int(request.slices)
                    self.slices_running[result] = slices
                    self.most_slices = max(self.most_slices, sum(self.slices_running.values()))
                if name == "get_task" and result is not None and result.completed:
                    self.slices_running.pop(args[0], None)
                return result

        return call


def cluster(n: int = len(ALIASES), shards: int = 2, docs: int = 30) -> FakeEngine:
    fake = FakeEngine()
    for i in range(n):
        fake.add_index(
            f"logs-{i:02d}-v1",
            {f"d{j}": {"n": j, "alias": i} for j in range(docs)},
            settings={"index.number_of_shards": str(shards), "index.number_of_replicas": "0"},
            aliases={f"logs-{i:02d}": {}},
        )
    fake.add_index("other-v1", {"a": {"x": 1}}, aliases={"other": {}})
    fake.task_script = TaskScript(docs_per_poll=10)
    return fake


@pytest.fixture
def fleet() -> FakeEngine:
    return cluster()


@pytest.fixture
def locked(fleet: FakeEngine) -> Serialized:
    return Serialized(fleet)


@pytest.fixture
def bcfg(locked: Serialized, state_db: str) -> api.Config:
    cfg = make_config(locked._fake, state_db)
    # a short real sleep per poll: the runs of a batch overlap as on a real cluster
    return replace(
        cfg, engine_factory=lambda url, kind, **kw: locked, sleep=lambda s: time.sleep(0.005)
    )


def items(aliases: list[str], **options: Any) -> list[BatchItem]:
    return [BatchItem(a, RunOptions(**options)) for a in aliases]


def swapped_exactly(fake: FakeEngine, run: Any) -> bool:
    return fake.indices[run.target_index].docs == fake.indices[run.source_index].docs


# -- planning ------------------------------------------------------------------------------


def test_resolve_aliases_patterns_and_order(fleet):
    assert resolve_aliases(fleet, ["other"], ["logs-0*"]) == ["other", *ALIASES]
    in_order = resolve_aliases(fleet, [], ["logs-01*", "logs-0*"])
    assert in_order == ["logs-01", "logs-00", *ALIASES[2:]]
    assert resolve_aliases(fleet, ["logs-03"], ["logs-*"])[0] == "logs-03"
    assert resolve_aliases(fleet, ["logs-03"], ["logs-*"]).count("logs-03") == 1


@pytest.mark.parametrize(
    ("aliases", "patterns", "message"),
    [
        (["other", "other"], [], "alias 'other' is given twice"),
        ([], ["nothing-*"], "no alias matches --alias-pattern 'nothing-*'"),
        ([], ["logs-*,other"], "is not one alias pattern"),
        ([], ["logs-0[12]"], "is not one alias pattern"),
        (["logs-*"], [], "is not an alias name"),
    ],
)
def test_resolve_aliases_refuses(fleet, aliases, patterns, message):
    with pytest.raises(UsageError, match=message.replace("*", r"\*").replace("[", r"\[")):
        resolve_aliases(fleet, aliases, patterns)


def test_batch_ids_are_not_run_ids():
    assert is_batch_id(new_batch_id())
    assert not is_batch_id(api.new_run_id())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (BatchSettings(concurrency=0), "--concurrency 0 must be at least 1"),
        (BatchSettings(slices_budget=0), "--slices-budget 0 must be at least 1"),
        (BatchSettings(on_failure="retry"), "--on-failure 'retry' is not one of"),
    ],
)
def test_bad_settings_write_nothing(bcfg, state_db, settings, message):
    before = db_rows(state_db)
    with pytest.raises(UsageError, match=message):
        start_batch(bcfg, items(ALIASES[:2]), settings)
    assert db_rows(state_db) == before


@pytest.mark.parametrize(
    ("aliases", "error"),
    [(["logs-00", "logs-00"], "in the batch twice"), (["logs-00", "nope"], "'nope' does not")],
)
def test_bad_items_write_nothing(bcfg, state_db, fleet, aliases, error):
    before = db_rows(state_db)
    with pytest.raises(UsageError, match=error):
        start_batch(bcfg, items(aliases), BatchSettings())
    assert db_rows(state_db) == before
    assert not BatchRepository(bcfg.repo().engine).list()
    assert not [i for i in fleet.indices if i.startswith("logs-00-2")]  # no target made


def test_one_target_name_for_several_runs_is_refused(bcfg, state_db):
    before = db_rows(state_db)
    with pytest.raises(UsageError, match="--target-index shared would be the target of several"):
        start_batch(bcfg, items(ALIASES[:2], target_index="shared"), BatchSettings())
    assert db_rows(state_db) == before


def test_a_batch_from_another_cluster_is_refused(bcfg, state_db):
    before = db_rows(state_db)
    with pytest.raises(UsageError, match=r"a batch cannot copy from another cluster"):
        start_batch(bcfg, items(ALIASES[:2], source_url="http://src:9200"), BatchSettings())
    assert db_rows(state_db) == before


def test_unknown_batch_id(bcfg):
    with pytest.raises(BatchNotFound, match="no batch with ID 'batch-000000000000'"):
        resume_batch(bcfg, "batch-000000000000")
    with pytest.raises(BatchNotFound):
        abort_batch(bcfg, "batch-000000000000")


# -- driving -------------------------------------------------------------------------------


def test_batch_swaps_every_alias_concurrently(bcfg, fleet, locked):
    locked.barrier = threading.Barrier(3, timeout=30)  # 6 runs: two waves of 3 together
    outcome = start_batch(bcfg, items(ALIASES), BatchSettings(concurrency=3))
    assert outcome.exit_code == ExitCode.OK
    assert locked.most_slices == 6  # three copies at once, 2 slices (auto, 2 shards) each
    assert outcome.batch.state == "SUCCEEDED" and outcome.swapped == outcome.total == 6
    assert sorted(r.alias for r in outcome.runs) == ALIASES
    for run in outcome.runs:
        assert run.state is State.SWAPPED and run.batch_id == outcome.batch_id
        assert swapped_exactly(fleet, run)
        assert list(fleet.get_alias(run.alias)) == [run.target_index]
    stored = show_batch(bcfg, outcome.batch_id)
    assert [i["run_id"] for i in stored.batch.items] == [
        next(r.id for r in outcome.runs if r.alias == a) for a in ALIASES
    ]
    assert stored.batch.concurrency == 3 and stored.batch.finished_at is not None
    assert [b.batch_id for b in list_batches(bcfg)] == [outcome.batch_id]
    # each run stays an ordinary run: its own history, shown on its own
    record, events = api.show(bcfg, outcome.runs[0].id)
    assert record.batch_id == outcome.batch_id and events[-1].to_state == "SWAPPED"


def test_slices_budget_bounds_the_slices_at_once(bcfg, fleet, locked):
    # 6 aliases, 2 shards each (auto = 2 slices), 3 at once, a budget of 3 slices
    outcome = start_batch(bcfg, items(ALIASES), BatchSettings(concurrency=3, slices_budget=3))
    assert outcome.exit_code == ExitCode.OK
    assert locked.most_slices <= 3
    used = [RunOptions.from_dict(r.options).slices for r in outcome.runs]
    assert set(used) == {"auto", 1}  # auto where 2 were left, 1 where only 1 was


def test_on_failure_continue_reports_the_failed_one(bcfg, fleet, locked):
    bad = "logs-02-v1"
    real = fleet.start_reindex

    def start_reindex(request):
        fleet.task_script = TaskScript(
            docs_per_poll=10, fail_after_polls=0 if request.source == bad else None
        )
        return real(request)

    fleet.start_reindex = start_reindex
    outcome = start_batch(bcfg, items(ALIASES), BatchSettings(concurrency=2, on_failure="continue"))
    assert outcome.exit_code == ExitCode.BATCH_INCOMPLETE
    assert outcome.swapped == 5 and outcome.total == 6
    assert outcome.batch.state == "FAILED"
    assert "5/6 runs SWAPPED; not: logs-02 (FAILED)" in (outcome.batch.error or "")
    failed = next(r for r in outcome.runs if r.alias == "logs-02")
    assert failed.state is State.FAILED
    # the failed run is resumed with the batch, and now succeeds
    fleet.start_reindex = real
    fleet.task_script = TaskScript(docs_per_poll=10)
    again = resume_batch(bcfg, outcome.batch_id)
    assert again.exit_code == ExitCode.OK and again.swapped == 6
    assert again.batch.state == "SUCCEEDED"
    with pytest.raises(BatchFinished):
        resume_batch(bcfg, outcome.batch_id)


def test_on_failure_stop_makes_no_new_run(bcfg, fleet):
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    outcome = start_batch(bcfg, items(ALIASES), BatchSettings(concurrency=1))
    assert outcome.exit_code == ExitCode.BATCH_INCOMPLETE
    assert [r.alias for r in outcome.runs] == ["logs-00"]  # the first failed: no other made
    data = outcome.as_dict()
    assert [r["run_id"] is None for r in data["runs"]] == [False] + [True] * 5
    assert data["swapped"] == 0 and data["total"] == 6
    fleet.task_script = TaskScript(docs_per_poll=10)
    again = resume_batch(bcfg, outcome.batch_id)  # resumes the failed one, makes the rest
    assert again.exit_code == ExitCode.OK and again.swapped == 6


def test_a_run_that_cannot_be_made_is_an_item_error(bcfg, fleet):
    cfg_runs = api.plan(bcfg, "logs-01", RunOptions())  # planned fine now ...
    assert cfg_runs.alias == "logs-01"
    real = fleet.get_alias
    calls = {"n": 0}

    def get_alias(name):
        if name == "logs-01":
            calls["n"] += 1
            if calls["n"] > 2:  # ... gone once the batch makes its run
                return {}
        return real(name)

    fleet.get_alias = get_alias
    outcome = start_batch(
        bcfg, items(["logs-00", "logs-01", "logs-02"]), BatchSettings(on_failure="continue")
    )
    assert outcome.swapped == 2 and outcome.exit_code == ExitCode.BATCH_INCOMPLETE
    item = next(i for i in outcome.batch.items if i["alias"] == "logs-01")
    assert item["run_id"] is None and "does not exist" in item["error"]


def test_abort_batch_aborts_unfinished_runs_and_makes_no_more(bcfg, fleet):
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    outcome = start_batch(bcfg, items(ALIASES[:3]), BatchSettings())
    assert [r.state for r in outcome.runs] == [State.FAILED]
    aborted = abort_batch(bcfg, outcome.batch_id)
    assert aborted.exit_code == ExitCode.OK and aborted.batch.state == "ABORTED"
    assert [r.state for r in aborted.runs] == [State.ROLLED_BACK]
    assert not fleet.index_exists(outcome.runs[0].target_index)
    with pytest.raises(BatchFinished):
        resume_batch(bcfg, outcome.batch_id)
    with pytest.raises(BatchFinished):
        abort_batch(bcfg, outcome.batch_id)


def test_resume_finds_a_run_made_just_before_a_crash(bcfg, fleet):
    """The batch's item lacks the run ID (killed between the run's commit and the
    batch's): the run, stored with its batch ID, is found and resumed, not made twice."""
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    outcome = start_batch(bcfg, items(ALIASES[:2]), BatchSettings())
    repo = BatchRepository(bcfg.repo().engine)
    repo.set_item(outcome.batch_id, "logs-00", run_id=None)
    fleet.task_script = TaskScript(docs_per_poll=10)
    again = resume_batch(bcfg, outcome.batch_id)
    assert again.exit_code == ExitCode.OK
    assert len(again.runs) == 2 and outcome.runs[0].id in {r.id for r in again.runs}
    assert repo.get(outcome.batch_id).items[0]["run_id"] == outcome.runs[0].id


def test_a_locked_alias_refuses_the_batch_before_anything_is_written(bcfg, fleet, state_db):
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    api.start(bcfg, "logs-01", RunOptions())  # FAILED: holds its alias
    before = db_rows(state_db)
    with pytest.raises(LockHeld):
        start_batch(bcfg, items(ALIASES[:3]), BatchSettings())
    assert db_rows(state_db) == before


def test_an_item_whose_run_was_never_stored_is_made_with_its_stored_id(bcfg, fleet):
    """Killed after the item's run ID was stored, before its run was: the run made on
    resume takes that ID (so a lease taken for it by the dead process is its own)."""
    fleet.task_script = TaskScript(docs_per_poll=10, fail_after_polls=0)
    outcome = start_batch(bcfg, items(ALIASES[:2]), BatchSettings())  # stops at the first
    repo = BatchRepository(bcfg.repo().engine)
    repo.set_item(outcome.batch_id, "logs-01", run_id="0123456789ab")
    fleet.task_script = TaskScript(docs_per_poll=10)
    again = resume_batch(bcfg, outcome.batch_id)
    assert again.exit_code == ExitCode.OK
    assert {r.id for r in again.runs if r.alias == "logs-01"} == {"0123456789ab"}


def test_an_interrupt_stops_the_batch_making_runs_and_names_it(bcfg, locked):
    """Ctrl-C (or SIGTERM) reaches the main thread: the batch makes no new run, and the
    KeyboardInterrupt carries the batch's ID for the line the CLI prints."""
    sent = []

    def before_start() -> None:
        if not sent:
            sent.append(True)
            _thread.interrupt_main()
        # every copy starts after the main thread saw the interrupt (it looks every 0.2 s),
        # so no worker makes another run before the batch is stopped; outside the fake's
        # lock, so the runs' lease renewals go on meanwhile
        time.sleep(0.6)

    locked.before_start = before_start
    with pytest.raises(KeyboardInterrupt) as caught:
        start_batch(bcfg, items(ALIASES), BatchSettings(concurrency=2))
    batch_id = caught.value.batch_id  # type: ignore[attr-defined]
    for worker in [t for t in threading.enumerate() if t.name.startswith("batch-worker-")]:
        worker.join(30)  # the runs under way go on to their end (in a process: killed)
    made = BatchRepository(bcfg.repo().engine).runs(batch_id)
    assert 1 <= len(made) <= 3 < len(ALIASES)  # under way then (2), perhaps one starting
    locked.before_start = None
    again = resume_batch(bcfg, batch_id)
    why = (again.batch.error, [(i["alias"], i.get("error")) for i in again.batch.items])
    assert again.exit_code == ExitCode.OK and again.swapped == len(ALIASES), why


def test_a_batch_paused_at_the_gate_is_no_failure_and_resumes_after_the_swaps(bcfg, fleet):
    """--pause-before-swap in a batch: every run waits at the gate (VERIFIED), none counts
    as a failure (on-failure stop makes them all), the batch is PAUSED (exit 16); once each
    run is swapped, resume BATCH_ID records the batch SUCCEEDED."""
    from reindex_fsm import gate

    outcome = start_batch(
        bcfg, items(ALIASES[:4], pause_before_swap=True), BatchSettings(concurrency=2)
    )
    assert [r.state for r in outcome.runs] == [State.VERIFIED] * 4
    assert outcome.batch.state == "PAUSED" and outcome.exit_code is ExitCode.PAUSED
    assert "at the gate: " + ", ".join(ALIASES[:4]) in (outcome.batch.error or "")
    for run in outcome.runs:
        assert set(fleet.get_alias(run.alias)) == {run.source_index}  # the alias untouched
        assert gate.swap(bcfg, run.id).record.state is State.SWAPPED
    again = resume_batch(bcfg, outcome.batch_id)
    assert again.batch.state == "SUCCEEDED" and again.exit_code is ExitCode.OK
    assert all(swapped_exactly(fleet, r) for r in again.runs)
