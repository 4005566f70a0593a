"""SIGKILL a run while its copy tuning is in force (a tuned scroll batch size, the task
running), and after its task was started but before it was recorded; the resumed run,
in a new process, keeps the plan's batch size and converges like any other case."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reindex_fsm.store import open_store

from .conftest import CaseResult, Source, finish, history, resume_args, run_cli, spawn, start_args

pytestmark = pytest.mark.crash

BATCH = 250  # 3,000 documents in 12 batches, one slice: the task runs for some seconds
TUNED = ["--reindex-batch-size", str(BATCH), "--requests-per-second", "1000", "--slices", "1"]


@pytest.mark.parametrize(
    "point", ["start_copy.engine_done", "checkpoint.progress#2", "commit.REINDEXING"]
)
def test_kill_with_the_tuned_batch_in_force_resumes_with_it(
    point: str, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "tuning"
    db = tmp_path / "state.db"
    args = start_args(clean_source.alias, db, clean_source.url, throttled=False) + TUNED
    first = finish(spawn(args, point))
    assert first.rc == -signal.SIGKILL, (first.rc, first.out, first.err[-1500:])
    (run,) = history(db)
    run_id = run["run_id"]
    crash_result.landed = run["state"]
    planned = open_store(f"sqlite:///{db}").get(run_id).plan["copy_tuning"]
    assert planned["batch_size"] == BATCH
    done = run_cli(resume_args(db, clean_source.url, run_id))
    assert done.rc == 0, f"resume exited {done.rc}: {done.out} {done.err[-1500:]}"
    record = clean_source.assert_converged(db, run_id)
    assert record["plan"]["copy_tuning"] == planned
    assert record["plan"]["reindex"]["source"]["size"] == BATCH
    crash_result.passed = True
