"""Start-up: the CLI's command tree, completion and the read verbs load none of the heavy
libraries, and ``show``/``history`` read a SQLite file at the schema head through the
standard library's sqlite3 (reindex_fsm.store.reader) with output identical to the
SQLAlchemy repository's.

What a fresh process imported is asked of that process itself (tests/support/loaded.py
runs the CLI and writes its loaded modules to a file); nothing here is timed (the timings
are bench/bench_startup.py's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reindex_fsm import reads
from reindex_fsm.cli import cli
from reindex_fsm.config import Config
from reindex_fsm.machine import TERMINAL, State
from reindex_fsm.store import RunOrigin, open_store
from reindex_fsm.store import reader as reader_module
from reindex_fsm.store.records import (
    EVENT_COLUMNS,
    EVENT_DATETIME_COLUMNS,
    EVENT_JSON_COLUMNS,
    RUN_COLUMNS,
    RUN_DATETIME_COLUMNS,
    RUN_JSON_COLUMNS,
)

LOADED = Path(__file__).parent / "support" / "loaded.py"
# Never loaded by --help, a subcommand's --help or completion.
TREE_HEAVY = (
    "sqlalchemy",
    "alembic",
    "elasticsearch",
    "opensearchpy",
    "numpy",
    "prometheus_client",
    "yaml",
    "transitions",
    "reindex_fsm.store.repository",
    "reindex_fsm.store.database",
    "reindex_fsm.engine.connect",
    "reindex_fsm.api",
    "rich.segment",  # rich's console: only what prints a table needs it
)
# Never loaded by history or show on a SQLite file at the schema head.
READ_HEAVY = (
    "sqlalchemy",
    "alembic",
    "elasticsearch",
    "opensearchpy",
    "numpy",
    "prometheus_client",
    "yaml",
    "reindex_fsm.store.repository",
    "reindex_fsm.store.database",
    "reindex_fsm.api",
)
COMMANDS = sorted(cli.commands)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=5)


def loaded_by(args: list[str], tmp_path: Path, **env: str) -> tuple[set[str], str]:
    """The modules a fresh ``reindex-fsm ARGS`` process had loaded when it ended, and its
    stdout."""
    out = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.json"
    proc = subprocess.run(
        [sys.executable, str(LOADED), str(out), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
        timeout=120,
    )
    assert out.exists(), proc.stderr
    return set(json.loads(out.read_text())), proc.stdout


def _assert_none(modules: set[str], heavy: tuple[str, ...]) -> None:
    assert sorted(m for m in modules if m in heavy) == []


def test_the_module_list_is_real(tmp_path):
    """The wrapper does see heavy modules when a command loads them: a start's --dry-run
    against no engine opens the state store (SQLAlchemy) before it fails."""
    db = tmp_path / "state.db"
    modules, _ = loaded_by(
        ["start", "--alias", "a", "--dry-run", "--engine-url", "http://127.0.0.1:9"],
        tmp_path,
        REINDEX_FSM_STATE_DB=str(db),
    )
    assert "reindex_fsm.api" in modules
    assert "sqlalchemy" in modules


def test_help_loads_no_heavy_module(tmp_path):
    modules, stdout = loaded_by(["--help"], tmp_path)
    assert "Usage: reindex-fsm" in stdout
    _assert_none(modules, TREE_HEAVY)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_help_loads_no_heavy_module(tmp_path, command):
    modules, stdout = loaded_by([command, "--help"], tmp_path)
    assert f"Usage: reindex-fsm {command}" in stdout
    _assert_none(modules, TREE_HEAVY)


@pytest.mark.parametrize(
    ("shell", "env"),
    [
        ("bash", {"COMP_WORDS": "reindex-fsm start --", "COMP_CWORD": "2"}),
        ("zsh", {"COMP_WORDS": "reindex-fsm start --", "COMP_CWORD": "2"}),
        ("fish", {"COMP_WORDS": "reindex-fsm start --", "COMP_CWORD": "--"}),
    ],
)
def test_completion_loads_no_heavy_module(tmp_path, shell, env):
    modules, stdout = loaded_by([], tmp_path, _REINDEX_FSM_COMPLETE=f"{shell}_complete", **env)
    assert "--alias" in stdout  # completion did run: start's options were offered
    _assert_none(modules, TREE_HEAVY)


def test_completion_script_loads_no_heavy_module(tmp_path):
    modules, stdout = loaded_by(["completion", "bash"], tmp_path)
    assert "_REINDEX_FSM_COMPLETE" in stdout
    _assert_none(modules, TREE_HEAVY)


# -- a database with runs in every state -------------------------------------------------


def _fill(url: str) -> list[str]:
    """Runs in every state (some in a batch, some from a plan file, one with text that
    looks like markup), with events, JSON columns and timestamps; their IDs."""
    clock = [T0]

    def now() -> datetime:
        clock[0] += timedelta(seconds=37, microseconds=123457)
        return clock[0]

    repo = open_store(url)
    repo.now = now
    ids = []
    for i, state in enumerate(State):
        run_id = f"{i:012x}"
        origin = (
            RunOrigin(batch_id="batch-0000000000aa")
            if i % 3 == 0
            else RunOrigin(plan_path="/plans/p.yaml", plan_hash="ab" * 32)
            if i % 3 == 1
            else RunOrigin()
        )
        repo.create(
            {
                "id": run_id,
                "alias": "docs" if state in TERMINAL else f"a{i}",  # one unfinished per alias
                "source_index": f"src-{i}",
                "target_index": f"docs-{i}",
                "options": {"verify": True, "rate": None, "list": [1, 2]},
                "plan": {"alias": "docs", "nested": {"a": [1, {"b": None}]}},
                "engine_url": "http://127.0.0.1:9200",
                "engine_flavor": "opensearch",
                "engine_version": "2.19.6",
                "source_count": 100 * i,
                **origin.columns(),
            },
            {"planned": i},
        )
        if state is State.PLANNED:
            ids.append(run_id)
            continue
        repo.transition(run_id, State.PLANNED, State.TARGET_CREATED, "create_target")
        repo.checkpoint(
            run_id,
            State.TARGET_CREATED,
            "write_block",
            {"index": f"src-{i}"},
            write_policy={"mode": "block", "index": f"src-{i}", "blocked": i % 2 == 0},
        )
        repo.transition(
            run_id,
            State.TARGET_CREATED,
            State.REINDEXING,
            "start_copy",
            task_id=f"node:{i}",
            progress={"created": 10 * i, "total": 100 * i},
            copy_attempts=1,
        )
        if state is not State.REINDEXING:
            repo.transition(
                run_id,
                State.REINDEXING,
                state,
                "fail" if state is State.FAILED else "done",
                {"why": "[bold]not markup[/bold]"} if state is State.FAILED else None,
                target_count=100 * i if i % 2 else None,
                error="engine said [x] no" if state is State.FAILED else None,
                error_kind="copy" if state is State.FAILED else None,
                failed_from=State.REINDEXING if state is State.FAILED else None,
                verification={"passed": i % 2 == 1, "notes": ["n [1]"]},
            )
        ids.append(run_id)
    return ids


@pytest.fixture
def filled(tmp_path: Path) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    return url, _fill(url)


def _outputs(url: str, ids: list[str], report_dir: Path) -> dict[str, Any]:
    """What history and show print, for every filter and flag, with the clock fixed."""
    runs: list[tuple[str, ...]] = [
        (),
        ("--json",),
        ("--alias", "docs"),
        ("--alias", "docs", "--json"),
        ("--state", "failed"),
        ("--state", "REINDEXING", "--json"),
        ("--since", "2026-03-01T12:03:00"),
        ("--since", "2026-03-01T12:03:00", "--json"),
        ("--limit", "3"),
        ("--limit", "2", "--alias", "docs", "--json"),
        ("--state", "nope"),
        ("--limit", "0"),
    ]
    results: dict[str, Any] = {}
    for args in runs:
        result = CliRunner().invoke(cli, ["history", *args], obj=Config(state_db=url))
        results[" ".join(("history", *args))] = (result.exit_code, result.output)
    for run_id in [*ids, "ffffffffffff"]:
        for args in ((), ("--json",), ("--diagram",)):
            result = CliRunner().invoke(cli, ["show", run_id, *args], obj=Config(state_db=url))
            results[" ".join(("show", run_id, *args))] = (result.exit_code, result.output)
    report = report_dir / f"report-{len(list(report_dir.iterdir()))}.html"
    result = CliRunner().invoke(
        cli, ["show", ids[5], "--report", str(report)], obj=Config(state_db=url)
    )
    results["show --report"] = (result.exit_code, result.output.replace(str(report), "R"))
    results["report page"] = report.read_text()
    return results


def test_both_read_paths_print_the_same(filled, tmp_path, monkeypatch):
    url, ids = filled
    opened: list[object] = []
    real_open, real_store = reader_module.open_reader, reads.read_store

    def spying_open(given: str) -> object:
        found = real_open(given)
        opened.append(found)
        return found

    def fixed_clock(cfg: Config) -> Any:
        store = real_store(cfg)
        store.now = lambda: NOW  # both paths read "now" from the store they read
        return store

    monkeypatch.setattr(reads, "open_reader", spying_open)
    monkeypatch.setattr(reads, "read_store", fixed_clock)
    (tmp_path / "fast").mkdir()
    fast = _outputs(url, ids, tmp_path / "fast")
    assert opened and all(isinstance(o, reader_module.SqliteReader) for o in opened)

    monkeypatch.setattr(reads, "open_reader", lambda _url: None)  # the SQLAlchemy way
    (tmp_path / "slow").mkdir()
    slow = _outputs(url, ids, tmp_path / "slow")
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key] == slow[key], key
    # and the outputs are not empty look-alikes
    assert len(json.loads(fast["history --json"][1])) == len(State)
    assert fast["show ffffffffffff"][0] != 0
    assert fast["history --state nope"][0] != 0


def test_history_and_show_load_no_heavy_module(filled, tmp_path):
    url, ids = filled
    db = url.removeprefix("sqlite:///")
    modules, stdout = loaded_by(["history", "--state-db", db], tmp_path)
    assert ids[-1] in stdout
    _assert_none(modules, READ_HEAVY)
    modules, stdout = loaded_by(["show", ids[5], "--state-db", db], tmp_path)
    assert f"timeline of run {ids[5]}" in stdout
    _assert_none(modules, READ_HEAVY)


def test_a_database_behind_the_head_takes_the_usual_way(filled, tmp_path):
    """An older schema (here: a revision number that is not the head) is not read by the
    sqlite3 reader: the usual path opens (and migrates or refuses) it."""
    import sqlite3

    url, _ids = filled
    db = url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    assert reader_module.open_reader(url) is None
    assert reader_module.open_reader(url.replace(".db", "-missing.db")) is None
    assert reader_module.open_reader("postgresql://u@h/db") is None
    assert reader_module.open_reader(url + "?mode=ro") is None


def test_a_missing_database_keeps_its_message(tmp_path):
    result = CliRunner().invoke(cli, ["history"], obj=Config(state_db=str(tmp_path / "none.db")))
    assert result.exit_code != 0
    assert "none.db" in result.output
    assert not (tmp_path / "none.db").exists()


def test_head_revision_is_alembics_head():
    from alembic.script import ScriptDirectory

    from reindex_fsm.store.database import _migrations_config

    head = ScriptDirectory.from_config(_migrations_config()).get_current_head()
    assert head == reader_module.HEAD_REVISION


def test_decoded_columns_are_the_models_columns():
    from sqlalchemy import JSON, DateTime

    from reindex_fsm.store.models import EventRow, RunRow

    def kinds(table: Any, kind: type) -> set[str]:
        return {c.name for c in table.__table__.columns if isinstance(c.type, kind)}

    assert set(RUN_COLUMNS) == {c.name for c in RunRow.__table__.columns}
    assert set(RUN_JSON_COLUMNS) == kinds(RunRow, JSON)
    assert set(RUN_DATETIME_COLUMNS) == kinds(RunRow, DateTime)
    assert set(EVENT_COLUMNS) == {c.name for c in EventRow.__table__.columns}
    assert set(EVENT_JSON_COLUMNS) == kinds(EventRow, JSON)
    assert set(EVENT_DATETIME_COLUMNS) == kinds(EventRow, DateTime)


def test_a_lazily_bound_module_is_never_half_loaded_for_others():
    """The stand-ins put nothing in sys.modules: a batch's threads importing the api while
    the CLI first uses it get the whole module, never one still loading."""
    code = (
        "import sys, threading\n"
        "import reindex_fsm.cli.run_verbs as rv\n"
        "assert 'reindex_fsm.api' not in sys.modules\n"
        "found = []\n"
        "def plain():\n"
        "    from reindex_fsm import api\n"
        "    found.append(callable(api.resume))\n"
        "def through_cli():\n"
        "    found.append(callable(rv.api.resume))\n"
        "threads = [threading.Thread(target=f) for f in (plain, through_cli) * 4]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "assert found == [True] * 8, found\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr


def _alembic_loaded_by_opening(url: str) -> bool:
    code = (
        "import sys; from reindex_fsm.store import open_store; "
        f"open_store({url!r}); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def test_a_database_at_the_head_opens_without_alembic(tmp_path: Path) -> None:
    """A start, resume or abort opens a writable state database: one at the head is known
    by its alembic_version row alone; only a new (or older) one loads Alembic to migrate."""
    url = f"sqlite:///{tmp_path}/state.db"
    assert _alembic_loaded_by_opening(url)  # new: made and migrated by Alembic
    assert not _alembic_loaded_by_opening(url)  # at the head: one read, no Alembic
    assert open_store(url).list() == []
