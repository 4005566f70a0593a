"""What the operator reads: engine, user and database text printed as text, one error
line on stderr, read-only commands that write nothing, log options after the command,
output to a pipe, and what a FAILED run's `show` says to do next."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from reindex_fsm.api import Config
from reindex_fsm.cli import cli
from reindex_fsm.errors import ExitCode
from reindex_fsm.store import open_store
from reindex_fsm.testing.fake import FakeEngine, TaskScript

from .conftest import ALIAS, SOURCE, make_config, make_docs

BRACKETS = "[/]doc [index.no_such_setting]"


def invoke(cfg: Config | None, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, catch_exceptions=False)


def _bracketed_cluster(alias: str = ALIAS) -> FakeEngine:
    """A source whose first document's ID is markup-like: a failed copy names it."""
    fake = FakeEngine()
    docs = {BRACKETS: {"title": "x"}, **make_docs(20)}
    fake.add_index(SOURCE, docs, aliases={alias: {}})
    fake.task_script = TaskScript(fail_after_polls=0)
    return fake


def test_brackets_in_errors_ids_and_names_print_as_text(state_db):
    alias = "docs[x][bold]"  # brackets are legal in names; a slash is not
    fake = _bracketed_cluster(alias)
    cfg = make_config(fake, state_db)
    started = invoke(cfg, "start", "--alias", alias, "--force")
    assert started.exit_code == ExitCode.RUN_FAILED
    assert f"first: document {BRACKETS}," in started.stdout
    run_id = open_store(state_db).list()[0].id
    history = invoke(cfg, "history")
    assert history.exit_code == 0
    assert BRACKETS in history.stdout and alias in history.stdout
    shown = invoke(cfg, "show", run_id)
    assert shown.exit_code == 0 and BRACKETS in shown.stdout and alias in shown.stdout
    aborted = invoke(cfg, "abort", run_id)
    assert aborted.exit_code == 0, aborted.stderr
    assert BRACKETS in aborted.stdout
    assert BRACKETS in invoke(cfg, "history").stdout  # the aborted run keeps its error


def test_bracketed_index_names_in_the_cleanup_table(cfg, fake):
    first = "documents-[old][bold]"
    assert invoke(cfg, "start", "--alias", ALIAS, "--force", "--target-index", first).exit_code == 0
    assert invoke(cfg, "start", "--alias", ALIAS, "--force").exit_code == 0
    result = invoke(cfg, "cleanup", "--alias", ALIAS, "--keep", "1", "--dry-run")
    assert result.exit_code == 0 and first in result.stdout


def test_a_failed_run_has_its_error_line_on_stderr(state_db):
    fake = _bracketed_cluster()
    cfg = make_config(fake, state_db)
    for extra in ([], ["--json"]):
        if extra:
            run_id = open_store(state_db).list()[0].id
            invoke(cfg, "abort", run_id)
        result = invoke(cfg, "start", "--alias", ALIAS, "--force", *extra)
        assert result.exit_code == ExitCode.RUN_FAILED
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr
        assert "ended FAILED" in errors[0] and BRACKETS in errors[0]
        assert "reindex-fsm resume " in errors[0] and "reindex-fsm abort " in errors[0]


@pytest.mark.parametrize(
    "args",
    [
        ["start", "--json"],  # a missing required option
        ["history", "--limit", "x", "--json"],  # a bad value
        ["show", "--json"],  # a missing argument
        ["history", "--json", "--no-such-option"],  # an unknown option
    ],
)
def test_usage_errors_under_json_are_one_json_object(tmp_path, args):
    result = invoke(None, *args, "--state-db", str(tmp_path / "s.db"))
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["exit_code"] == 2 and data["error"]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Usage:" not in result.stdout + result.stderr


def test_log_options_after_the_command_name(cfg):
    invoke(cfg, "start", "--alias", ALIAS, "--force")
    verbose = invoke(cfg, "history", "-v", "--log-format", "json")
    assert verbose.exit_code == 0, verbose.stderr
    both = invoke(cfg, "-q", "history", "-v")
    assert both.exit_code == ExitCode.USAGE and "contradict" in both.stderr
    started = invoke(cfg, "start", "--alias", "other", "--force", "-q")
    assert started.exit_code == ExitCode.USAGE  # (no such alias) -q accepted after it
    helped = invoke(cfg, "start", "--help").stdout
    assert "-v, --verbose" in helped and "-q, --quiet" in helped and "--log-format" in helped


# -- read-only commands -------------------------------------------------------------------


@pytest.mark.parametrize("command", [["history"], ["history", "--json"], ["show", "abc123"]])
def test_show_and_history_create_no_state_database(tmp_path, command):
    missing = tmp_path / "nowhere" / "state.db"
    result = invoke(None, *command, "--state-db", str(missing))
    assert result.exit_code == ExitCode.RUN_NOT_FOUND
    assert "no state database at" in result.stderr and str(missing) in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "nowhere").exists()


def test_history_limit_below_one_is_refused(cfg):
    for limit in ("0", "-1"):
        result = invoke(cfg, "history", "--limit", limit)
        assert result.exit_code == ExitCode.USAGE and "--limit" in result.stderr


def _not_writable(monkeypatch, path: Path) -> None:
    """What a process without write permission sees (these tests may run as root, whom
    chmod does not stop)."""
    real = os.access

    def access(p, mode, *a, **kw):  # type: ignore[no-untyped-def]
        if mode & os.W_OK and Path(p).resolve() in (path.resolve(), path.resolve().parent):
            return False
        return real(p, mode, *a, **kw)

    monkeypatch.setattr(os, "access", access)


def test_a_read_only_state_database_is_read_by_history_and_show(cfg, state_db, monkeypatch):
    started = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)
    path = Path(state_db.removeprefix("sqlite:///"))
    path.chmod(0o400)
    before = path.read_bytes()
    _not_writable(monkeypatch, path)
    reader = Config(state_db=state_db)  # a new process: nothing cached
    runs = invoke(reader, "history", "--json")
    assert runs.exit_code == 0, runs.stderr
    assert [r["run_id"] for r in json.loads(runs.stdout)] == [started["run_id"]]
    shown = invoke(Config(state_db=state_db), "show", started["run_id"], "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["state"] == "SWAPPED"
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("state")) == [
        "state.db"
    ]
    path.chmod(0o600)


def test_a_read_only_database_needing_an_upgrade_says_so(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    open_store(str(path)).engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0002'")
    before = path.read_bytes()
    _not_writable(monkeypatch, path)
    result = invoke(None, "history", "--state-db", str(path))
    assert result.exit_code == ExitCode.STATE_DB
    assert "needs an upgrade" in result.stderr and result.stderr.count("\n") == 1
    assert path.read_bytes() == before


# -- output to a pipe, and a FAILED run's next steps ----------------------------------------


def test_piped_output_is_not_padded(cfg):
    run_id = json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)[
        "run_id"
    ]
    for args in (["show", run_id], ["history"]):
        out = invoke(cfg, *args).stdout
        assert out and all(line == line.rstrip() for line in out.splitlines())
    summary = invoke(cfg, "show", run_id).stdout.splitlines()[0]
    assert summary.split() == ["run_id", run_id] and len(summary) < 40


def test_a_failed_run_says_whether_writes_are_blocked_and_what_to_run(cfg, fake, tmp_path):
    fake.task_script = TaskScript(fail_after_polls=1)
    args = ["start", "--alias", ALIAS, "--force", "--json", "--keep-block-on-failure"]
    run_id = json.loads(invoke(cfg, *args).stdout)["run_id"]
    page = tmp_path / "run.html"
    shown = invoke(cfg, "show", run_id, "--report", str(page))
    head = "\n".join(shown.stdout.splitlines()[:16])
    assert f"writes to {SOURCE} are still BLOCKED" in head
    assert f"`reindex-fsm resume {run_id}`" in head and f"`reindex-fsm abort {run_id}`" in head
    html = page.read_text()
    assert "still BLOCKED" in html and f"reindex-fsm resume {run_id}" in html
    assert f"reindex-fsm abort {run_id}" in html
    data = json.loads(invoke(cfg, "show", run_id, "--json").stdout)
    assert data["writes_blocked"] is True and len(data["next_steps"]) == 3


# -- the confirmations ------------------------------------------------------------------------


class _Terminal:
    """``sys`` as cli.py sees it, with a terminal on stdin (CliRunner's stdin is a pipe)."""

    def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
        self._real = real

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name == "stdin":
            stdin = self._real.stdin

            class _Tty:
                def __getattr__(self, attr):  # type: ignore[no-untyped-def]
                    return getattr(stdin, attr)

                def isatty(self) -> bool:
                    return True

            return _Tty()
        return getattr(self._real, name)


@pytest.fixture
def terminal(monkeypatch):
    import sys

    from reindex_fsm.cli import prompts as cli_module

    monkeypatch.setattr(cli_module, "sys", _Terminal(sys))


def answer(cfg: Config, text: str, *args: str):
    return CliRunner().invoke(cli, list(args), obj=cfg, input=text, catch_exceptions=False)


def test_the_start_confirmation_is_short(cfg, fake, terminal, state_db):
    before = fake.snapshot()
    result = answer(
        cfg, "n\n", "start", "--alias", ALIAS, "--requests-per-second", "100", "--no-verify"
    )
    assert result.exit_code == ExitCode.DECLINED
    assert result.stdout == ""  # question and facts on stderr
    lines = result.stderr.splitlines()
    assert len(lines) <= 8, result.stderr
    assert f"alias:      {ALIAS}" in lines
    assert any(SOURCE in line and "->" in line for line in lines)
    assert "documents:  2,500" in lines
    blocked = next(line for line in lines if line.startswith("writes:"))
    assert "BLOCKED" in blocked and "about 25s" in blocked and "--requests-per-second" in blocked
    assert any("verification is OFF" in line for line in lines)
    assert "[y/N]" in result.stderr and '"steps"' not in result.stderr
    assert fake.snapshot() == before and open_store(state_db).list() == []
    checked = answer(cfg, "n\n", "start", "--alias", ALIAS, "--verify")
    assert "verification is OFF" not in checked.stderr
    verbose = answer(cfg, "n\n", "start", "--alias", ALIAS, "-v")
    assert '"steps"' in verbose.stderr  # the full plan with -v


def _swapped_runs(cfg: Config, n: int) -> list[str]:
    return [
        json.loads(invoke(cfg, "start", "--alias", ALIAS, "--force", "--json").stdout)["run_id"]
        for _ in range(n)
    ]


def test_undo_asks_first(cfg, fake, terminal, state_db):
    (run_id,) = _swapped_runs(cfg, 1)
    before = fake.snapshot()
    declined = answer(cfg, "n\n", "undo", run_id)
    assert declined.exit_code == ExitCode.DECLINED and "[y/N]" in declined.stderr
    assert f"back to {SOURCE}" in declined.stderr
    assert fake.snapshot() == before
    done = answer(cfg, "y\n", "undo", run_id, "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["state"] == "UNDONE"


def test_undo_without_a_terminal_needs_yes(cfg, fake):
    (run_id,) = _swapped_runs(cfg, 1)
    before = fake.snapshot()
    refused = invoke(cfg, "undo", run_id)
    assert refused.exit_code == ExitCode.USAGE and "--yes" in refused.stderr
    assert fake.snapshot() == before
    assert invoke(cfg, "undo", run_id, "--yes").exit_code == 0


def test_cleanup_asks_and_keeps_the_index_undo_needs(cfg, fake, terminal):
    runs = _swapped_runs(cfg, 3)
    store = Config(state_db=cfg.state_db).repo()
    targets = [store.get(r).target_index for r in runs]
    declined = answer(cfg, "n\n", "cleanup", "--alias", ALIAS, "--keep", "0")
    assert declined.exit_code == ExitCode.DECLINED and "[y/N]" in declined.stderr
    assert all(t in fake.indices for t in targets)
    done = answer(cfg, "y\n", "cleanup", "--alias", ALIAS, "--keep", "0", "--json")
    rows = {r["index"]: r for r in json.loads(done.stdout)["indices"]}
    assert rows[targets[0]]["action"] == "deleted"
    undo_index = targets[1]  # the newest run's source: `undo` moves the alias back to it
    assert rows[undo_index]["action"] == "keep"
    assert f"reindex-fsm undo {runs[2]}" in rows[undo_index]["reason"]
    assert undo_index in fake.indices
    forced = invoke(cfg, "cleanup", "--alias", ALIAS, "--keep", "0", "--force", "--json")
    rows = {r["index"]: r for r in json.loads(forced.stdout)["indices"]}
    assert rows[undo_index]["action"] == "deleted" and "impossible" in rows[undo_index]["reason"]


def test_cleanup_without_a_terminal_needs_force(cfg, fake):
    _swapped_runs(cfg, 3)
    before = fake.snapshot()
    refused = invoke(cfg, "cleanup", "--alias", ALIAS, "--keep", "0")
    assert refused.exit_code == ExitCode.USAGE and "--force" in refused.stderr
    assert fake.snapshot() == before


# -- progress ---------------------------------------------------------------------------------


def _run(**options):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    return SimpleNamespace(id="run123", state="REINDEXING", progress=None, options=options)


def _status(done: int, total: int, t: float, completed: bool = False):  # type: ignore[no-untyped-def]
    from reindex_fsm.engine.base import TaskStatus
    from reindex_fsm.events import Progress

    return Progress.from_status(
        TaskStatus(
            task_id="node:1", completed=completed, total=total, created=done, running_time_s=t
        )
    )


def test_the_eta_of_a_throttled_sliced_copy_follows_the_throttle():
    """5 slices at 300 documents/s in all: each slice writes a batch of 1,000 at once,
    then waits 1000 / (300 / 5) = 16.7 s. Seen between bursts, the rate is the throttle's."""
    import io

    from reindex_fsm.progress import JsonReporter

    clock = [0.0]
    out = io.StringIO()
    reporter = JsonReporter(out, every_s=0.0, clock=lambda: clock[0])
    run = _run(requests_per_second=300.0)
    for t, done in [(0.5, 5000), (2.5, 5000), (4.5, 5000), (10.0, 5000)]:
        clock[0] = t
        reporter.emit(run, _status(done, 20000, t))
    last = json.loads(out.getvalue().splitlines()[-1])
    truth = (20000 - 5000) / 300.0  # 50 s
    assert last["docs_per_s"] == 300.0
    assert truth * 0.8 <= last["eta_s"] <= truth * 1.2, last


def test_no_progress_line_before_the_task_knows_its_total():
    import io

    from reindex_fsm.progress import LineReporter

    out = io.StringIO()
    lines = LineReporter(out, every_s=0.0, clock=lambda: 0.0)
    lines.emit(_run(), _status(0, 0, 0.1))
    assert out.getvalue() == ""
    lines.emit(_run(), _status(10, 100, 0.2))
    assert out.getvalue().startswith("run run123: copied 10/100")


def test_the_progress_bar_fits_in_80_columns():
    import io
    import re

    from rich.console import Console

    from reindex_fsm.progress import BarReporter

    clock = [0.0]
    out = io.StringIO()
    bar = BarReporter(Console(file=out, force_terminal=True, width=80), clock=lambda: clock[0])
    run = _run()
    bar.emit(run, _status(1000, 123456, 1.0))
    clock[0] = 10.0
    bar.emit(run, _status(61234, 123456, 10.0))
    bar.close()
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    rows = [row for row in re.split(r"[\r\n]", plain) if row.strip()]
    final = rows[-1]
    assert "61234/123456" in final and "ETA" in final and "/s" in final, rows
    assert all(len(row) <= 80 for row in rows)


def test_history_shows_a_running_runs_stored_progress(cfg, fake):
    from reindex_fsm import api

    fake.task_script = TaskScript(stall=True)
    run = Config(state_db=cfg.state_db).repo()
    opts = api.RunOptions()
    p = api.plan(cfg, ALIAS, opts)
    record = api._create_run(run, fake, p, opts)
    run.checkpoint(record.id, record.state, progress={"total": 2500, "created": 1200})
    table = invoke(cfg, "history").stdout
    assert "1200/2500 copied" in table


def test_the_confirmation_shows_the_plans_warnings_when_present():
    from types import SimpleNamespace

    from reindex_fsm import render

    plan = SimpleNamespace(
        alias="a", source_index="a-1", target_index="a-2", source_count=3000, shrink=True
    )
    opts = SimpleNamespace(
        verify=False, write_policy="block", requests_per_second=None, recompute_embeddings=False
    )
    lines = render.confirmation(plan, opts)
    assert any("verification is OFF" in line for line in lines)
    assert any("far fewer documents" in line for line in lines)
    assert any("about 1s" in line and "5,000" in line for line in lines)
    quiet = render.confirmation(
        SimpleNamespace(**{**vars(plan), "shrink": None}),
        SimpleNamespace(**{**vars(opts), "verify": True}),
    )
    assert not [line for line in quiet if line.startswith("warning")]
