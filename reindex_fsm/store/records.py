"""The records a read of the state database returns (a run, its events, its origin) and
the one mapping from a row's column values to them, shared by the SQLAlchemy repository
(repository.py) and the read-only SQLite reader of ``show`` and ``history`` (reader.py).

No SQLAlchemy here: the CLI's read verbs import this module without it. The column
names whose stored text is JSON or a timestamp are listed for the reader, which decodes
them as SQLAlchemy's types do; tests/test_startup.py checks them against models.py.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from ..machine import TERMINAL, State

# Columns stored as JSON text and as timestamps (SQLAlchemy's JSON and DateTime types).
RUN_JSON_COLUMNS = ("options", "plan", "progress", "write_policy", "verification", "swap_record")
RUN_DATETIME_COLUMNS = ("created_at", "updated_at", "finished_at")
EVENT_COLUMNS = ("id", "run_id", "at", "from_state", "to_state", "trigger", "detail")
EVENT_JSON_COLUMNS = ("detail",)
EVENT_DATETIME_COLUMNS = ("at",)
BATCH_PREFIX = "batch-"  # run IDs are 12 hex digits: a batch ID is never one


def is_batch_id(text: str) -> bool:
    """``text`` names a batch (not a run): what resume, abort and show tell apart by."""
    return text.startswith(BATCH_PREFIX)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class RunRecord:
    """A snapshot of one run row."""

    id: str
    alias: str
    source_index: str
    target_index: str
    state: State
    failed_from: State | None
    options: dict[str, Any]
    plan: dict[str, Any]
    engine_url: str
    engine_flavor: str
    engine_version: str
    task_id: str | None
    copy_attempts: int
    source_count: int | None
    target_count: int | None
    progress: dict[str, Any] | None
    error: str | None
    error_kind: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    write_policy: dict[str, Any] | None = None
    verification: dict[str, Any] | None = None
    cluster_uuid: str | None = None
    swap_record: dict[str, Any] | None = None
    batch_id: str | None = None
    plan_path: str | None = None
    plan_hash: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> RunRecord:
        """From a row of ``runs`` whose columns are attributes holding decoded values
        (a SQLAlchemy row, or the reader's)."""
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        values["state"] = State(row.state)
        values["failed_from"] = State(row.failed_from) if row.failed_from else None
        for key in ("created_at", "updated_at", "finished_at"):
            values[key] = _aware(values[key])
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_id": self.id}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "id":
                continue
            if isinstance(value, State):
                value = value.value
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[f.name] = value
        return out


# Every column of ``runs``, in the record's order.
RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))


@dataclass(frozen=True)
class RunOrigin:
    """Where a run came from: the batch that made it and the plan file (its path and the
    SHA-256 of its bytes), stored with the run. All None: a run started on its own."""

    batch_id: str | None = None
    plan_path: str | None = None
    plan_hash: str | None = None

    def columns(self) -> dict[str, str | None]:
        return {"batch_id": self.batch_id, "plan_path": self.plan_path, "plan_hash": self.plan_hash}


@dataclass(frozen=True)
class EventRecord:
    id: int
    run_id: str
    at: datetime
    from_state: str | None
    to_state: str
    trigger: str
    detail: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Any) -> EventRecord:
        """From a row of ``run_events`` (decoded values as attributes, as for runs)."""
        return cls(
            id=row.id,
            run_id=row.run_id,
            at=_aware(row.at),  # type: ignore[arg-type]
            from_state=row.from_state,
            to_state=row.to_state,
            trigger=row.trigger,
            detail=row.detail,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "from": self.from_state,
            "to": self.to_state,
            "trigger": self.trigger,
            "detail": self.detail,
        }
