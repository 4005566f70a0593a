"""The read-only path of ``show`` and ``history`` over a SQLite state database, with the
standard library's ``sqlite3`` alone: opening SQLAlchemy and Alembic costs more than the
whole command should, and these verbs only read.

:func:`open_reader` gives a reader only when the URL is a plain SQLite file that exists
and whose schema is already at :data:`HEAD_REVISION` (tests/test_startup.py checks it
against Alembic's real head); anything else (another database, a file that needs a
migration, a missing file, one that cannot be read as is) gets None, and the caller opens
the database the usual way (reindex_fsm.store.open_store), with its behaviour and
messages. The rows become records through the same mapping as the SQLAlchemy repository
(:meth:`RunRecord.from_row`, :meth:`EventRecord.from_row`); only the column types are
decoded here, as SQLAlchemy's JSON and DateTime types do on SQLite.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import RunNotFound, StateStoreError
from ..machine import State
from .records import (
    EVENT_COLUMNS,
    EVENT_DATETIME_COLUMNS,
    EVENT_JSON_COLUMNS,
    RUN_COLUMNS,
    RUN_DATETIME_COLUMNS,
    RUN_JSON_COLUMNS,
    EventRecord,
    RunRecord,
    utcnow,
)

# The newest Alembic revision of migrations/versions: a database there needs no migration.
HEAD_REVISION = "0004"
_PREFIX = "sqlite:///"
# SQLAlchemy's DateTime on SQLite: the text it binds a datetime as (its tzinfo dropped).
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def open_reader(url: str) -> SqliteReader | None:
    """A reader of the SQLite file ``url`` names (a SQLAlchemy URL), opened read-only, if
    it is at the head revision; else None (the caller takes the SQLAlchemy way)."""
    if not url.startswith(_PREFIX):  # another database, another driver, in memory
        return None
    path = url[len(_PREFIX) :]
    if not path or path == ":memory:" or path.startswith("file:") or any(c in path for c in "?%"):
        return None  # query parameters, URI files, escapes: SQLAlchemy's to interpret
    file = Path(path)
    if not file.is_file():
        return None  # the usual way says there is no state database
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:  # no schema yet, a hot journal to roll back: the usual way
        conn.close()
        return None
    if versions != [(HEAD_REVISION,)]:
        conn.close()
        return None
    return SqliteReader(conn, url)


def _decoded(
    columns: tuple[str, ...],
    row: tuple[Any, ...],
    json_columns: tuple[str, ...],
    times: tuple[str, ...],
) -> SimpleNamespace:
    values = dict(zip(columns, row, strict=True))
    for key in json_columns:
        if values[key] is not None:
            values[key] = json.loads(values[key])
    for key in times:
        if values[key] is not None:
            values[key] = datetime.fromisoformat(values[key])
    return SimpleNamespace(**values)


class SqliteReader:
    """The reads of :class:`reindex_fsm.store.repository.RunRepository` that ``show`` and
    ``history`` use, over one read-only connection."""

    def __init__(self, conn: sqlite3.Connection, url: str, now: Callable[[], datetime] = utcnow):
        self.conn = conn
        self.url = url
        self.now = now

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:  # as the repository's _Translate words it
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StateStoreError(f"state database {self.url} failed: {reason}") from exc

    def _runs(self, where: str, params: tuple[Any, ...], tail: str = "") -> list[RunRecord]:
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs{where}{tail}"
        return [
            RunRecord.from_row(_decoded(RUN_COLUMNS, r, RUN_JSON_COLUMNS, RUN_DATETIME_COLUMNS))
            for r in self._rows(sql, params)
        ]

    def get(self, run_id: str) -> RunRecord:
        found = self._runs(" WHERE id = ?", (run_id,))
        if not found:
            raise RunNotFound(run_id)
        return found[0]

    def list(
        self,
        *,
        alias: str | None = None,
        state: State | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if alias:
            clauses.append("alias = ?")
            params.append(alias)
        if state:
            clauses.append("state = ?")
            params.append(state.value)
        if since:
            clauses.append("created_at >= ?")
            params.append(since.strftime(_SQLITE_DATETIME))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        tail = " ORDER BY created_at DESC, id DESC"
        if limit:
            tail += " LIMIT ?"
            params.append(limit)
        return self._runs(where, tuple(params), tail)

    def events(self, run_id: str) -> builtins.list[EventRecord]:  # `list` is a method here
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM run_events WHERE run_id = ? ORDER BY id"
        return [
            EventRecord.from_row(
                _decoded(EVENT_COLUMNS, r, EVENT_JSON_COLUMNS, EVENT_DATETIME_COLUMNS)
            )
            for r in self._rows(sql, (run_id,))
        ]

    def close(self) -> None:
        self.conn.close()
