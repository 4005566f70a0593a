"""A batch's metrics file and notifications: one --metrics-file given to every run is the
batch's (a series per run and the batch's totals), and its end sends one batch event
beside each run's own."""

from __future__ import annotations

from reindex_fsm.batch import BatchSettings, start_batch
from reindex_fsm.machine import State
from reindex_fsm.store.batches import BatchRepository

from .test_batch import ALIASES, bcfg, fleet, items, locked  # noqa: F401  (fixtures)
from .test_metrics import one, parse
from .test_notify import receiver  # noqa: F401  (fixture)


def test_one_metrics_file_for_every_run_is_the_batchs(bcfg, tmp_path):  # noqa: F811
    path = tmp_path / "fleet.prom"
    outcome = start_batch(
        bcfg, items(ALIASES[:3], metrics_file=str(path)), BatchSettings(concurrency=2)
    )
    assert [r.state for r in outcome.runs] == [State.SWAPPED] * 3
    assert all(r.options["metrics_file"] is None for r in outcome.runs)  # not the runs'
    samples = parse(path)
    assert {s.labels["run_id"] for s in samples["reindex_fsm_run_info"]} == {
        r.id for r in outcome.runs
    }
    assert one(samples, "reindex_fsm_batch_state", batch_id=outcome.batch_id, state="SUCCEEDED")
    assert one(samples, "reindex_fsm_batch_runs", state="SWAPPED") == 3
    stored = BatchRepository(bcfg.repo().engine).get(outcome.batch_id)
    assert stored.options["metrics_file"] == str(path)


def test_different_files_stay_the_runs_own(bcfg, tmp_path):  # noqa: F811
    given = [*items(ALIASES[:1], metrics_file=str(tmp_path / "a.prom"))]
    given += items(ALIASES[1:2], metrics_file=str(tmp_path / "b.prom"))
    outcome = start_batch(bcfg, given, BatchSettings())
    assert outcome.exit_code == 0
    for name, run in zip(("a.prom", "b.prom"), outcome.runs, strict=True):
        samples = parse(tmp_path / name)
        assert {s.labels["run_id"] for s in samples["reindex_fsm_run_info"]} == {run.id}
        assert "reindex_fsm_batch_state" not in samples


def test_a_batch_sends_each_runs_event_and_one_of_its_own(bcfg, receiver, tmp_path):  # noqa: F811
    bcfg.notify_url = receiver.hook_url()
    outcome = start_batch(bcfg, items(ALIASES[:2]), BatchSettings(concurrency=2))
    kinds = sorted(e["event"] for e in receiver.events)
    assert kinds == ["batch_ended", "run_ended", "run_ended"]
    (ended,) = [e for e in receiver.events if e["event"] == "batch_ended"]
    assert ended["batch_id"] == outcome.batch_id and ended["state"] == "SUCCEEDED"
