"""``show`` and ``history``: the verbs that only read the state database (re-exported by
api.py). Light to import, for the CLI's start-up: on a SQLite file already at the schema
head they read through reindex_fsm.store.reader (the standard library's sqlite3), else
through the SQLAlchemy repository as every other verb does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import report
from .errors import UsageError
from .flags import HISTORY_LIMIT
from .machine import State
from .store import EventRecord, RunRecord
from .store.reader import SqliteReader, open_reader

if TYPE_CHECKING:
    from .config import Config
    from .store import RunRepository

# What every start, resume and show prints (and the human summary shows, when set).
KEY_FIELDS = (
    "run_id",
    "state",
    "alias",
    "source_index",
    "target_index",
    "task_id",
    "source_count",
    "target_count",
    "error",
)
SUMMARY_FIELDS = (
    *KEY_FIELDS,
    "error_kind",
    "failed_from",
    "copy_attempts",
    "progress",
    "engine_url",
    "created_at",
    "updated_at",
    "finished_at",
    "write_policy",
    "verification",
    "plan_path",  # the plan file a run was made from (apply), and the SHA-256 of its bytes
    "plan_hash",
)


def summary(record: RunRecord) -> dict[str, Any]:
    full = record.as_dict()
    return {k: full[k] for k in SUMMARY_FIELDS}


def read_store(cfg: Config) -> RunRepository | SqliteReader:
    """Where show and history read: the read-only SQLite reader when the database allows
    it (and no repository was given to ``cfg``), else ``cfg``'s repository, read-only."""
    if cfg._repo is None:
        reader = open_reader(cfg.state_db_url())
        if reader is not None:
            return reader
    return cfg.repo(read_only=True)


def show(cfg: Config, run_id: str) -> tuple[RunRecord, list[EventRecord]]:
    repo = read_store(cfg)
    record = repo.get(run_id)
    return record, repo.events(run_id)


def show_picture(
    cfg: Config, run_id: str, report_file: str | None = None
) -> tuple[RunRecord, list[EventRecord], dict[str, Any]]:
    """`show`: the run, its events and its picture (timeline, time in each state, task
    status, error, Mermaid diagram); with ``report_file``, also written there as one
    self-contained HTML page."""
    repo = read_store(cfg)
    record = repo.get(run_id)
    events = repo.events(run_id)
    now = repo.now()  # the clock of the stored timestamps
    if report_file:
        page = report.html_report(record, events, now)
        try:
            Path(report_file).write_text(page, encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot write the report to {report_file}: {exc.strerror or exc}",
                hint="give a writable file path to --report",
            ) from exc
    return record, events, report.build(record, events, now)


def _wanted(state: str | None, limit: int | None) -> State | None:
    """The state asked for; the arguments are checked before the database is opened."""
    try:
        wanted = State(state.upper()) if state else None
    except ValueError as exc:
        raise UsageError(
            f"unknown state {state!r}", hint=f"one of {', '.join(s.value for s in State)}"
        ) from exc
    if limit is not None and limit < 1:
        raise UsageError(f"--limit {limit} must be 1 or more")
    return wanted


def history(
    cfg: Config,
    alias: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    limit: int | None = HISTORY_LIMIT,
) -> list[RunRecord]:
    wanted = _wanted(state, limit)
    return read_store(cfg).list(alias=alias, state=wanted, since=since, limit=limit)


def history_rows(
    cfg: Config,
    alias: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    limit: int | None = HISTORY_LIMIT,
) -> list[dict[str, Any]]:
    """`history`: each run's summary with its duration (so far, if unfinished) and result."""
    wanted = _wanted(state, limit)
    repo = read_store(cfg)
    runs = repo.list(alias=alias, state=wanted, since=since, limit=limit)
    now = repo.now()  # the clock of the stored timestamps
    return [
        {**summary(r), "duration_s": report.duration_s(r, now), "result": report.result(r)}
        for r in runs
    ]
