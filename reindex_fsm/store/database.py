"""Opening the state database: migrate it to head on first use, check a read-only one,
and give its repository (imported on first use by reindex_fsm.store).

A database already at :data:`~.reader.HEAD_REVISION` (the usual case: every open after the
first) is recognised by one read of ``alembic_version``, without importing Alembic (a
tenth of a second of every command's start-up here); Alembic is loaded only to migrate or
to explain a schema that is not this version's. tests/test_startup.py checks that the
constant is Alembic's head.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..errors import NoStateDatabase, StateStoreError
from .location import DEFAULT_STATE_DB, state_db_url
from .reader import HEAD_REVISION
from .repository import RunRepository

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

_MIGRATE_LOCK = threading.Lock()  # alembic's command API keeps global context
# SQLite: the migration's transaction takes the write lock as it begins (BEGIN IMMEDIATE,
# waiting on the busy timeout), so processes opening a new database at once (a start, a
# `show` beside it) take turns; two deferred transactions that both read, then write,
# deadlock, and SQLite fails one at once with "database is locked".
_IMMEDIATE = threading.local()
# PostgreSQL advisory lock key held while checking and applying migrations ("rfsm" in ASCII).
_PG_MIGRATE_LOCK_KEY = 0x7266736D


def _migrations_config() -> Config:
    from alembic.config import Config

    from . import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def _prepare_sqlite_file(path: str) -> None:
    """Create the SQLite file (and its folder) ourselves, mode 0600: it holds run history."""
    if path in ("", ":memory:"):
        return
    file = Path(path)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if not file.exists():
            os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))
        if not os.access(file, os.W_OK) or not os.access(file.parent, os.W_OK):
            raise PermissionError(f"{file} is not writable")
    except OSError as exc:
        raise StateStoreError(
            f"cannot create the state database {file}: {exc.strerror or exc}"
        ) from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite opens transactions only before DML, so the migrations' CREATE TABLEs would
    # each commit on their own and a kill in between would leave half a schema. Let
    # SQLAlchemy's "begin" event emit BEGIN instead (the SQLAlchemy pysqlite recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if getattr(_IMMEDIATE, "on", False) else "BEGIN")


def _sqlite_reader(parsed: URL, shown: str) -> URL | None:
    """For a command that only reads: the file must be there (nothing is created). The
    URL to open it read-only when this process may not write it (the file or its folder),
    else None (opened as usual)."""
    path = parsed.database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    file = Path(path)
    if not file.is_file():
        raise NoStateDatabase(shown)
    if os.access(file, os.W_OK) and os.access(file.parent, os.W_OK):
        return None
    query = {**parsed.query, "mode": "ro", "uri": "true"}
    return parsed.set(database=f"file:{file.resolve()}", query=query)


def _current_revision(conn: Connection) -> str | None:
    """The schema revision stamped in ``alembic_version`` (None: not a state database yet),
    read as Alembic's MigrationContext reads it, without loading Alembic."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    if len(rows) > 1:  # the migrations have one branch: never stamped so by this tool
        raise StateStoreError(f"state database has several schema revisions: {rows}")
    return rows[0][0] if rows else None


def _read_revision(engine: Engine, shown: str) -> str | None:
    try:
        with engine.connect() as conn:
            return _current_revision(conn)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StateStoreError(f"cannot read state database {shown}: {reason}") from exc


def _check_schema_readonly(engine: Engine, shown: str) -> None:
    """A database opened read-only is never migrated: its schema must be this version's."""
    current = _read_revision(engine, shown)
    if current == HEAD_REVISION:
        return
    if current is None:
        raise NoStateDatabase(shown)
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_migrations_config())
    head = scripts.get_current_head()
    try:
        known = scripts.get_revision(current) is not None
    except Exception:  # alembic raises its own errors for an unknown revision
        known = False
    if not known:
        raise StateStoreError(
            f"state database {shown} was written by a newer reindex-fsm (schema {current})",
            hint="use that version, or a newer one, to read it",
        )
    raise StateStoreError(
        f"state database {shown} is read-only here and needs an upgrade (schema {current}, "
        f"this reindex-fsm reads {head})",
        hint="run any reindex-fsm command once with write access to it, which upgrades it",
    )


def open_store(url: str | None = None, *, read_only: bool = False) -> RunRepository:
    """Open the state database at ``url`` (a URL or a SQLite file's path; None: the
    default file; reindex_fsm.config.resolve_state_db resolves the environment), migrated
    to head.

    ``read_only`` (show, history): create nothing (NoStateDatabase when there is no
    database); a SQLite file this process may not write is opened read-only and not
    migrated."""
    resolved = state_db_url(url or DEFAULT_STATE_DB)
    try:
        parsed = make_url(resolved)
    except ArgumentError as exc:
        raise StateStoreError(f"not a database URL: {resolved!r}") from exc
    is_sqlite = parsed.get_backend_name() == "sqlite"
    reader: URL | None = None
    if is_sqlite and read_only:
        reader = _sqlite_reader(parsed, _safe(resolved))
        parsed = reader or parsed
    elif is_sqlite:
        _prepare_sqlite_file(parsed.database or "")
    try:
        engine = create_engine(
            parsed, connect_args={"timeout": 30} if is_sqlite else {}, pool_pre_ping=True
        )
    except (SQLAlchemyError, ImportError) as exc:
        raise StateStoreError(f"cannot use state database {_safe(resolved)}: {exc}") from exc
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    if reader is not None:
        _check_schema_readonly(engine, _safe(resolved))
        return RunRepository(engine)
    if read_only and not is_sqlite:
        _require_schema(engine, _safe(resolved))
    migrate(engine)
    return RunRepository(engine)


def _require_schema(engine: Engine, shown: str) -> None:
    """A server database without reindex-fsm's tables is not a state database yet: a
    command that only reads does not create them."""
    if _read_revision(engine, shown) is None:
        raise NoStateDatabase(shown)


def migrate(engine: Engine) -> None:
    """Apply the Alembic migrations up to head, unless the database is there already."""
    try:
        with _MIGRATE_LOCK, engine.connect() as conn:  # at head already: nothing to lock
            if _current_revision(conn) == HEAD_REVISION:
                return
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StateStoreError(
            f"cannot open state database {_safe(str(engine.url))}: {reason}"
        ) from exc
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = _migrations_config()
    scripts = ScriptDirectory.from_config(cfg)
    head = scripts.get_current_head()
    try:
        with _MIGRATE_LOCK, _immediate(), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # A shared database: other processes may be migrating it right now. Wait
                # for them (the lock ends with this transaction; PostgreSQL's DDL is
                # transactional, so they commit the whole schema or none of it).
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATE_LOCK_KEY})")
            current = MigrationContext.configure(conn).get_current_revision()
            if current is not None and not _known_revision(scripts, current):
                raise StateStoreError(
                    f"state database {_safe(str(engine.url))} was written by a newer "
                    f"reindex-fsm: its schema revision {current!r} is unknown to this version "
                    f"(which knows up to {head!r})",
                    hint="upgrade reindex-fsm to the version that wrote it (or a later one), "
                    "or give another --state-db; nothing was changed",
                )
            if current != head:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StateStoreError(
            f"cannot open state database {_safe(str(engine.url))}: {reason}"
        ) from exc


@contextmanager
def _immediate() -> Iterator[None]:
    _IMMEDIATE.on = True
    try:
        yield
    finally:
        _IMMEDIATE.on = False


def _known_revision(scripts: ScriptDirectory, revision: str) -> bool:
    from alembic.script.revision import ResolutionError
    from alembic.util import CommandError

    try:
        return scripts.get_revision(revision) is not None
    except (ResolutionError, CommandError):  # not in this version's migrations: a newer one
        return False


_SECRET_QUERY_KEYS = ("password", "passfile", "sslpassword", "sslkey")


def redact_state_db(url: str) -> str:
    """The state database URL as shown to people and stored anywhere: without ``user:password@``
    and without secrets passed as query parameters (``?password=...``, as libpq allows)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparseable URL>"
    # URL.set() treats None as "keep": _replace is how a field is emptied.
    parsed = parsed._replace(username=None, password=None).difference_update_query(
        _SECRET_QUERY_KEYS
    )
    return parsed.render_as_string(hide_password=False)


_safe = redact_state_db
