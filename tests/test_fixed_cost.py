"""What a run costs around its copy: the copy polled when its progress says it ends
(not a full backoff pause later), the process ended without the interpreter's
teardown, and a run on OpenSearch without the Elasticsearch client loaded. No timed
assertion: the clock and sleep are injected, the process test checks what was left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reindex_fsm import api
from reindex_fsm.engine.base import TaskStatus
from reindex_fsm.options import RunOptions
from reindex_fsm.process import exit_code_of
from reindex_fsm.steps.poll import DUE_S, Backoff, TaskEta, Waiter, task_eta_s
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, N_DOCS, SOURCE, TARGET, FakeClock


def status(done: int, total: int, running_s: float, completed: bool = False) -> TaskStatus:
    return TaskStatus("n:1", completed, total=total, created=done, running_time_s=running_s)


# -- the ETA of a copy task ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "running_s", "eta"),
    [
        (500, 2000, 1.0, 3.0),  # 500 docs/s, 1500 to go
        (1900, 2000, 3.8, 0.2),
        (2000, 2000, 4.0, 0.0),  # all written: it ends now (its bookkeeping)
        (0, 2000, 1.0, None),  # nothing done yet: no rate
        (100, 0, 1.0, None),  # no total yet
        (100, 2000, 0.0, None),  # no running time (an engine or fake that reports none)
    ],
)
def test_the_eta_of_a_task_from_its_own_progress(
    done: int, total: int, running_s: float, eta: float | None
) -> None:
    assert task_eta_s(status(done, total, running_s)) == eta


def test_the_eta_from_the_rate_since_the_previous_status() -> None:
    """A copy that wrote nothing in its first second: 1000 docs in 2 s overall (500/s,
    2 s to go) but 500 in its last half second (1000/s: 1 s to go)."""
    now, before = status(1000, 2000, 2.0), status(500, 2000, 1.5)
    assert task_eta_s(now) == 2.0
    assert task_eta_s(now, before) == 1.0
    other = TaskStatus("n:2", False, total=2000, created=500, running_time_s=1.5)
    assert task_eta_s(now, other) == 2.0  # another task (a copy started again): overall
    assert task_eta_s(now, now) == 2.0  # nothing moved since: overall
    eta = TaskEta()
    assert [eta(before), eta(now)] == [4.5, 1.0]  # 1500 left at 1000 in 3 s, then as above


def test_version_conflicts_and_noops_count_as_done() -> None:
    task = TaskStatus("n:1", False, total=100, created=40, version_conflicts=5, noops=5)
    assert task_eta_s(TaskStatus(**{**task.__dict__, "running_time_s": 1.0})) == 1.0


# -- the waiter, told when the wait is due ------------------------------------------------


def test_a_wait_due_sooner_than_the_next_pause_wakes_when_due() -> None:
    clock = FakeClock()
    waiter = Waiter(clock, clock.sleep, Backoff(0.5, 2.0))
    for _ in range(5):
        waiter.pause(due_in=30.0)  # far off: the backoff's own pauses
    waiter.pause(due_in=0.3)
    assert clock.sleeps == [0.5, 0.75, 1.125, 1.6875, 2.0, 0.3]
    waiter.pause()  # unknown again: the backoff's delay, which a due pause did not grow
    assert clock.sleeps[-1] == 2.0


def test_due_pauses_in_a_row_start_short_and_grow_to_the_backoffs() -> None:
    """A task whose documents are all written but which has not ended yet: asked again
    soon, then less and less often, never more rarely than the backoff would."""
    clock = FakeClock()
    waiter = Waiter(clock, clock.sleep, Backoff(0.5, 2.0))
    for _ in range(8):
        waiter.pause(due_in=0.0)
    assert clock.sleeps[0] == DUE_S
    assert clock.sleeps == sorted(clock.sleeps)
    assert clock.sleeps[1] == pytest.approx(DUE_S * 1.5)
    assert max(clock.sleeps) == 0.5  # the backoff's next delay bounds them
    waiter.pause(due_in=5.0)  # no longer due: the floor starts again for the next one
    waiter.pause(due_in=0.0)
    assert clock.sleeps[-1] == DUE_S


def test_a_due_wait_still_stops_at_the_deadline() -> None:
    clock = FakeClock()
    waiter = Waiter(clock, clock.sleep, Backoff(1.0, 1.0), timeout_s=0.1)
    paused = [waiter.pause(due_in=0.05) for _ in range(3)]
    assert paused == [True, True, False]  # at 0.125 the deadline (0.1) has passed
    assert clock.sleeps == pytest.approx([0.05, 0.075])


# -- a run's copy, polled by its ETA ------------------------------------------------------


def test_the_last_poll_of_a_copy_comes_when_its_eta_says(cfg: api.Config, fake: FakeEngine) -> None:
    """100 documents a second (100 per poll, a second of running time per poll): the
    backoff's pauses while the end is far, then one of the one second left, not 2 s."""
    fake.task_script = TaskScript(docs_per_poll=100, seconds_per_poll=1.0)
    outcome = api.start(cfg, ALIAS, RunOptions())
    assert outcome.record.state.value == "SWAPPED"
    sleeps = cfg.sleep.__self__.sleeps  # type: ignore[attr-defined]
    assert len(sleeps) == N_DOCS // 100 - 1
    assert sleeps[:5] == [0.5, 0.75, 1.125, 1.6875, 2.0]
    assert sleeps[5:-1] == [2.0] * (len(sleeps) - 6)
    assert sleeps[-1] == pytest.approx(1.0)  # 100 documents left at 100 a second


def test_a_task_reporting_no_running_time_is_polled_with_the_backoff(
    cfg: api.Config, fake: FakeEngine
) -> None:
    fake.task_script = TaskScript(docs_per_poll=100)
    api.start(cfg, ALIAS, RunOptions())
    sleeps = cfg.sleep.__self__.sleeps  # type: ignore[attr-defined]
    assert sleeps[-1] == 2.0


# -- the end of the process ----------------------------------------------------------------


@pytest.mark.parametrize(("code", "expected"), [(None, 0), (0, 0), (3, 3), ("bad", 1)])
def test_exit_code_of_a_system_exit(code: int | str | None, expected: int) -> None:
    assert exit_code_of(SystemExit(code)) == expected


def test_exit_now_keeps_what_the_teardown_is_for(tmp_path: Path) -> None:
    """The exit handlers run, non-daemon threads are waited for, buffered output is
    written, and the exit code is the one given."""
    marker = tmp_path / "atexit"
    script = textwrap.dedent(
        f"""
        import atexit, sys, threading, time
        from reindex_fsm.process import exit_now
        atexit.register(lambda: open({str(marker)!r}, "w").write("ran"))
        def late():
            time.sleep(0.2)
            sys.stdout.write("thread done;")
        threading.Thread(target=late).start()
        sys.stdout.write("buffered, no newline;")
        sys.stderr.write("on stderr")
        exit_now(7)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 7
    assert done.stdout == "buffered, no newline;thread done;"
    assert done.stderr == "on stderr"
    assert marker.read_text() == "ran"


def test_the_cli_exits_with_its_code_through_exit_now() -> None:
    """The entry point keeps click's exit codes (2: a usage error; 0: --help)."""
    run = [sys.executable, "-c", "from reindex_fsm.cli import main; main()"]
    usage = subprocess.run([*run, "start"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2, usage.stderr
    assert "--alias" in usage.stderr
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0
    assert helped.stdout.startswith("Usage:")


# -- the engine clients, imported when chosen --------------------------------------------------


def test_connect_does_not_load_the_elasticsearch_client_for_opensearch() -> None:
    script = textwrap.dedent(
        """
        import sys
        from reindex_fsm.engine.connect import connect
        engine = connect("http://127.0.0.1:9", "opensearch")
        print(type(engine).__name__, "elasticsearch" in sys.modules,
              "elastic_transport" in sys.modules)
        from reindex_fsm.engine.connect import connect
        engine = connect("http://127.0.0.1:9", "elasticsearch")
        print(type(engine).__name__, "elasticsearch" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [
        "OpenSearchEngine False False",
        "ElasticsearchEngine True",
    ]


# -- the health wait after the final settings are put back ----------------------------------


def _after_put_settings(fake: FakeEngine) -> list[tuple[str, tuple[object, ...]]]:
    names = fake.call_names()
    at = names.index("put_settings")
    return [(c.method, c.args) for c in fake.calls[at + 1 : names.index("refresh", at)]]


def test_without_replicas_the_health_wait_is_one_request(cfg: api.Config, fake: FakeEngine) -> None:
    """The plan says the target's final replica count (0): green is the health to wait
    for whatever the node count, so neither the target nor the nodes are asked first."""
    fake.indices[SOURCE].settings["index.number_of_replicas"] = "0"
    assert api.start(cfg, ALIAS, RunOptions()).record.state.value == "SWAPPED"
    assert _after_put_settings(fake) == [("cluster_health", (TARGET,))]


def test_with_replicas_the_node_count_decides_the_health(cfg: api.Config, fake: FakeEngine) -> None:
    assert api.start(cfg, ALIAS, RunOptions()).record.state.value == "SWAPPED"
    assert _after_put_settings(fake) == [("cluster_health", (None,)), ("cluster_health", (TARGET,))]


def test_an_auto_expanded_replica_count_is_read_from_the_target(
    cfg: api.Config, fake: FakeEngine
) -> None:
    fake.indices[SOURCE].settings["index.auto_expand_replicas"] = "0-1"
    assert api.start(cfg, ALIAS, RunOptions()).record.state.value == "SWAPPED"
    assert [m for m, _ in _after_put_settings(fake)] == [
        "get_index",
        "cluster_health",
        "cluster_health",
    ]


# -- the trace's summary (bench/trace_run.py) -------------------------------------------------


def _event(kind: str, start: float, duration: float, **fields: object) -> dict[str, object]:
    return {"kind": kind, "start": start, "duration": duration, "thread": "MainThread", **fields}


def test_a_trace_is_split_before_during_and_after_the_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "bench"))
    import trace_run

    t0 = 1_000.0
    task = "nodeidabcdef:42"
    done = {"completed": True, "start_time_in_millis": (t0 + 2.05) * 1000}
    trace = {
        "t0": t0,
        "marks": {"exit_handlers_done": 4.2},
        "events": [
            _event("request", 1.0, 0.01, method="GET", path="/", by=["config.py:engine"]),
            _event("request", 2.0, 0.1, method="POST", path="/_reindex?slices=auto", by=["x"]),
            _event("request", 3.0, 0.01, method="GET", path=f"/_tasks/{task}", task={}),
            _event("sleep", 3.01, 0.5, asked=0.5, by=["lease.py:__call__", "reindex.py:wait"]),
            _event(
                "request",
                3.6,
                0.02,
                method="GET",
                path=f"/_tasks/{task}",
                task={**done, "running_time_in_nanos": 1.5e9},
            ),
            _event("commit", 3.7, 0.01, by=["store/repository.py:transition"]),
            _event("request", 4.0, 0.05, method="POST", path="/_aliases", by=["swap.py:run"]),
            {**_event("request", 3.2, 0.01, method="PUT", path="/l"), "thread": "lease-a"},
        ],
    }
    s = trace_run.summarize(trace, whole_s=4.3)
    assert s["copy_task_running_s"] == 1.5
    assert s["fixed_cost_s"] == pytest.approx(2.8)
    assert s["start_up_s"] == 1.0 and s["teardown_s"] == pytest.approx(0.1)
    assert s["seen_after_task_end_s"] == pytest.approx(0.07)
    assert s["polls"] == 2 and s["background_requests"] == 1
    before, copy, after = (s["phases"][p] for p in ("before_copy", "copy", "after_copy"))
    assert (before["seconds"], before["requests"]) == (2.0, 1)
    assert copy["seconds"] == pytest.approx(1.62)
    assert (copy["requests"], copy["sleeps"], copy["sleep_s"]) == (3, 1, 0.5)
    assert after["seconds"] == pytest.approx(0.68) and after["commits"] == 1
    assert "GET /_tasks/{task} <- ?" in copy["by_what"]


def test_the_trace_tool_prints_its_help() -> None:
    bench = Path(__file__).resolve().parents[1] / "bench" / "trace_run.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--variant" in done.stdout
