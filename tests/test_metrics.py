"""--metrics-file on the fake engine: the run's figures written for node_exporter's textfile
collector, read back with prometheus_client's own parser; stored with the run so a resume
keeps writing it; never failing the run."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reindex_fsm import api, metrics, outputs
from reindex_fsm.errors import UsageError
from reindex_fsm.events import Progress, Transition
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, N_DOCS, SOURCE, db_rows
from .test_cli import invoke


def parse(path: Path) -> dict[str, list[Any]]:
    """Every sample of the file, by sample name (prometheus_client's parser)."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def one(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    found = [s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


def state_of(samples: dict[str, list[Any]], run_id: str) -> str:
    on = [s.labels["state"] for s in samples["reindex_fsm_run_state"] if s.value == 1.0]
    assert len(on) == 1
    assert {s.labels["run_id"] for s in samples["reindex_fsm_run_state"]} == {run_id}
    return on[0]


def test_a_swapped_run_writes_its_figures(cfg, fake, tmp_path):
    path = tmp_path / "run.prom"
    rec = api.start(cfg, ALIAS, RunOptions(metrics_file=str(path))).record
    assert rec.state is State.SWAPPED
    samples = parse(path)
    assert state_of(samples, rec.id) == "SWAPPED"
    assert len(samples["reindex_fsm_run_state"]) == len(State)  # every state, 0 or 1
    labels = {"run_id": rec.id, "alias": ALIAS}
    assert one(samples, "reindex_fsm_run_documents_done", **labels) == N_DOCS
    assert one(samples, "reindex_fsm_run_documents_total", **labels) == N_DOCS
    assert one(samples, "reindex_fsm_run_target_documents", **labels) == N_DOCS
    assert one(samples, "reindex_fsm_run_copy_attempts", **labels) == 1
    assert one(samples, "reindex_fsm_run_failed_documents", **labels) == 0
    assert one(samples, "reindex_fsm_run_failed", **labels) == 0
    assert one(samples, "reindex_fsm_run_documents_per_second", **labels) > 0
    assert one(samples, "reindex_fsm_run_duration_seconds", **labels) >= 0
    assert one(samples, "reindex_fsm_run_finished_timestamp_seconds", **labels) > 0
    info = samples["reindex_fsm_run_info"][0].labels
    assert info["source_index"] == SOURCE and info["target_index"] == rec.target_index
    assert info["batch_id"] == ""
    assert not [p for p in os.listdir(tmp_path) if p != "run.prom" and "state.db" not in p]


def test_the_file_follows_the_run_throttled(cfg, fake, tmp_path, monkeypatch):
    """Written at each state change and at most every EVERY_S seconds of progress (the
    fake's clock moves with the polls), the copy's counts rising in between."""
    fake.task_script = TaskScript(docs_per_poll=100)  # 25 polls
    seen: list[tuple[str, float]] = []
    write = metrics.write_run

    def spy(path, record, now, docs_per_s=None):
        write(path, record, now, docs_per_s)
        seen.append((record.state.value, one(parse(Path(path)), "reindex_fsm_run_documents_done")))

    monkeypatch.setattr(metrics, "write_run", spy)
    path = tmp_path / "run.prom"
    api.start(cfg, ALIAS, RunOptions(metrics_file=str(path), poll_max_interval_s=0.5))
    copying = [done for state, done in seen if state == "REINDEXING"]
    assert any(0 < done < N_DOCS for done in copying)
    assert copying == sorted(copying)
    assert len(copying) < 25  # throttled: not one write per poll
    assert seen[-1] == ("SWAPPED", N_DOCS)


def test_throttle_and_completion(tmp_path):
    """RunOutputs alone: progress within EVERY_S is not written, the completion is."""
    now = [0.0]
    written: list[int] = []
    out = outputs.RunOutputs(clock=lambda: now[0])
    out.write = lambda run: written.append(1)  # type: ignore[method-assign]
    run = _record(tmp_path)
    for t, done in ((0.0, 10), (1.0, 20), (4.9, 30), (5.0, 40), (6.0, 50)):
        now[0] = t
        out.emit(run, Progress("copy", "t:1", total=100, created=done, running_time_s=t or 1))
    assert len(written) == 2  # at 0 s and at 5 s
    out.emit(run, Progress("copy", "t:1", total=100, created=100, completed=True))
    out.emit(run, Transition(State.REINDEXING, State.VERIFYING))
    assert len(written) == 4


def _record(tmp_path):
    from reindex_fsm.store import RunRecord

    from .conftest import NOW

    return RunRecord(
        id="r1",
        alias=ALIAS,
        source_index=SOURCE,
        target_index="t",
        state=State.REINDEXING,
        failed_from=None,
        options={"metrics_file": str(tmp_path / "x.prom")},
        plan={},
        engine_url="http://e",
        engine_flavor="opensearch",
        engine_version="2.19",
        task_id=None,
        copy_attempts=1,
        source_count=100,
        target_count=None,
        progress={"total": 100, "created": 40, "failures": 0},
        error=None,
        error_kind=None,
        created_at=NOW,
        updated_at=NOW,
        finished_at=None,
    )


def test_a_failed_run_says_so_and_counts_its_failed_documents(cfg, fake, tmp_path):
    fake.task_script = TaskScript(fail_after_polls=1)
    path = tmp_path / "run.prom"
    rec = api.start(cfg, ALIAS, RunOptions(metrics_file=str(path))).record
    assert rec.state is State.FAILED
    samples = parse(path)
    assert state_of(samples, rec.id) == "FAILED"
    assert one(samples, "reindex_fsm_run_failed") == 1
    assert one(samples, "reindex_fsm_run_failed_documents") >= 1
    assert "reindex_fsm_run_finished_timestamp_seconds" not in samples  # not finished


def test_resume_keeps_writing_the_stored_file_or_a_new_one(cfg, fake, tmp_path):
    fake.task_script = TaskScript(fail_after_polls=1)
    first = tmp_path / "first.prom"
    rec = api.start(cfg, ALIAS, RunOptions(metrics_file=str(first))).record
    assert rec.options["metrics_file"] == str(first)  # stored with the run
    first.unlink()
    fake.task_script = TaskScript()
    second = tmp_path / "second.prom"
    rec = api.resume(cfg, rec.id, metrics_file=str(second)).record
    assert rec.state is State.SWAPPED
    assert state_of(parse(second), rec.id) == "SWAPPED"
    assert not first.exists()
    assert cfg.repo().get(rec.id).options["metrics_file"] == str(second)
    notes = [e.trigger for e in cfg.repo().events(rec.id)]
    assert "metrics_file" in notes


def test_resume_without_the_flag_keeps_the_start_s_file(cfg, fake, tmp_path):
    fake.task_script = TaskScript(fail_after_polls=1)
    path = tmp_path / "run.prom"
    rec = api.start(cfg, ALIAS, RunOptions(metrics_file=str(path))).record
    path.unlink()
    fake.task_script = TaskScript()
    assert api.resume(cfg, rec.id).record.state is State.SWAPPED
    assert state_of(parse(path), rec.id) == "SWAPPED"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("run.txt", "does not end in .prom"),
        ("missing/run.prom", "is not there or not writable"),
    ],
)
def test_a_bad_metrics_path_is_refused_before_anything_is_written(
    cfg, fake, state_db, tmp_path, name, message
):
    before, rows = fake.snapshot(), db_rows(state_db)
    path = str(tmp_path / name)
    with pytest.raises(UsageError, match=message):
        api.start(cfg, ALIAS, RunOptions(metrics_file=path))
    assert fake.snapshot() == before and db_rows(state_db) == rows
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--metrics-file", path)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_folder_as_metrics_file_is_refused(cfg, tmp_path):
    folder = tmp_path / "x.prom"
    folder.mkdir()
    with pytest.raises(UsageError, match="is a folder"):
        api.start(cfg, ALIAS, RunOptions(metrics_file=str(folder)))


def test_resume_refuses_a_bad_path_before_opening_anything(cfg, fake, tmp_path):
    fake.task_script = TaskScript(fail_after_polls=1)
    rec = api.start(cfg, ALIAS, RunOptions()).record
    calls = len(fake.calls)
    with pytest.raises(UsageError, match=r"does not end in \.prom"):
        api.resume(cfg, rec.id, metrics_file=str(tmp_path / "x.txt"))
    assert len(fake.calls) == calls
    assert cfg.repo().get(rec.id).state is State.FAILED


def test_an_unwritable_file_is_one_warning_and_the_run_goes_on(cfg, fake, tmp_path, monkeypatch):
    def full(path, registry):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics, "write_to_textfile", full)
    warnings: list[str] = []
    cfg.warn = warnings.append
    path = tmp_path / "run.prom"
    rec = api.start(cfg, ALIAS, RunOptions(metrics_file=str(path))).record
    assert rec.state is State.SWAPPED
    assert warnings == [
        f"metrics file {path} not written: No space left on device; the run goes on"
    ]


def test_cli_start_metrics_file(cfg, tmp_path):
    path = tmp_path / "run.prom"
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--metrics-file", str(path))
    assert result.exit_code == 0, result.stderr
    assert "reindex_fsm_run_state" in path.read_text()


def test_a_batch_file_holds_each_run_and_the_totals(cfg, fake, tmp_path):
    good = api.start(cfg, ALIAS, RunOptions()).record
    fake.add_index("other-v1", {f"d{i}": {"n": i} for i in range(10)}, aliases={"other": {}})
    fake.task_script = TaskScript(fail_after_polls=0)
    bad = api.start(cfg, "other", RunOptions()).record
    assert (good.state, bad.state) == (State.SWAPPED, State.FAILED)
    runs = [replace(good, batch_id="b1"), replace(bad, batch_id="b1")]
    path = tmp_path / "batch.prom"
    metrics.write_batch(str(path), "b1", "FAILED", runs, cfg.repo().now(), rates={good.id: 9.5})
    samples = parse(path)
    assert {s.labels["run_id"] for s in samples["reindex_fsm_run_info"]} == {good.id, bad.id}
    assert {s.labels["batch_id"] for s in samples["reindex_fsm_run_state"]} == {"b1"}
    assert one(samples, "reindex_fsm_run_documents_per_second", run_id=good.id) == 9.5
    assert one(samples, "reindex_fsm_batch_state", batch_id="b1", state="FAILED") == 1
    assert one(samples, "reindex_fsm_batch_runs", state="SWAPPED") == 1
    assert one(samples, "reindex_fsm_batch_runs", state="FAILED") == 1
    assert one(samples, "reindex_fsm_batch_runs", state="PLANNED") == 0
    done = one(samples, "reindex_fsm_run_documents_done", run_id=good.id) + one(
        samples, "reindex_fsm_run_documents_done", run_id=bad.id
    )
    assert one(samples, "reindex_fsm_batch_documents_done") == done
    assert one(samples, "reindex_fsm_batch_documents_total") == N_DOCS + 10
    assert one(samples, "reindex_fsm_batch_failed_documents") >= 1
    assert one(samples, "reindex_fsm_batch_duration_seconds") >= 0
    assert one(samples, "reindex_fsm_metrics_written_timestamp_seconds") > 0


def test_duration_of_a_finished_run_is_plan_to_end(tmp_path):
    run = _record(tmp_path)
    ended = replace(
        run,
        state=State.SWAPPED,
        finished_at=run.created_at + timedelta(seconds=90),
        updated_at=run.created_at + timedelta(seconds=90),
    )
    path = tmp_path / "r.prom"
    metrics.write_run(str(path), ended, run.created_at + timedelta(hours=5))
    samples = parse(path)
    assert one(samples, "reindex_fsm_run_duration_seconds") == 90
    assert one(samples, "reindex_fsm_run_documents_per_second") == pytest.approx(40 / 90)


def test_a_relative_path_is_stored_absolute(cfg, fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake.task_script = TaskScript(fail_after_polls=1)
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--metrics-file", "run.prom")
    assert result.exit_code != 0
    (rec,) = cfg.repo().list()
    assert rec.options["metrics_file"] == str(tmp_path / "run.prom")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fake.task_script = TaskScript()
    resumed = invoke(cfg, "resume", rec.id, "--metrics-file", "again.prom")
    assert resumed.exit_code == 0, resumed.stderr
    assert cfg.repo().get(rec.id).options["metrics_file"] == str(elsewhere / "again.prom")
    assert state_of(parse(elsewhere / "again.prom"), rec.id) == "SWAPPED"
