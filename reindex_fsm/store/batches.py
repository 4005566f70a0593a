"""The batch repository: every read and write of the ``batches`` table.

A batch row holds the aliases its runs are for (``items``, resolved once when the batch
was stored, each gaining its run ID when its run is made), the shared options and how the
batch drives its runs. The runs themselves are ordinary rows of ``runs`` whose
``batch_id`` names the batch; they are the truth about what was made (see
:meth:`BatchRepository.runs`).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from ..errors import BatchNotFound
from .models import BatchRow, RunRow
from .records import RunRecord, _aware, utcnow
from .repository import _Translate

# A batch's states: RUNNING until it ends (also while no process drives it: killed,
# interrupted); SUCCEEDED (every run SWAPPED), FAILED (it ended with runs not SWAPPED, or
# stopped at a failure) and ABORTED (its unfinished runs were aborted); PAUSED: every run
# not SWAPPED waits at the gate (VERIFIED, --pause-before-swap) for its `swap`.
RUNNING, SUCCEEDED, FAILED, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"
PAUSED = "PAUSED"


@dataclass(frozen=True)
class BatchRecord:
    """A snapshot of one batch row."""

    id: str
    state: str
    items: list[dict[str, Any]]
    options: dict[str, Any]
    concurrency: int
    slices_budget: int | None
    on_failure: str
    engine_url: str
    plan_path: str | None
    plan_hash: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> BatchRecord:
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        for key in ("created_at", "updated_at", "finished_at"):
            values[key] = _aware(values[key])
        values["items"] = [dict(item) for item in values["items"] or []]
        return cls(**values)

    @property
    def aliases(self) -> list[str]:
        return [str(item["alias"]) for item in self.items]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"batch_id": self.id}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "id":
                continue
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
        return out


class BatchRepository:
    """Batches in the state database of ``engine`` (the SQLAlchemy engine of a
    :class:`~reindex_fsm.store.RunRepository`, so both share one connection pool)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads ----------------------------------------------------------------
    def get(self, batch_id: str) -> BatchRecord:
        with _Translate(self.engine), self.engine.connect() as conn:
            row = conn.execute(select(BatchRow).where(BatchRow.id == batch_id)).first()
        if row is None:
            raise BatchNotFound(batch_id)
        return BatchRecord.from_row(row)

    def list(self, limit: int | None = 50) -> builtins.list[BatchRecord]:
        query = select(BatchRow).order_by(BatchRow.created_at.desc(), BatchRow.id.desc())
        if limit:
            query = query.limit(limit)
        with _Translate(self.engine), self.engine.connect() as conn:
            return [BatchRecord.from_row(r) for r in conn.execute(query)]

    def runs(self, batch_id: str) -> builtins.list[RunRecord]:
        """Every run the batch made (``runs.batch_id``), oldest first."""
        query = (
            select(RunRow).where(RunRow.batch_id == batch_id).order_by(RunRow.created_at, RunRow.id)
        )
        with _Translate(self.engine), self.engine.connect() as conn:
            return [RunRecord.from_row(r) for r in conn.execute(query)]

    # -- writes ---------------------------------------------------------------
    def create(self, values: dict[str, Any]) -> BatchRecord:
        now = utcnow()
        row = {"state": RUNNING, "created_at": now, "updated_at": now, **values}
        with _Translate(self.engine), self.engine.begin() as conn:
            conn.execute(insert(BatchRow).values(**row))
        return self.get(row["id"])

    def set_item(self, batch_id: str, alias: str, **values: Any) -> BatchRecord:
        """Store ``values`` (``run_id``, ``error``) on the batch's item of ``alias``.
        The row is written first (its write lock taken, so concurrent writers of the
        same JSON wait instead of overwriting each other), then read and written again."""
        now = utcnow()
        with _Translate(self.engine), self.engine.begin() as conn:
            self._touch(conn, batch_id, now)
            items = conn.execute(select(BatchRow.items).where(BatchRow.id == batch_id)).scalar()
            changed = [
                {**item, **values} if item["alias"] == alias else dict(item) for item in items or []
            ]
            conn.execute(update(BatchRow).where(BatchRow.id == batch_id).values(items=changed))
        return self.get(batch_id)

    def set_state(self, batch_id: str, state: str, error: str | None = None) -> BatchRecord:
        """The batch's state (and its error line); a finished state stamps finished_at,
        RUNNING clears it (a resumed batch)."""
        now = utcnow()
        finished = None if state == RUNNING else now
        with _Translate(self.engine), self.engine.begin() as conn:
            self._touch(conn, batch_id, now)
            conn.execute(
                update(BatchRow)
                .where(BatchRow.id == batch_id)
                .values(state=state, error=error, finished_at=finished)
            )
        return self.get(batch_id)

    @staticmethod
    def _touch(conn: Any, batch_id: str, now: datetime) -> None:
        result = conn.execute(
            update(BatchRow).where(BatchRow.id == batch_id).values(updated_at=now)
        )
        if result.rowcount != 1:
            raise BatchNotFound(batch_id)
