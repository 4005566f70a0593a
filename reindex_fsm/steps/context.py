"""What every step gets: the engine, the repository, the current record, injected
clock and sleep, the crash points and a reporter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..crashpoints import Crashpoints
from ..engine.base import Engine, opaque_id_for
from ..events import Note, Reporter, SilentReporter, Warning
from ..options import RunOptions
from ..plan import Plan
from ..store import RunRecord

if TYPE_CHECKING:
    from ..lease import LeaseKeeper
    from ..store import RunRepository


@dataclass
class RunContext:
    engine: Engine
    repo: RunRepository
    record: RunRecord
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    crash: Crashpoints = field(default_factory=Crashpoints)
    reporter: Reporter = field(default_factory=SilentReporter)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # -- lease and preflight --
    lease: LeaseKeeper | None = None  # the engine lease on the alias, when one is held

    @property
    def run_id(self) -> str:
        return self.record.id

    @property
    def plan(self) -> Plan:
        return Plan.from_dict(self.record.plan)

    @property
    def options(self) -> RunOptions:
        return RunOptions.from_dict(self.record.options)

    @property
    def opaque_id(self) -> str:
        return opaque_id_for(self.record.id)

    def checkpoint(
        self,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        as_warning: bool = False,
        **values: Any,
    ) -> None:
        """Store values within the current state, then pass a crash point. One that
        records an event (an intent, a pass, a block) is made only on a lease verified on
        the engine; a progress count only on the heartbeat's word (it is written every
        poll or batch, and a stale count or position only makes a resume redo work).
        The event is reported as a note, or with ``as_warning`` as a line that stands out."""
        if event:
            self.check_lease()
        else:
            self.ensure_lease()
        self.record = self.repo.checkpoint(
            self.record.id, self.record.state, event=event, detail=detail, **values
        )
        self.crash(f"checkpoint.{event or 'progress'}")
        if event:
            note = (detail or {}).get("note")
            shown = Warning(note, event) if as_warning and note else Note(event, note)
            self.reporter.emit(self.record, shown)

    # -- lease and preflight --
    def check_lease(self) -> None:
        """Renew the engine lease before a step that writes; LockHeld if it was lost
        (another process took the alias over): the run then stops where it is."""
        if self.lease is not None:
            self.lease.renew()

    def ensure_lease(self) -> None:
        """Before every write of the run (transition, checkpoint; engine writes check it
        through :class:`~reindex_fsm.lease.LeasedEngine`): LockHeld if the lease was lost,
        so that a process that lost it writes nothing more."""
        if self.lease is not None:
            self.lease.ensure()
