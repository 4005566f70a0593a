"""The run repository: every read and write of the state database goes through here.

Every state change is a compare-and-set on the run row (``UPDATE ... WHERE id=:id
AND state=:from``; not exactly one row means another process moved the run) plus
one appended event row, in one transaction. Entering a terminal state releases
the alias lock in that same transaction.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..errors import LockHeld, RunNotFound, StaleState, StateStoreError
from ..machine import TERMINAL, State
from .models import AliasLockRow, EventRow, RunRow
from .records import EventRecord, RunOrigin, RunRecord, _aware, utcnow

__all__ = ["EventRecord", "RunOrigin", "RunRecord", "RunRepository", "_aware", "utcnow"]


# Columns a step may set along with a state change or checkpoint.
_WRITABLE = {
    "target_index",
    "failed_from",
    "plan",
    "task_id",
    "copy_attempts",
    "source_count",
    "target_count",
    "progress",
    "error",
    "error_kind",
    "write_policy",
    "verification",
    "cluster_uuid",
    "swap_record",
    # `rethrottle` stores the new rate here, so that a restarted copy keeps it.
    "options",
}


class RunRepository:
    def __init__(self, engine: Engine, now: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.now = now

    # -- reads ----------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord:
        with self._translate(), self.engine.connect() as conn:
            row = conn.execute(select(RunRow).where(RunRow.id == run_id)).first()
        if row is None:
            raise RunNotFound(run_id)
        return RunRecord.from_row(row)

    def find(self, run_id: str) -> RunRecord | None:
        try:
            return self.get(run_id)
        except RunNotFound:
            return None

    def active_run_for(self, alias: str) -> RunRecord | None:
        with self._translate(), self.engine.connect() as conn:
            run_id = conn.execute(
                select(AliasLockRow.run_id).where(AliasLockRow.alias == alias)
            ).scalar()
        return self.find(run_id) if run_id else None

    def list(
        self,
        *,
        alias: str | None = None,
        state: State | None = None,
        since: datetime | None = None,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc())
        if alias:
            query = query.where(RunRow.alias == alias)
        if state:
            query = query.where(RunRow.state == state.value)
        if since:
            query = query.where(RunRow.created_at >= since)
        if limit:
            query = query.limit(limit)
        with self._translate(), self.engine.connect() as conn:
            return [RunRecord.from_row(r) for r in conn.execute(query)]

    def events(self, run_id: str) -> builtins.list[EventRecord]:  # `list` is a method here
        query = select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id)
        with self._translate(), self.engine.connect() as conn:
            return [EventRecord.from_row(r) for r in conn.execute(query)]

    # -- writes ---------------------------------------------------------------
    def create(self, values: dict[str, Any], detail: dict[str, Any] | None = None) -> RunRecord:
        """Insert a PLANNED run, take its alias lock, append its first event: one transaction."""
        now = self.now()
        row = {
            "state": State.PLANNED.value,
            "copy_attempts": 0,
            "created_at": now,
            "updated_at": now,
            **values,
        }
        try:
            with self._translate(), self.engine.begin() as conn:
                conn.execute(insert(RunRow).values(**row))
                conn.execute(
                    insert(AliasLockRow).values(
                        alias=row["alias"], run_id=row["id"], acquired_at=now
                    )
                )
                self._event(conn, row["id"], None, State.PLANNED, "plan", detail, now)
        except IntegrityError as exc:
            holder = self.active_run_for(row["alias"])
            if holder is None:  # the holder finished in between: a plain retry will do
                raise StateStoreError(f"could not take the lock on alias {row['alias']!r}") from exc
            raise LockHeld(holder.alias, holder.id, holder.state.value) from exc
        return self.get(row["id"])

    def transition(
        self,
        run_id: str,
        src: State,
        dst: State,
        trigger: str,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> RunRecord:
        """Compare-and-set ``src`` -> ``dst`` with ``values``, plus one event row."""
        now = self.now()
        changes = self._changes(values, now)
        changes["state"] = dst.value
        if dst in TERMINAL:
            changes["finished_at"] = now
        with self._translate(), self.engine.begin() as conn:
            self._cas(conn, run_id, src, changes)
            self._event(conn, run_id, src, dst, trigger, detail, now)
            if dst in TERMINAL:
                conn.execute(delete(AliasLockRow).where(AliasLockRow.run_id == run_id))
        return self.get(run_id)

    def checkpoint(
        self,
        run_id: str,
        state: State,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        **values: Any,
    ) -> RunRecord:
        """Store values within ``state`` (compare-and-set on it); with ``event``, log it too."""
        now = self.now()
        with self._translate(), self.engine.begin() as conn:
            self._cas(conn, run_id, state, self._changes(values, now))
            if event:
                self._event(conn, run_id, state, state, event, detail, now)
        return self.get(run_id)

    # -- undo -------------------------------------------------------------------------
    def lock_for_undo(self, run_id: str) -> None:
        """Take the alias lock again for a SWAPPED run about to be undone. Holding it
        already (an interrupted undo) is fine; another run holding it raises LockHeld.
        Only undo moves a run out of SWAPPED, and only under this lock, so the lock row
        is the mutual exclusion; entering UNDONE frees it. The run row is not written."""
        now = self.now()
        record = self.get(run_id)
        try:
            with self._translate(), self.engine.begin() as conn:
                state = conn.execute(select(RunRow.state).where(RunRow.id == run_id)).scalar()
                if state != State.SWAPPED.value:
                    raise StaleState(run_id, State.SWAPPED.value, state)
                held = conn.execute(
                    select(AliasLockRow.run_id).where(AliasLockRow.alias == record.alias)
                ).scalar()
                if held == run_id:
                    return
                conn.execute(
                    insert(AliasLockRow).values(alias=record.alias, run_id=run_id, acquired_at=now)
                )
        except IntegrityError as exc:
            holder = self.active_run_for(record.alias)
            if holder is None:
                raise StateStoreError(f"could not take the lock on alias {record.alias!r}") from exc
            raise LockHeld(holder.alias, holder.id, holder.state.value) from exc

    def release_undo_lock(self, run_id: str) -> None:
        """Give back the lock of a run whose undo was refused (it stays SWAPPED)."""
        with self._translate(), self.engine.begin() as conn:
            conn.execute(
                delete(AliasLockRow).where(
                    AliasLockRow.run_id == run_id,
                    AliasLockRow.run_id.in_(
                        select(RunRow.id).where(RunRow.state == State.SWAPPED.value)
                    ),
                )
            )

    # -- helpers ----------------------------------------------------------------
    @staticmethod
    def _changes(values: dict[str, Any], now: datetime) -> dict[str, Any]:
        unknown = set(values) - _WRITABLE
        if unknown:
            raise ValueError(f"not writable by a step: {sorted(unknown)}")
        changes = dict(values)
        for key in ("failed_from",):
            if isinstance(changes.get(key), State):
                changes[key] = changes[key].value
        changes["updated_at"] = now
        return changes

    def _cas(self, conn: Any, run_id: str, expected: State, changes: dict[str, Any]) -> None:
        result = conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.state == expected.value)
            .values(**changes)
        )
        if result.rowcount != 1:
            actual = conn.execute(select(RunRow.state).where(RunRow.id == run_id)).scalar()
            if actual is None:
                raise RunNotFound(run_id)
            raise StaleState(run_id, expected.value, actual)

    @staticmethod
    def _event(
        conn: Any,
        run_id: str,
        src: State | None,
        dst: State,
        trigger: str,
        detail: dict[str, Any] | None,
        now: datetime,
    ) -> None:
        conn.execute(
            insert(EventRow).values(
                run_id=run_id,
                at=now,
                from_state=src.value if src else None,
                to_state=dst.value,
                trigger=trigger,
                detail=detail or None,
            )
        )

    def _translate(self) -> _Translate:
        return _Translate(self.engine)


class _Translate:
    """Turn SQLAlchemy's errors (other than IntegrityError) into StateStoreError."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if (
            exc is not None
            and isinstance(exc, SQLAlchemyError)
            and not isinstance(exc, IntegrityError)
        ):
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise StateStoreError(
                f"state database {self.engine.url.render_as_string(hide_password=True)} "
                f"failed: {reason}"
            ) from exc
        return False
