"""SQLAlchemy models of the state database. The schema itself is made by the
Alembic migrations under ``migrations/``; these classes describe it, column for column,
index for index and default for default (tests/test_store.py compares the two with
Alembic's autogenerate and fails on any difference)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), index=True)
    source_index: Mapped[str] = mapped_column(String(255))
    target_index: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), index=True)
    failed_from: Mapped[str | None] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    engine_url: Mapped[str] = mapped_column(Text)
    engine_flavor: Mapped[str] = mapped_column(String(32))
    engine_version: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(128))
    copy_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    source_count: Mapped[int | None] = mapped_column(BigInteger)
    target_count: Mapped[int | None] = mapped_column(BigInteger)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Write policy state: the block this run holds on its source, catch-up passes.
    write_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # What the last verification compared and what differed.
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The UUID of the cluster the run was planned on (None: planned before it was stored).
    cluster_uuid: Mapped[str | None] = mapped_column(String(64))
    # What the alias swap found and left, for undo's change detection.
    swap_record: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The batch that made this run (None: a run started on its own).
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The plan file the run was made from, and the SHA-256 of its bytes then.
    plan_path: Mapped[str | None] = mapped_column(Text)
    plan_hash: Mapped[str | None] = mapped_column(String(64))


class BatchRow(Base):
    """Runs started together: the aliases resolved at plan time (``items``: one entry per
    alias, its run ID once made, its per-alias option overrides), the shared options, and
    how the batch drives its runs."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    concurrency: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    slices_budget: Mapped[int | None] = mapped_column(Integer)
    on_failure: Mapped[str] = mapped_column(String(16), default="stop", server_default="stop")
    engine_url: Mapped[str] = mapped_column(Text)
    plan_path: Mapped[str | None] = mapped_column(Text)
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventRow(Base):
    """Append-only history: one row per state change (and per notable checkpoint)."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AliasLockRow(Base):
    """At most one unfinished run per alias: the primary key enforces it."""

    __tablename__ = "alias_locks"

    alias: Mapped[str] = mapped_column(String(255), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
