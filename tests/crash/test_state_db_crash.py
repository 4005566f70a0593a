"""SIGKILL while the CLI creates (migrates) a fresh state database.

The first command on a new state database runs the Alembic migration. pysqlite by itself
commits each CREATE TABLE on its own, so a process killed between them used to leave half
a schema and a database every later command refused (exit 9) until deleted by hand; the
store now makes SQLite's DDL transactional. This kills the real CLI (`reindex-fsm
history`) right after the N-th CREATE TABLE of the migration, then runs it again.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CaseResult, cli_env, run_cli

pytestmark = pytest.mark.crash

# The CLI's own main(), with a SQLAlchemy hook that SIGKILLs the process at a chosen DDL
# statement of the migration (there is no crash point inside the migration).
KILL_DURING_MIGRATION = """
import os, signal, sys
import sqlalchemy.engine
from sqlalchemy import event

created = []

@event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
def _die(conn, cursor, statement, *args):
    if statement.lstrip().upper().startswith("CREATE TABLE"):
        created.append(statement)
        if len(created) == int(os.environ["KILL_AT_CREATE"]):
            os.kill(os.getpid(), signal.SIGKILL)

from reindex_fsm.cli import main
sys.argv = ["reindex-fsm", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_kill_while_creating_the_state_db(
    tmp_path: Path, crash_result: CaseResult, kill_at: int
) -> None:
    crash_result.kind = "state-db"
    db = tmp_path / "state.db"
    killed = subprocess.run(
        # a command that may create the database (show and history only read one): the
        # dry run opens it before it asks the (unreachable) engine anything
        [
            sys.executable,
            "-c",
            KILL_DURING_MIGRATION,
            "start",
            "--alias",
            "a",
            "--dry-run",
            "--json",
            "--engine-url",
            "http://127.0.0.1:9",
            "--state-db",
            str(db),
        ],
        env={**cli_env(), "KILL_AT_CREATE": str(kill_at)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-2000:])
    crash_result.landed = "-"

    again = run_cli(["history", "--json", "--state-db", str(db)])
    assert again.rc == 0, f"state database unusable after the kill: {again.out.strip()}"
    assert again.json() == []
    crash_result.passed = True
