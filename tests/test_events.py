"""The typed progress events (reindex_fsm.events) and how each reporter shows each type:
a reporter decides on the event's type, never on its text."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from reindex_fsm.engine.base import TaskStatus
from reindex_fsm.events import Event, Note, Progress, SilentReporter, Transition, Warning
from reindex_fsm.machine import State
from reindex_fsm.progress import BarReporter, JsonReporter, LineReporter
from reindex_fsm.steps.context import RunContext
from reindex_fsm.store import open_store

RED = "\x1b[1;31m"  # rich's "bold red" on a terminal
AT = datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)

MOVED = Transition(State.PLANNED, State.TARGET_CREATED, "create_target", {"index": "x"})
FACT = Note("catch_up_pass")
NOTE = Note("write_block_gone", "the write block is off: copying again")
WARNING = Warning("not put back on the source, left as found: extra-alias on other-v1")
BLOCK = Warning("WRITES TO documents-v1 ARE BLOCKED until the swap", "write_block")
COPY = Progress.from_status(TaskStatus(task_id="node:1", completed=True, total=10, created=10))
RECOMPUTE = Progress("recompute", "recompute", total=10, created=4, batches=2)


def run() -> Any:
    return SimpleNamespace(id="r1", state="REINDEXING", progress=None, options={})


def lines_of(event: Event, quiet: bool = False) -> list[str]:
    out = io.StringIO()
    LineReporter(out, every_s=0.0, quiet=quiet, clock=lambda: 1.0).emit(run(), event)
    return out.getvalue().splitlines()


def json_of(event: Event, quiet: bool = False) -> list[dict[str, Any]]:
    out = io.StringIO()
    reporter = JsonReporter(out, every_s=0.0, quiet=quiet, clock=lambda: 1.0, now=lambda: AT)
    reporter.emit(run(), event)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def bar_of(event: Event, quiet: bool = False) -> str:
    out = io.StringIO()
    bar = BarReporter(Console(file=out, force_terminal=True, width=120), quiet, lambda: 1.0)
    bar.emit(run(), event)
    bar.close()
    return out.getvalue()


def test_each_event_has_its_line():
    assert MOVED.line == "PLANNED -> TARGET_CREATED"
    assert FACT.line == "catch_up_pass"
    assert NOTE.line == "write_block_gone: the write block is off: copying again"
    assert WARNING.line.startswith("warning: not put back on the source")
    assert BLOCK.line == "write_block: WRITES TO documents-v1 ARE BLOCKED until the swap"
    assert COPY.done == 10 and COPY.strategy == "copy" and COPY.counted
    assert not Progress("copy", "node:1", total=0).counted  # a task just started


def test_plain_lines_for_each_event_type():
    assert lines_of(MOVED) == ["run r1: PLANNED -> TARGET_CREATED"]
    assert lines_of(FACT) == ["run r1: catch_up_pass"]
    assert lines_of(NOTE) == ["run r1: write_block_gone: the write block is off: copying again"]
    assert lines_of(WARNING) == [f"run r1: {WARNING.line}"]
    assert lines_of(COPY) == ["run r1: copied 10/10 (created 10, conflicts 0)"]
    assert lines_of(RECOMPUTE) == ["run r1: embedded 4/10 (created 4, conflicts 0, batches 2)"]


def test_quiet_keeps_the_warnings_and_the_notes_with_text_in_every_reporter():
    kept, dropped = [NOTE, WARNING, BLOCK], [MOVED, FACT, COPY, RECOMPUTE]
    for event in kept:
        assert len(lines_of(event, quiet=True)) == 1
        assert len(json_of(event, quiet=True)) == 1
        assert "run r1: " in bar_of(event, quiet=True)
    for event in dropped:
        assert lines_of(event, quiet=True) == []
        assert json_of(event, quiet=True) == []
        assert bar_of(event, quiet=True) == ""


def test_json_lines_for_each_event_type():
    head = {"run_id": "r1", "state": "REINDEXING", "at": AT.isoformat()}
    assert json_of(MOVED) == [
        {"event": "transition", **head, "from": "PLANNED", "to": "TARGET_CREATED"}
    ]
    assert json_of(FACT) == [{"event": "catch_up_pass", **head}]
    assert json_of(NOTE) == [{"event": "write_block_gone", **head, "note": NOTE.text}]
    assert json_of(WARNING) == [{"event": "warning", **head, "note": WARNING.text}]
    assert json_of(BLOCK) == [{"event": "write_block", **head, "note": BLOCK.text}]
    (copy,) = json_of(COPY)
    assert copy["event"] == "progress" and copy["task_id"] == "node:1"
    assert (copy["done"], copy["total"], copy["completed"]) == (10, 10, True)
    assert "batches" not in copy
    (recompute,) = json_of(RECOMPUTE)
    assert recompute["task_id"] == "recompute" and recompute["batches"] == 2


def test_the_bar_shows_each_event_type_and_only_warnings_stand_out():
    for event in (MOVED, FACT, NOTE):
        text = bar_of(event)
        assert f"run r1: {event.line}" in text and RED not in text
    for event in (WARNING, BLOCK):
        text = bar_of(event)
        assert RED in text and event.text in text
    assert "copying" in bar_of(COPY) and "10/10" in bar_of(COPY)
    recompute = bar_of(RECOMPUTE)
    assert "embedding" in recompute and "4/10" in recompute and "batches 2" in recompute


def test_a_transition_ends_the_bar_and_a_note_does_not():
    bar = BarReporter(Console(file=io.StringIO(), force_terminal=True), clock=lambda: 1.0)
    bar.emit(run(), Progress("copy", "node:1", total=10, created=3))
    bar.emit(run(), NOTE)
    assert bar._bar is not None
    bar.emit(run(), Transition(State.REINDEXING, State.VERIFYING))
    assert bar._bar is None


def test_the_silent_reporter_takes_every_event_type():
    for event in (MOVED, FACT, NOTE, WARNING, COPY):
        SilentReporter().emit(run(), event)


def _new_run(repo: Any, run_id: str) -> Any:
    return repo.create(
        {
            "id": run_id,
            "alias": f"documents-{run_id}",
            "source_index": "documents-v1",
            "target_index": "documents-v2",
            "options": {},
            "plan": {},
            "engine_url": "http://localhost:9200",
            "engine_flavor": "opensearch",
            "engine_version": "2.19.1",
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        "alias ORDERS-BLOCKED-IDS: 12 documents copied again",
        "the engine said: index [orders] BLOCKED by: [FORBIDDEN/8/index write (api)]",
    ],
)
def test_a_note_with_blocked_or_a_colon_in_its_text_is_a_note(state_db, text):
    """What a step stores as a note is shown as a note, whatever its text says: "BLOCKED"
    or ": " in an alias or an engine's reason neither makes it a warning nor splits it."""
    repo = open_store(state_db)
    term, plain, js = io.StringIO(), io.StringIO(), io.StringIO()
    reporters = {
        "bar": BarReporter(Console(file=term, force_terminal=True, width=200), clock=lambda: 0.0),
        "lines": LineReporter(plain, quiet=True),
        "json": JsonReporter(js),
    }
    for run_id, reporter in reporters.items():
        record = _new_run(repo, run_id)
        ctx = RunContext(engine=None, repo=repo, record=record, reporter=reporter)  # type: ignore[arg-type]
        ctx.checkpoint(event="catch_up_pass", detail={"note": text})
    assert f"run bar: catch_up_pass: {text}" in term.getvalue()
    assert RED not in term.getvalue()  # a note: not the write-block warning's red
    assert plain.getvalue() == f"run lines: catch_up_pass: {text}\n"
    (event,) = [json.loads(line) for line in js.getvalue().splitlines()]
    assert (event["event"], event["note"]) == ("catch_up_pass", text)
