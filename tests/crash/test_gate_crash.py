"""SIGKILL around the gate before the swap (``start --pause-before-swap``, then ``swap``) on
a real engine, then end the run from there in new processes, each way an operator can:

* a ``start`` killed on its way to the gate: ``resume`` (exit 16, VERIFIED) then ``swap``,
  or ``abort``;
* a ``swap`` killed at each of its points (the request stored, the marks stored for undo,
  the alias moved, the block lifted, the commit; with ``catch-up`` also the block put back,
  the last pass started, the last pass recorded): ``resume`` (the swap was asked for: it
  is carried on), ``swap`` again, or ``abort``.

Every end is converged: SWAPPED with exactly the source's documents, the aliases on the
target alone, no block, the lock released (``Source.assert_converged``); or, for an abort
before the alias moved, ROLLED_BACK with the source untouched and writable; an abort after
the alias moved records SWAPPED (exit 2) and the run is converged as well. The named points
are checked against a run that passed them uninterrupted.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reindex_fsm import api, gate
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State
from reindex_fsm.options import RunOptions

from .conftest import CaseResult, Source, db_state, history, run_cli

pytestmark = pytest.mark.crash

CATCH_UP = ("--write-policy", "catch-up", "--since-field", "published_at")
# start killed on its way to the gate
START_POINTS = ["verify.settings_restored", "commit.VERIFIED"]
# swap killed: (point, the alias moved already)
SWAP_POINTS = [
    ("checkpoint.swap_approved", False),
    ("swap.recorded", False),
    ("swap.engine_done", True),
    ("write_policy.released", True),
    ("commit.SWAPPED", True),
]
CATCH_UP_SWAP_POINTS = [
    ("write_policy.blocked", False),  # the block on again for the last pass
    ("catch_up.pass_started", False),
    ("checkpoint.catch_up_pass", False),  # the last pass done, not yet verified again
]
ENDS = ["resume", "swap", "abort"]


def _args(db: Path, url: str) -> list[str]:
    return ["--json", "--state-db", str(db), "--engine-url", url]


def _start(src: Source, db: Path, policy: tuple[str, ...], crash_at: str | None) -> int:
    done = run_cli(
        [
            "start",
            "--alias",
            src.alias,
            "--pause-before-swap",
            "--force",
            *policy,
            *_args(db, src.url),
        ],
        crash_at,
    )
    return done.rc


def _end(src: Source, db: Path, run_id: str, how: str, alias_moved: bool) -> None:
    """End the run with ``how`` and check the end converged."""
    state = db_state(db)
    if how == "abort":
        done = run_cli(["abort", run_id, *_args(db, src.url)])
        if state == "SWAPPED":
            assert done.rc == 2 and "already finished" in done.json()["error"], done.out
        elif alias_moved:  # the swap was made: recorded SWAPPED, never rolled back
            assert done.rc == 2 and "was not rolled back" in done.json()["error"], done.out
        else:
            assert done.rc == 0, (done.rc, done.out, done.err[-1500:])
            assert done.json()["state"] == "ROLLED_BACK"
            src.assert_untouched()
            return
        src.assert_converged(db, run_id)
        return
    if state == "SWAPPED":  # killed after the last commit
        done = run_cli([how, run_id, *_args(db, src.url)] + (["--force"] if how == "swap" else []))
        assert done.rc == 2, (done.rc, done.out)
        src.assert_converged(db, run_id)
        return
    if how == "resume":
        done = run_cli(["resume", run_id, *_args(db, src.url)])
        if done.rc == ExitCode.PAUSED:  # the swap had not been asked for: the run waits at the gate
            assert done.json()["state"] == "VERIFIED"
            done = run_cli(["swap", run_id, "--force", *_args(db, src.url)])
    else:
        if state != "VERIFIED":  # a start killed before the gate: resume reaches it
            reached = run_cli(["resume", run_id, *_args(db, src.url)])
            assert reached.rc == ExitCode.PAUSED, (reached.rc, reached.out, reached.err[-1500:])
        done = run_cli(["swap", run_id, "--force", *_args(db, src.url)])
    assert done.rc == 0, (done.rc, done.out, done.err[-1500:])
    assert done.json()["state"] == "SWAPPED"
    src.assert_converged(db, run_id)


def _run_id(db: Path) -> str:
    (run,) = history(db)
    return str(run["run_id"])


def test_named_points_are_those_a_paused_run_and_its_swap_pass(
    clean_source: Source, tmp_path: Path
) -> None:
    for name, policy in (("block", {}), ("catch-up", {"write_policy": "catch-up"})):
        if policy:
            policy = {**policy, "since_field": "published_at"}
        points = Crashpoints()
        db = tmp_path / f"{name}.db"
        cfg = api.Config(
            state_db=f"sqlite:///{db}", engine_url=clean_source.url, crash=lambda p=points: p
        )
        record = api.start(
            cfg, clean_source.alias, RunOptions(pause_before_swap=True, **policy)
        ).record
        assert record.state is State.VERIFIED
        started = list(points.seen)
        assert gate.swap(cfg, record.id).record.state is State.SWAPPED
        swapped = points.seen[len(started) :]
        assert set(START_POINTS) <= set(started), started
        wanted = SWAP_POINTS + (CATCH_UP_SWAP_POINTS if policy else [])
        assert {p for p, _ in wanted} <= set(swapped), swapped
        clean_source.assert_converged(db, record.id)
        clean_source.reset()


@pytest.mark.parametrize("how", ENDS)
@pytest.mark.parametrize("point", START_POINTS)
def test_start_killed_on_its_way_to_the_gate(
    point: str, how: str, clean_source: Source, tmp_path: Path, crash_result: CaseResult
) -> None:
    crash_result.kind = "gate-start"
    db = tmp_path / "state.db"
    assert _start(clean_source, db, (), point) == -signal.SIGKILL
    crash_result.landed = db_state(db)
    _end(clean_source, db, _run_id(db), how, False)
    crash_result.passed = True


@pytest.mark.parametrize("how", ENDS)
@pytest.mark.parametrize(
    ("policy", "point", "moved"),
    [("block", p, m) for p, m in SWAP_POINTS]
    + [("catch-up", p, m) for p, m in CATCH_UP_SWAP_POINTS],
)
def test_swap_killed(
    policy: str,
    point: str,
    moved: bool,
    how: str,
    clean_source: Source,
    tmp_path: Path,
    crash_result: CaseResult,
) -> None:
    crash_result.kind = "gate-swap"
    db = tmp_path / "state.db"
    flags = CATCH_UP if policy == "catch-up" else ()
    assert _start(clean_source, db, flags, None) == ExitCode.PAUSED
    run_id = _run_id(db)
    killed = run_cli(["swap", run_id, "--force", *_args(db, clean_source.url)], point)
    assert killed.rc == -signal.SIGKILL, (killed.rc, killed.out, killed.err[-1500:])
    crash_result.landed = db_state(db)
    _end(clean_source, db, run_id, how, moved)
    crash_result.passed = True
