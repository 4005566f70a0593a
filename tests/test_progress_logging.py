"""Progress (bar on a terminal, plain lines, JSON lines) and structured logs (run ID,
text/json, -v/-q), on the fake engine."""

from __future__ import annotations

import io
import json
import logging
from types import SimpleNamespace
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from reindex_fsm import logs
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.engine.base import TaskStatus
from reindex_fsm.errors import ExitCode
from reindex_fsm.events import Progress, Transition, Warning
from reindex_fsm.machine import State
from reindex_fsm.progress import BarReporter, JsonReporter, LineReporter

from .conftest import ALIAS

NOTE = Warning("WRITES TO documents-v1 ARE BLOCKED until the swap", "write_block")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run(progress: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(id="run123", state="REINDEXING", progress=progress)


def status(done: int, total: int = 1000, completed: bool = False, **kw: Any) -> Progress:
    strategy, batches = kw.pop("strategy", "copy"), kw.pop("batches", None)
    task = TaskStatus(task_id=kw.pop("task_id", "node:1"), completed=completed, total=total,
                      created=done, **kw)  # fmt: skip
    return Progress.from_status(task, strategy, batches)


def moved(source: str, dest: str) -> Transition:
    return Transition(State(source), State(dest))


def invoke(cfg: Config, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


# -- reporters ---------------------------------------------------------------------------
def test_bar_on_a_terminal_shows_counts_rate_and_eta():
    out, clock = io.StringIO(), Clock()
    bar = BarReporter(Console(file=out, force_terminal=True, width=160), clock=clock)
    bar.emit(run(), moved("TARGET_CREATED", "REINDEXING"))
    bar.emit(run(), status(100, updated=5, deleted=2, version_conflicts=3))
    assert bar._bar is not None
    first = bar._bar.tasks[0]
    assert first.completed == 110 and first.total == 1000  # conflicts are done too
    assert first.fields["counts"] == "conflicts 3"
    clock.t = 10.0
    bar.emit(run(), status(600))
    assert bar._bar is not None  # live while the copy runs
    counts = bar._bar.tasks[0].fields["counts"]
    assert "49/s" in counts and "ETA 0:08" in counts  # 490 docs in 10 s, 400 left
    bar.emit(run(), NOTE)
    clock.t = 20.0
    bar.emit(run(), status(1000, completed=True))
    assert bar._bar is None  # stopped when the task completed
    text = out.getvalue()
    assert "\x1b[" in text  # a terminal rendering, not plain lines
    assert "1000/1000" in text and "copying" in text
    assert "44/s" in text  # 890 docs in 20 s
    assert "WRITES TO documents-v1 ARE BLOCKED" in text


def test_bar_for_recompute_shows_batches_and_stops_at_the_next_state():
    out, clock = io.StringIO(), Clock()
    bar = BarReporter(Console(file=out, force_terminal=True, width=160), clock=clock)
    rec = run({"batches": 7, "indexed": 350})
    bar.emit(rec, status(350, task_id="recompute", strategy="recompute", batches=7))
    bar.emit(rec, moved("REINDEXING", "VERIFYING"))
    assert bar._bar is None
    text = out.getvalue()
    assert "embedding" in text and "batches 7" in text and "350/1000" in text


def test_plain_lines_are_throttled_and_the_completion_is_always_shown():
    out, clock = io.StringIO(), Clock()
    lines = LineReporter(out, every_s=5.0, clock=clock)
    lines.emit(run(), status(100))
    clock.t = 1.0
    lines.emit(run(), status(200))  # within 5 s of the last line: not shown
    clock.t = 6.0
    lines.emit(run(), status(600))
    clock.t = 7.0
    lines.emit(run(), status(1000, completed=True))
    shown = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in shown] == [
        "run run123: copied 100/1000",
        "run run123: copied 600/1000",
        "run run123: copied 1000/1000",
    ]
    assert "83 docs/s" in shown[1] and "ETA 0:05" in shown[1]  # 500 in 6 s, 400 left
    assert "\x1b[" not in out.getvalue()


def test_quiet_keeps_only_the_notes_in_every_mode():
    plain, js, term = io.StringIO(), io.StringIO(), io.StringIO()
    reporters = [
        LineReporter(plain, quiet=True),
        JsonReporter(js, quiet=True),
        BarReporter(Console(file=term, force_terminal=True), quiet=True),
    ]
    for reporter in reporters:
        reporter.emit(run(), moved("PLANNED", "TARGET_CREATED"))
        reporter.emit(run(), status(1000, completed=True))
        reporter.emit(run(), NOTE)
    for out in (plain, js, term):
        assert "ARE BLOCKED" in out.getvalue()
        assert "TARGET_CREATED" not in out.getvalue() and "1000" not in out.getvalue()


def test_json_events_parse_and_carry_the_run():
    out, clock = io.StringIO(), Clock()
    reporter = JsonReporter(out, clock=clock)
    reporter.emit(run(), moved("PLANNED", "TARGET_CREATED"))
    reporter.emit(run(), NOTE)
    reporter.emit(run(), status(400))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["transition", "write_block", "progress"]
    assert all(e["run_id"] == "run123" and e["state"] == "REINDEXING" for e in events)
    assert all(e["at"] for e in events)
    assert events[0]["from"] == "PLANNED" and events[0]["to"] == "TARGET_CREATED"
    assert events[1]["note"].startswith("WRITES TO documents-v1 ARE BLOCKED")
    assert events[2]["done"] == 400 and events[2]["total"] == 1000


# -- the CLI -----------------------------------------------------------------------------
def test_json_mode_summary_on_stdout_events_on_stderr(cfg):
    result = invoke(cfg, "start", "--alias", ALIAS, "--force", "--json", "--write-policy", "block")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # exactly one object
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert {e["run_id"] for e in events} == {summary["run_id"]}
    kinds = [e["event"] for e in events]
    assert "write_block" in kinds and "progress" in kinds
    assert [e["to"] for e in events if e["event"] == "transition"] == [
        "TARGET_CREATED",
        "REINDEXING",
        "VERIFYING",
        "SWAPPED",
    ]
    assert events[kinds.index("progress")]["total"] == summary["source_count"]


def test_not_a_terminal_plain_lines_with_the_progress(cfg):
    result = invoke(cfg, "start", "--alias", ALIAS, "--force")
    assert result.exit_code == 0, result.stderr
    assert "PLANNED -> TARGET_CREATED" in result.stderr
    assert "copied 2500/2500" in result.stderr
    assert "\x1b[" not in result.stderr


def test_json_logs_carry_the_run_id_and_verbose_shows_the_steps(cfg):
    result = invoke(cfg, "-v", "--log-format", "json", "start", "--alias", ALIAS, "--force")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records, result.stderr
    run_id = result.stdout.split("run_id")[1].split()[0]
    assert all({"ts", "level", "logger", "run_id", "message"} <= set(r) for r in records)
    assert {r["run_id"] for r in records} == {run_id}
    steps = [r for r in records if r["logger"] == "reindex_fsm.runner"]
    assert {"step start_copy starts in TARGET_CREATED"} <= {r["message"] for r in steps}
    done = [r for r in steps if r["message"].startswith("step copy_done done")]
    assert done and done[0]["level"] == "DEBUG" and done[0]["duration_s"] >= 0
    assert any(r["logger"] == "reindex_fsm.lease" and "renewed" in r["message"] for r in records)


def test_default_level_has_no_debug_and_quiet_only_the_notes(cfg):
    default = invoke(cfg, "start", "--alias", ALIAS, "--force")
    assert "DEBUG" not in default.stderr and "step create_target" not in default.stderr
    quiet = invoke(cfg, "-q", "start", "--alias", ALIAS, "--force", "--write-policy", "block")
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr.splitlines() == [
        line for line in quiet.stderr.splitlines() if "ARE BLOCKED" in line
    ]
    assert len(quiet.stderr.splitlines()) == 1
    assert "SWAPPED" in quiet.stdout  # the result is still printed


def test_verbose_and_quiet_together_is_bad_input(cfg):
    result = invoke(cfg, "-v", "-q", "history")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: -v and -q contradict each other")
    assert len(result.stderr.splitlines()) == 1


# -- the formatter -----------------------------------------------------------------------
def _log_lines(fmt: str, verbose: int = 0, quiet: bool = False) -> list[str]:
    out = io.StringIO()
    handler = logs.configure(verbose=verbose, quiet=quiet, fmt=fmt, stream=out)
    try:
        log = logs.get_logger("reindex_fsm.test")
        logs.bind_run("abc123")
        log.debug("debug line")
        log.info("copy of %s at %s", "documents", "https://elastic:s3cret@es:9200/x")
        log.warning("renewal late", extra={"run_id": "other", "late_s": 3})
    finally:
        logs.bind_run(None)
        logging.getLogger().removeHandler(handler)
    return out.getvalue().splitlines()


def test_json_formatter_one_object_per_line_with_extras_and_no_secret():
    lines = _log_lines("json")
    records = [json.loads(line) for line in lines]
    assert [r["level"] for r in records] == ["INFO", "WARNING"]
    assert records[0]["run_id"] == "abc123" and records[0]["logger"] == "reindex_fsm.test"
    assert records[0]["message"] == "copy of documents at https://es:9200/x"
    assert records[1]["run_id"] == "other" and records[1]["late_s"] == 3
    assert "s3cret" not in "".join(lines)


def test_text_formatter_levels():
    assert len(_log_lines("text", verbose=1)) == 3
    lines = _log_lines("text")
    assert len(lines) == 2 and "[run abc123]" in lines[0] and "late_s=3" in lines[1]
    assert "s3cret" not in "".join(lines)
    quiet = _log_lines("text", quiet=True)
    assert len(quiet) == 1 and " WARNING reindex_fsm.test [run other] renewal late" in quiet[0]
