"""`history` columns, `show`'s timeline / time in state / Mermaid diagram, and the
`show --report FILE` HTML page, on the fake engine (no engine needed: all from the state DB)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from reindex_fsm import report
from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.errors import ExitCode
from reindex_fsm.machine import State
from reindex_fsm.store import EventRecord, RunRecord, open_store
from reindex_fsm.testing.fake import TaskScript

from .conftest import ALIAS, NOW, db_rows


def invoke(cfg: Config, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def ticking(cfg: Config, step: timedelta = timedelta(seconds=30)) -> Config:
    """The config with a state DB clock that moves ``step`` on every reading."""
    ticks = iter(range(1_000_000))
    cfg = replace(cfg, _repo=open_store(cfg.state_db))
    cfg.repo().now = lambda: NOW + step * next(ticks)
    return cfg


def _event(i: int, at: datetime, src: str | None, dst: str, trigger: str, **detail) -> EventRecord:
    return EventRecord(i, "r1", at, src, dst, trigger, detail or None)


def _record(**changes) -> RunRecord:
    base = RunRecord(
        id="r1",
        alias=ALIAS,
        source_index="documents-v1",
        target_index="documents-v2",
        state=State.FAILED,
        failed_from=State.REINDEXING,
        options={},
        plan={},
        engine_url="http://localhost:9200",
        engine_flavor="opensearch",
        engine_version="2.19.6",
        task_id="node:42",
        copy_attempts=2,
        source_count=1000,
        target_count=None,
        progress={"done_docs": 400, "total": 1000},
        error="copy task failed: <script>alert('x')</script> & co",
        error_kind="task_failed",
        created_at=NOW,
        updated_at=NOW + timedelta(minutes=10),
        finished_at=None,
    )
    return replace(base, **changes)


# A run that failed while copying, was retried, and failed again.
EVENTS = [
    _event(1, NOW, None, "PLANNED", "plan"),
    _event(2, NOW + timedelta(seconds=5), "PLANNED", "TARGET_CREATED", "create_target"),
    _event(3, NOW + timedelta(seconds=7), "TARGET_CREATED", "REINDEXING", "start_copy"),
    _event(4, NOW + timedelta(seconds=60), "REINDEXING", "REINDEXING", "checkpoint", n=1),
    _event(5, NOW + timedelta(seconds=127), "REINDEXING", "FAILED", "fail"),
    _event(6, NOW + timedelta(seconds=300), "FAILED", "REINDEXING", "retry"),
    _event(7, NOW + timedelta(seconds=400), "REINDEXING", "FAILED", "fail"),
]


def test_timeline_leaves_out_checkpoints_and_times_each_state():
    later = NOW + timedelta(seconds=1000)
    steps = report.timeline(EVENTS, later)
    assert [(s.from_state, s.to_state) for s in steps] == [
        (None, "PLANNED"),
        ("PLANNED", "TARGET_CREATED"),
        ("TARGET_CREATED", "REINDEXING"),
        ("REINDEXING", "FAILED"),
        ("FAILED", "REINDEXING"),
        ("REINDEXING", "FAILED"),
    ]
    assert [s.seconds for s in steps] == [5, 2, 120, 173, 100, 600]
    assert [s.ongoing for s in steps] == [False] * 5 + [True]  # FAILED until now
    # REINDEXING entered twice: the times add up; FAILED counts up to now.
    assert report.time_in_state(steps) == {
        "PLANNED": 5,
        "TARGET_CREATED": 2,
        "REINDEXING": 220,
        "FAILED": 773,
    }


def test_terminal_state_has_no_duration_and_history_columns():
    events = [*EVENTS[:3], _event(4, NOW + timedelta(seconds=67), "REINDEXING", "ROLLED_BACK", "x")]
    done = _record(
        state=State.ROLLED_BACK, finished_at=NOW + timedelta(seconds=67), error_kind=None
    )
    steps = report.timeline(events, NOW + timedelta(days=1))
    assert steps[-1].seconds is None and not steps[-1].ongoing
    assert "ROLLED_BACK" not in report.time_in_state(steps)
    assert report.duration_s(done, NOW + timedelta(days=1)) == 67
    assert report.result(done) == "rolled back"
    assert report.result(_record()) == "failed (task_failed)"
    assert report.result(_record(state=State.REINDEXING)) == "in progress"
    assert report.duration_s(_record(state=State.REINDEXING), NOW + timedelta(hours=1)) == 3600


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (2.25, "2.2s"), (42, "42s"), (125, "2m05s"), (3725, "1h02m05s")],
)
def test_human_seconds(seconds, text):
    assert report.human_seconds(seconds) == text


def _classes(diagram: str) -> dict[str, str]:
    return dict(re.findall(r"^\s*class (\w+) s_(\w+)$", diagram, re.M))


def test_mermaid_diagram_is_the_machine_with_path_and_current_state_highlighted():
    steps = report.timeline(EVENTS, NOW + timedelta(seconds=1000))
    diagram = report.mermaid(State.FAILED, report.path_taken(steps))
    lines = [line.strip() for line in diagram.splitlines()]
    assert "stateDiagram-v2" in lines
    assert {"classDef s_active color:red,fill:darksalmon", "[*] --> PLANNED"} <= set(lines)
    # Every state, and every arrow of the machine's table, with its trigger(s).
    assert {f'state "{s}" as {s}' for s in State} <= set(lines)
    for src, dst, label in report.edges():
        assert f"{src} --> {dst}: {label}" in lines
    assert _classes(diagram) == {
        "PLANNED": "previous",
        "TARGET_CREATED": "previous",
        "REINDEXING": "previous",
        "FAILED": "active",
        **{s: "default" for s in ("VERIFYING", "VERIFIED", "SWAPPED", "ROLLED_BACK")},
        **{s: "default" for s in ("ABORTING",)},
        **{s: "default" for s in ("CANCELLED", "UNDONE")},
    }
    # Mermaid's keywords are lower case; no line the Mermaid grammar would not know.
    known = re.compile(
        r"^(---|reindex-fsm run|stateDiagram-v2|direction LR|classDef s_\w+ [\w:,]+"
        r'|state "\w+" as \w+|class \w+ s_\w+|\w+ --> \w+: [\w| ]+|\[\*\] --> \w+|)$'
    )
    assert [line for line in lines if not known.match(line)] == []


def test_mermaid_of_a_fresh_run_marks_only_planned():
    assert _classes(report.mermaid(State.PLANNED, []))["PLANNED"] == "active"
    assert set(_classes(report.mermaid(State.PLANNED, [])).values()) == {"active", "default"}


def test_html_report_is_self_contained_and_escaped():
    page = report.html_report(_record(), EVENTS, NOW + timedelta(seconds=1000))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # No external resource, no script: it opens from a file, offline. (The only URL is the
    # run's engine, as text.)
    assert not re.search(r"(src=|href=|<script|<link|<img|<iframe|@import|url\((?!#))", page)
    assert not re.search(r"(https?|ftp):", page.replace(">http://localhost:9200<", ""))
    # The error, escaped; never as markup.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert "task_failed" in page and "node:42" in page
    for state in State:
        assert f">{state.value}</text>" in page  # a box of the inline SVG diagram
    assert page.count('class="state active"') == 1
    assert '<g class="state active"><rect' in page
    assert page.count('class="edge taken"') == 3 + 1  # PLANNED..REINDEXING->FAILED, retry
    assert "stateDiagram-v2" in page  # the Mermaid source
    assert "3m40s" in page  # time in REINDEXING over both attempts


def test_every_state_has_a_place_in_the_svg_layout():
    assert set(report.LAYOUT) == set(State)
    assert len(set(report.LAYOUT.values())) == len(State)


def test_show_json_and_human_of_a_failed_run(cfg, fake):
    cfg = ticking(cfg)
    fake.task_script = TaskScript(fail_after_polls=1)
    started = invoke(cfg, "start", "--alias", ALIAS, "--force", "--json")
    assert started.exit_code == ExitCode.RUN_FAILED
    run_id = json.loads(started.stdout)["run_id"]
    shown = json.loads(invoke(cfg, "show", run_id, "--json").stdout)
    assert [s["to"] for s in shown["timeline"]] == [
        "PLANNED",
        "TARGET_CREATED",
        "REINDEXING",
        "FAILED",
    ]
    assert shown["path"] == ["PLANNED", "TARGET_CREATED", "REINDEXING", "FAILED"]
    assert shown["timeline"][-1]["ongoing"] is True
    assert set(shown["time_in_state"]) == {"PLANNED", "TARGET_CREATED", "REINDEXING", "FAILED"}
    first, last = (datetime.fromisoformat(shown["timeline"][i]["at"]) for i in (0, -1))
    so_far = shown["timeline"][-1]["seconds"]
    assert sum(shown["time_in_state"].values()) == (last - first).total_seconds() + so_far
    assert shown["time_in_state"]["REINDEXING"] > 0 and so_far > 0
    assert shown["failure"]["failed_from"] == "REINDEXING" and shown["failure"]["error"]
    assert shown["task"]["task_id"] and shown["result"].startswith("failed")
    assert _classes(shown["diagram"])["FAILED"] == "active"
    assert _classes(shown["diagram"])["REINDEXING"] == "previous"
    human = invoke(cfg, "show", run_id)
    assert human.exit_code == 0
    assert "path: PLANNED -> TARGET_CREATED -> REINDEXING -> FAILED" in human.stdout
    assert "(so far)" in human.stdout
    assert f"cause: {shown['error_kind']} (failed from REINDEXING)" in human.stdout
    assert f"task: {shown['task_id']}, copy attempts 1" in human.stdout
    assert "stateDiagram" not in human.stdout  # the Mermaid source only when asked for
    lines = human.stdout.splitlines()
    assert lines[1].split() == ["state", "FAILED"]
    assert any(line.split()[:1] == ["error"] for line in lines[:12])  # the error, first
    drawn = invoke(cfg, "show", run_id, "--diagram")
    assert "class FAILED s_active" in drawn.stdout
    assert drawn.stdout.index("stateDiagram") > drawn.stdout.index("timeline of run")


def test_show_report_writes_the_page(cfg, fake, tmp_path):
    run_id = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)[
        "run_id"
    ]
    page = tmp_path / "run.html"
    result = invoke(cfg, "show", run_id, "--report", str(page))
    assert result.exit_code == 0 and f"report written to {page}" in result.stdout
    text = page.read_text(encoding="utf-8")
    assert run_id in text and '<g class="state active"><rect' in text
    assert text.count('class="edge taken"') == 4  # PLANNED -> ... -> SWAPPED


def test_show_report_to_an_unwritable_place_is_a_usage_error(cfg, fake, state_db, tmp_path):
    run_id = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)[
        "run_id"
    ]
    before = db_rows(state_db)
    result = invoke(cfg, "show", run_id, "--report", str(tmp_path / "missing" / "run.html"))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: cannot write the report to ")
    assert result.stderr.rstrip().endswith("give a writable file path to --report")
    assert db_rows(state_db) == before


def test_show_unknown_run(cfg):
    assert invoke(cfg, "show", "nope", "--report", "x.html").exit_code == ExitCode.RUN_NOT_FOUND


def test_history_duration_and_result_columns(cfg, fake):
    cfg = ticking(cfg)
    done = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)
    fake.add_index("other-v1", {"a": {"x": 1}}, aliases={"other": {}})
    fake.task_script = TaskScript(fail_after_polls=0)
    failed = json.loads(invoke(cfg, "start", "--alias", "other", "--force", "--json").stdout)
    rows = {r["run_id"]: r for r in json.loads(invoke(cfg, "history", "--json").stdout)}
    assert rows[done["run_id"]]["result"] == "swapped"
    assert rows[failed["run_id"]]["result"].startswith("failed")
    assert rows[done["run_id"]]["duration_s"] > 0
    human = invoke(cfg, "history").stdout
    header = next(line for line in human.splitlines() if "source -> target" in line)
    names = [c.strip() for c in re.split(r"[┃|│]", header) if c.strip()]
    assert names == [
        "run",
        "alias",
        "source -> target",
        "state",
        "started",
        "duration",
        "documents",
        "result",
        "error",
    ]
    assert "swapped" in human and "failed" in human
