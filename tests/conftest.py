"""Shared fixtures: a fake cluster with a realistic source behind an alias, and a Config
wired to it with a temporary state database (real Alembic migrations), a fixed
clock and a sleep that takes no time.

No test sees the operator's settings: every ``REINDEX_FSM_*`` variable the tool reads (its
cluster URL and credentials, its state database, its log format, ...) is removed from the
environment for the whole session, so a CLI run in-process or as a subprocess never reaches
the operator's cluster or database. The suites' own variables stay (``TEST_VARIABLES``: the
test engine and PostgreSQL URLs, the invariants seed, the test-engine launcher's settings).
A test that checks how the tool reads one of them sets it itself (``monkeypatch.setenv``).
The real engine of the integration and crash suites: ``tests/support/engine.py``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from devtools.engine import VARIABLES as ENGINE_LAUNCHER_VARIABLES
from reindex_fsm.api import Config
from reindex_fsm.crashpoints import Crashpoints
from reindex_fsm.store import open_store
from reindex_fsm.testing.fake import FakeEngine

# engine_url: the integration and crash suites' engine; capabilities: @pytest.mark.needs;
# pytester: the tests of that plugin (tests/test_capabilities.py)
pytest_plugins = ["tests.support.engine", "tests.support.capabilities", "pytester"]

# Variables of the test suites and tools, not of the operator's tool: kept.
TEST_VARIABLES = frozenset(
    {
        "REINDEX_FSM_TEST_ENGINE_URL",
        "REINDEX_FSM_TEST_POSTGRES_URL",
        "REINDEX_FSM_INVARIANTS_SEED",
        "REINDEX_FSM_POSTGRES_HOME",
        *ENGINE_LAUNCHER_VARIABLES,
    }
)


def operator_variables(environ: Mapping[str, str]) -> list[str]:
    """The names in ``environ`` that reindex-fsm may read as the operator's settings."""
    return sorted(k for k in environ if k.startswith("REINDEX_FSM_") and k not in TEST_VARIABLES)


@pytest.fixture(scope="session", autouse=True)
def without_operator_environment() -> Iterator[None]:
    """The whole session runs without the operator's REINDEX_FSM_* settings."""
    with pytest.MonkeyPatch.context() as mp:
        for name in operator_variables(os.environ):
            mp.delenv(name)
        yield


def _sqlite_without_fsync(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute("PRAGMA synchronous=OFF")


@pytest.fixture(scope="session", autouse=True)
def sqlite_without_fsync() -> Iterator[None]:
    """Every SQLite state database this test process opens commits without fsync (PRAGMA
    synchronous=OFF): an fsync costs ~18 ms here and a run commits dozens of times, which
    was most of the unit suite's wall time. Only the operating system crashing loses such a
    commit; a process killed (the crash suite's subprocesses, which keep the product's own
    settings) does not. The product's settings are reindex_fsm.store's and stay as they are
    for real runs."""
    event.listen(Engine, "connect", _sqlite_without_fsync)
    yield
    event.remove(Engine, "connect", _sqlite_without_fsync)


# The stateful invariant test (tests/test_invariants.py): every run of it has a fixed
# seed (REINDEX_FSM_INVARIANTS_SEED=<int> explores others), so a failure replays; no
# example database in the tree. "invariants-quick" runs in the unit suite (two halves of
# 250); "invariants" (two halves of 2,500, 5,000 in all) and "invariants-slow" (2,000
# schedules of 12 steps) are marked slow, so they run in CI's full suite.
_INVARIANTS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile(
    "invariants-quick", max_examples=250, stateful_step_count=4, **_INVARIANTS
)
settings.register_profile("invariants", max_examples=2500, stateful_step_count=4, **_INVARIANTS)
settings.register_profile(
    "invariants-slow", max_examples=2000, stateful_step_count=12, **_INVARIANTS
)

ALIAS = "documents"
SOURCE = "documents-v1"
NOW = datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)
TARGET = "documents-20261125030000"
N_DOCS = 2500

SOURCE_SETTINGS = {
    "index.number_of_shards": "3",
    "index.number_of_replicas": "1",
    "index.refresh_interval": "5s",
    "index.analysis.analyzer.folded.type": "custom",
    "index.analysis.analyzer.folded.tokenizer": "standard",
    "index.analysis.analyzer.folded.filter": ["lowercase", "asciifolding"],
}
SOURCE_MAPPINGS = {
    "dynamic_templates": [
        {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}
    ],
    "properties": {
        "title": {"type": "text", "analyzer": "folded", "fields": {"raw": {"type": "keyword"}}},
        "tags": {"type": "keyword"},
        "comments": {"type": "nested", "properties": {"body": {"type": "text"}}},
    },
}


def make_docs(n: int = N_DOCS) -> dict[str, dict[str, Any]]:
    return {
        f"doc-{i:05d}": {
            "title": f"Document {i}",
            "tags": [f"t{i % 7}"],
            "comments": [{"body": f"comment {i}"}],
        }
        for i in range(n)
    }


# The source documents by count, made once: add_index copies what it is given, so no test
# can change these (make_docs itself still returns new documents for a test to change).
_SOURCE_DOCS: dict[int, dict[str, dict[str, Any]]] = {}


def make_cluster(n_docs: int = N_DOCS) -> FakeEngine:
    fake = FakeEngine()
    if n_docs not in _SOURCE_DOCS:
        _SOURCE_DOCS[n_docs] = make_docs(n_docs)
    fake.add_index(
        SOURCE,
        _SOURCE_DOCS[n_docs],
        settings=SOURCE_SETTINGS,
        mappings=SOURCE_MAPPINGS,
        aliases={
            ALIAS: {"is_write_index": True},
            "documents-public": {
                "filter": {"term": {"tags": "t1"}},
                "index_routing": "1",
                "search_routing": "1",
            },
        },
    )
    return fake


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@pytest.fixture
def fake() -> FakeEngine:
    return make_cluster()


ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL_ENV = "REINDEX_FSM_TEST_POSTGRES_URL"

# Parametrize a test that uses ``state_db`` (or ``cfg``) over both state stores:
#   @pytest.mark.parametrize("state_db", STORES, indirect=True)
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server whose role may create databases: REINDEX_FSM_TEST_POSTGRES_URL,
    else a throwaway local server started by scripts/postgres.sh (one per test process) and
    stopped at the end of the session."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        yield url
        return
    home = tempfile.mkdtemp(prefix="reindex-fsm-postgres-")
    env = {**os.environ, "REINDEX_FSM_POSTGRES_HOME": home}
    script = str(ROOT / "scripts" / "postgres.sh")
    started = subprocess.run(
        ["bash", script, "start"], env=env, capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        pytest.fail(
            f"no PostgreSQL for the postgres tests: set {POSTGRES_URL_ENV} or make "
            f"scripts/postgres.sh start work:\n{started.stderr}",
            pytrace=False,
        )
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, check=False)


@pytest.fixture
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty state database: SQLite in tmp_path, or (param "postgres") a new schema
    on the test PostgreSQL server, the only one on the URL's search_path, dropped afterwards
    (a schema is made in milliseconds, a database takes half a second)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = make_url(request.getfixturevalue("postgres_server"))
    schema = f"reindex_fsm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = server.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def make_config(
    fake: FakeEngine,
    state_db: str,
    crash: Callable[[], Crashpoints] | None = None,
) -> Config:
    clock = FakeClock()
    return Config(
        state_db=state_db,
        engine_url=fake.url,
        engine_factory=lambda url, kind, **kw: fake,
        now=lambda: NOW,
        clock=clock,
        sleep=clock.sleep,
        crash=crash or (lambda: Crashpoints()),
    )


@pytest.fixture
def cfg(fake: FakeEngine, state_db: str) -> Config:
    return make_config(fake, state_db)


def db_rows(state_db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for before/after comparisons."""
    from sqlalchemy import text

    repo = open_store(state_db)
    with repo.engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))]
            for t in ("runs", "run_events", "alias_locks")
        }
