"""SIGKILL `reindex-fsm start` at many points, resume it in a new process, check convergence.

Kinds of case (the summary at the end of the session counts them):

* named: each crash point an uninterrupted (unthrottled) run passes, by name, so every state
  and the gap between every engine call and its checkpoint (``*.engine_done``) or after every
  commit (``commit.*``) is covered. ``test_named_points_are_those_of_an_uninterrupted_run``
  checks the list against a run recorded with a Python-level ``Crashpoints`` recorder.
* progress: the K-th ``checkpoint.progress`` of a throttled copy (``#1`` is the intent
  ``copy_attempts + 1`` stored before ``_reindex``, the later ones the task's progress).
* throttled-named: points around the copy while the task is still running in the engine
  (so that resume has to adopt it, or wait for it).
* random-copy: the test SIGKILLs the (throttled) process a seeded random delay after the
  run entered REINDEXING; random-run: a seeded random delay after the process started (may
  be before the run was stored: then nothing must have been written).
* double: start is killed at one point, the first resume at another, a second resume ends it.

Every case ends SWAPPED with exactly the source's documents (IDs and _source hashes), every
alias of the source on the target alone, no other index of the run and no task of it
running, the copy-time settings restored, no write block left on the source and the alias
lock released. ``test_kill_then_abort`` kills a run while the write block and the copy-time
settings are in force and aborts it: the source as before, writable.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    TERMINAL_STATES,
    CaseResult,
    Recording,
    Source,
    db_state,
    finish,
    history,
    resume_args,
    run_cli,
    sigkill,
    spawn,
    start_args,
    wait_for_state,
)

pytestmark = pytest.mark.crash

NAMED = [
    "commit.PLANNED",
    "create_target.engine_done",
    "commit.TARGET_CREATED",
    "checkpoint.write_block",  # the block recorded, not yet on the source
    "write_policy.blocked",  # writes to the source refused from here to the swap
    "checkpoint.progress#1",  # copy_attempts stored, _reindex not sent yet
    "start_copy.engine_done",
    "commit.REINDEXING",
    "checkpoint.progress#2",  # first progress of the running task
    "commit.VERIFYING",
    "verify.settings_restored",
    "swap.recorded",  # the target's marks stored for undo, the alias not moved yet
    "swap.engine_done",
    "write_policy.released",  # swapped, source writable again, not yet recorded
    "commit.SWAPPED",
]
N_PROGRESS = 4  # checkpoint.progress#1..#4 of the throttled copy
THROTTLED_NAMED = ["start_copy.engine_done", "commit.REINDEXING", "commit.VERIFYING"]
N_RANDOM_COPY = 10
# The throttled copy (3 batches of 1,000 at 1,000 docs/s: the engine's throttle waits about
# a second after each of the first two) keeps the run in REINDEXING about 2 s: the run polls
# by the task's ETA, so it leaves REINDEXING when the task ends (no backoff tail after it).
COPY_WINDOW_S = 2.0
N_RANDOM_RUN = 4
# After the (throttled) process started, its start-up included; the whole process takes
# about 4 s here: a kill later than that would find it ended.
RUN_WINDOW_S = (0.2, 3.4)
DOUBLE = [  # (start killed at, throttled, first resume killed at)
    ("checkpoint.progress#2", True, "commit.VERIFYING"),
    ("start_copy.engine_done", True, "commit.REINDEXING"),
    ("commit.TARGET_CREATED", False, "checkpoint.progress#1"),
    # swapped, unrecorded: the resume skips verification (it passed before the swap), records
    # the swap, lifts the block, and is killed there; the next resume ends it
    ("swap.engine_done", False, "write_policy.released"),
]

Killer = Callable[[subprocess.Popen[str], Path], None]


def occurrences(seen: list[str]) -> list[str]:
    """``name#k`` for the k-th occurrence of each point."""
    counts: dict[str, int] = {}
    out = []
    for name in seen:
        counts[name] = counts.get(name, 0) + 1
        out.append(f"{name}#{counts[name]}")
    return out


def canonical(point: str) -> str:
    return point if "#" in point else f"{point}#1"


def crash_and_resume(
    src: Source,
    tmp_path: Path,
    result: CaseResult,
    *,
    crash_at: str | None = None,
    throttled: bool = False,
    kill: Killer | None = None,
    resume_crash_at: str | None = None,
) -> dict[str, Any] | None:
    """Start (killed by ``crash_at`` or by ``kill``), optionally a resume killed at
    ``resume_crash_at``, then resume to the end; check the run converged."""
    db = tmp_path / "state.db"
    proc = spawn(start_args(src.alias, db, src.url, throttled), crash_at)
    if kill is not None:
        try:
            kill(proc, db)
        finally:
            sigkill(proc)
    first = finish(proc)
    assert first.rc == -signal.SIGKILL, (
        f"start was not killed (exit {first.rc}): {first.out} {first.err[-1500:]}"
    )

    runs = history(db)
    if not runs:  # killed before the run was stored: nothing may have been written
        result.landed = "-"
        src.assert_untouched()
        return None
    (run,) = runs
    run_id, state = run["run_id"], run["state"]
    result.landed = state

    if resume_crash_at is not None and state not in TERMINAL_STATES:
        second = run_cli(resume_args(db, src.url, run_id), resume_crash_at)
        assert second.rc == -signal.SIGKILL, (
            f"resume was not killed at {resume_crash_at} (exit {second.rc}): {second.out}"
        )
        state = db_state(db)
        result.landed += f">{state}"

    done = run_cli(resume_args(db, src.url, run_id))
    if state in TERMINAL_STATES:  # killed after the last commit: nothing left to resume
        assert done.rc == 2, (done.rc, done.out, done.err[-1500:])
        assert "already finished" in done.json()["error"]
    else:
        assert done.rc == 0, f"resume exited {done.rc}: {done.out} {done.err[-1500:]}"
        assert done.json()["state"] == "SWAPPED", done.out
    return src.assert_converged(db, run_id)


def test_named_points_are_those_of_an_uninterrupted_run(recording: Recording) -> None:
    expected = {canonical(p) for p in NAMED}
    seen = occurrences(recording.plain)
    # Every point of the recorded run is a case, but for the later progress checkpoints,
    # whose number depends on timing: the throttled "progress" cases take them by number.
    assert {p for p in seen if not p.startswith("checkpoint.progress#") or p in expected} == (
        expected
    ), recording.plain
    assert set(recording.throttled) == set(recording.plain), recording.throttled
    assert recording.throttled.count("checkpoint.progress") >= N_PROGRESS, recording.throttled


@pytest.mark.parametrize("point", NAMED)
def test_named_point(
    point: str, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "named"
    crash_and_resume(clean_source, tmp_path, crash_result, crash_at=point)
    crash_result.passed = True


@pytest.mark.parametrize(
    "point", [f"checkpoint.progress#{k}" for k in range(1, N_PROGRESS + 1)] + THROTTLED_NAMED
)
def test_throttled_point(
    point: str, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "progress" if point.startswith("checkpoint.progress") else "throttled-named"
    crash_and_resume(clean_source, tmp_path, crash_result, crash_at=point, throttled=True)
    crash_result.passed = True


@pytest.mark.parametrize("seed", range(N_RANDOM_COPY))
def test_random_kill_during_copy(
    seed: int, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "random-copy"
    # Stratified: case i is killed in the i-th tenth of the copy window, at a seeded spot.
    delay = (seed + random.Random(7919 + seed).random()) * COPY_WINDOW_S / N_RANDOM_COPY
    crash_result.case += f" ({delay:.2f}s into REINDEXING)"

    def kill(proc: subprocess.Popen[str], db: Path) -> None:
        wait_for_state(proc, db, "REINDEXING")
        time.sleep(delay)

    crash_and_resume(clean_source, tmp_path, crash_result, throttled=True, kill=kill)
    crash_result.passed = True


@pytest.mark.parametrize("seed", range(N_RANDOM_RUN))
def test_random_kill_anywhere(
    seed: int, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "random-run"
    lo, hi = RUN_WINDOW_S
    delay = lo + (seed + random.Random(104729 + seed).random()) * (hi - lo) / N_RANDOM_RUN
    crash_result.case += f" ({delay:.2f}s after spawn)"

    def kill(proc: subprocess.Popen[str], db: Path) -> None:
        time.sleep(delay)

    crash_and_resume(clean_source, tmp_path, crash_result, throttled=True, kill=kill)
    crash_result.passed = True


@pytest.mark.parametrize(("point", "throttled", "resume_point"), DOUBLE)
def test_double_crash(
    point: str,
    throttled: bool,
    resume_point: str,
    clean_source: Source,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = "double"
    crash_and_resume(
        clean_source,
        tmp_path,
        crash_result,
        crash_at=point,
        throttled=throttled,
        resume_crash_at=resume_point,
    )
    crash_result.passed = True


ABORT_AFTER = [  # (killed at, throttled): the block on, the target tuned, in every case
    ("write_policy.blocked", False),
    ("checkpoint.progress#2", True),
    ("commit.VERIFYING", False),
    ("verify.settings_restored", False),
]


@pytest.mark.parametrize(("point", "throttled"), ABORT_AFTER)
def test_kill_then_abort(
    point: str, throttled: bool, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "abort"
    db = tmp_path / "state.db"
    first = finish(spawn(start_args(clean_source.alias, db, clean_source.url, throttled), point))
    assert first.rc == -signal.SIGKILL, (first.rc, first.out, first.err[-1500:])
    (run,) = history(db)
    crash_result.landed = run["state"]
    assert clean_source.write_blocked(), "the kill came while the block was on"
    args = ["--json", "--state-db", str(db), "--engine-url", clean_source.url]
    aborted = run_cli(["abort", run["run_id"], *args])
    assert aborted.rc == 0, (aborted.rc, aborted.out, aborted.err[-1500:])
    assert aborted.json()["state"] == "ROLLED_BACK"
    clean_source.assert_untouched()
    crash_result.passed = True
