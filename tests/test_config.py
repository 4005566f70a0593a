"""reindex_fsm.config: one order for flags, environment, a run's stored values and the
defaults; the state-DB rule (a bare path is SQLite), also in the Alembic environment."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reindex_fsm import config
from reindex_fsm.cli import cli
from reindex_fsm.config import (
    DEFAULT_ENGINE_URL,
    Config,
    ignored_engine_url_env,
    resolve_engine_url,
    resolve_state_db,
)
from reindex_fsm.errors import ExitCode
from reindex_fsm.store import DEFAULT_STATE_DB

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reindex_fsm"


def test_state_db_flag_then_environment_then_default():
    env = {"REINDEX_FSM_STATE_DB": "postgresql://u@h/db"}
    assert resolve_state_db("sqlite:///flag.db", env) == "sqlite:///flag.db"
    assert resolve_state_db(None, env) == "postgresql://u@h/db"
    assert resolve_state_db(None, {}) == DEFAULT_STATE_DB
    assert resolve_state_db(None, {"REINDEX_FSM_STATE_DB": ""}) == DEFAULT_STATE_DB
    assert resolve_state_db(None, {}, default="sqlite:///ini.db") == "sqlite:///ini.db"
    assert resolve_state_db(None, env, default="sqlite:///ini.db") == "postgresql://u@h/db"


def test_a_bare_path_is_a_sqlite_file():
    assert resolve_state_db("/tmp/x.db", {}) == "sqlite:////tmp/x.db"
    assert resolve_state_db("state/x.db", {}) == "sqlite:///state/x.db"
    assert resolve_state_db(None, {"REINDEX_FSM_STATE_DB": "/srv/r.db"}) == "sqlite:////srv/r.db"
    assert resolve_state_db(None, {}, default="rel.db") == "sqlite:///rel.db"


def test_engine_url_flag_then_stored_then_environment_then_default():
    env = {"REINDEX_FSM_ENGINE_URL": "http://env:9200"}
    assert resolve_engine_url("http://flag:9200", "http://stored:9200", env) == "http://flag:9200"
    assert resolve_engine_url(None, "http://stored:9200", env) == "http://stored:9200"
    assert resolve_engine_url(None, None, env) == "http://env:9200"
    assert resolve_engine_url(None, None, {}) == DEFAULT_ENGINE_URL


def test_the_ignored_variable_is_named_only_when_it_differs():
    env = {"REINDEX_FSM_ENGINE_URL": "http://other:9200"}
    warning = ignored_engine_url_env(None, "abc", "http://own:9200", env)
    assert warning == (
        "REINDEX_FSM_ENGINE_URL (http://other:9200) is not used: run abc goes to its own "
        "engine http://own:9200 (give --engine-url to use another node of it)"
    )
    assert ignored_engine_url_env("http://x:9200", "abc", "http://own:9200", env) is None
    assert ignored_engine_url_env(None, "abc", "http://other:9200/", env) is None
    assert ignored_engine_url_env(None, "abc", "http://own:9200", {}) is None


def test_config_resolves_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("REINDEX_FSM_STATE_DB", str(tmp_path / "env.db"))
    monkeypatch.setenv("REINDEX_FSM_ENGINE_URL", "http://env:9200")
    assert Config().state_db_url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert Config(state_db=str(tmp_path / "flag.db")).state_db_url().endswith("flag.db")
    assert Config().resolved_engine_url() == "http://env:9200"
    assert Config().resolved_engine_url("http://stored:9200") == "http://stored:9200"
    assert Config(engine_url="http://f:1").resolved_engine_url("http://stored:9200") == (
        "http://f:1"
    )


def test_the_state_db_flag_wins_over_the_environment(fake, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("REINDEX_FSM_STATE_DB", str(tmp_path / "env.db"))
    flag = tmp_path / "flag.db"
    cfg = Config(engine_factory=lambda *a, **k: fake)
    result = CliRunner().invoke(cli, ["history", "--state-db", str(flag)], obj=cfg)
    assert result.exit_code == ExitCode.RUN_NOT_FOUND  # history creates nothing
    assert str(flag) in result.stderr and "env.db" not in result.stderr


def _alembic_version(db: Path) -> list[tuple[str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()


def test_alembic_upgrade_takes_a_bare_path_from_the_environment(tmp_path: Path):
    """`alembic -c alembic.ini upgrade head` with REINDEX_FSM_STATE_DB a bare path."""
    db = tmp_path / "bare.db"
    env = {"PATH": "/usr/bin:/bin", "REINDEX_FSM_STATE_DB": str(db)}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert len(_alembic_version(db)) == 1


def test_the_migrations_environment_takes_a_bare_path_from_the_ini(monkeypatch, tmp_path: Path):
    from alembic import command

    from reindex_fsm.store import _migrations_config

    monkeypatch.delenv("REINDEX_FSM_STATE_DB", raising=False)
    db = tmp_path / "ini.db"
    cfg = _migrations_config()
    cfg.set_main_option("sqlalchemy.url", str(db))  # a path, no sqlite:///
    command.upgrade(cfg, "head")
    assert len(_alembic_version(db)) == 1


@pytest.mark.parametrize("module", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_only_config_reads_the_environment(module: Path):
    """os.environ is read in config.py; besides, only by the crash points (a test
    mechanism) and the sample-data tool of the test doubles."""
    allowed = {"config.py", "crashpoints.py", "testing/sample.py"}
    name = module.relative_to(PACKAGE).as_posix()
    text = module.read_text(encoding="utf-8")
    reads = re.findall(r"os\.environ|os\.getenv|getenv\(", text)
    if name not in allowed:
        assert reads == [], f"{name} reads the environment: use reindex_fsm.config"
    envvars = re.findall(r'envvar="', text)
    assert envvars == [] or name == "testing/sample.py", f"{name} names an envvar itself"
    assert config.ENV  # every variable is named in config.ENV
