"""Drives one run: for its current state, fire the next trigger; the machine calls the
step, the step does its engine work, ``persist`` stores the result and the new
state in one compare-and-set transaction.

Errors and what they do to the run:
- ``EngineUnreachable``: the state does not move; the run is resumable as it is.
- ``LockHeld`` (the engine lease was lost to another process, found before any write:
  every transition and checkpoint, every engine write): the same; nothing more is
  written and the process exits 7 (after an ``abort`` from elsewhere took the run over,
  it waits, reading only, for that abort to end and reports it).
- ``StaleState``: another process moved the run; reload it and stop driving.
- any other ``ReindexFsmError`` from a step: the failure path (FAILED, then
  ROLLED_BACK when --rollback-on-failure was given).
- anything else is a bug: it propagates and the state does not move.
"""

from __future__ import annotations

import time
from typing import Any

from transitions import EventData

from . import events, logs
from .errors import (
    EngineUnreachable,
    LockHeld,
    ReindexFsmError,
    RunFinished,
    SourceGone,
    StaleState,
    TargetRefused,
    UndoRefused,
)
from .machine import (
    GATED,
    NEXT_TRIGGER,
    SWAP_TRIGGER,
    TERMINAL,
    State,
    build_machine,
    retry_state,
)
from .steps import create_target, gate, rollback, swap, templates, undo, verify, views, write_policy
from .steps import target as own_target
from .steps.context import RunContext, SilentReporter
from .steps.copy.registry import strategy_for
from .steps.poll import Backoff, Waiter
from .store import RunRecord

log = logs.get_logger(__name__)


def _moves(e: EventData) -> tuple[State, State]:
    """The states a transition's callback moves between (the machine always names them)."""
    if e.transition is None:
        raise RuntimeError(f"event {e.event.name if e.event else '?'} has no transition")
    return State(e.transition.source), State(str(e.transition.dest))


class RunDriver:
    """The transitions model of one run."""

    state: State  # set by the machine

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._values: dict[str, Any] = {}
        self._detail: dict[str, Any] = {}
        self.machine = build_machine(self, ctx.record.state)
        logs.bind_run(ctx.record.id)

    @property
    def record(self) -> RunRecord:
        return self.ctx.record

    # -- callbacks named in machine.TRANSITIONS --------------------------------------
    def step_create_target(self, _e: EventData) -> None:
        # the lease is verified before create_index (LeasedEngine) and before the commit
        self._take(create_target.run(self.ctx))

    def step_start_copy(self, _e: EventData) -> None:
        # the lease: verified before the block and the _reindex request (LeasedEngine)
        strategy = strategy_for(self.ctx.plan)
        self._take(write_policy.before_copy(self.ctx))
        if not write_policy.copy_replaced(self.ctx):  # else after_copy copies again
            self._take(strategy.start(self.ctx))

    def step_wait_copy(self, _e: EventData) -> None:
        strategy = strategy_for(self.ctx.plan)
        if not write_policy.copy_replaced(self.ctx):
            self._take(strategy.wait(self.ctx))
        self._take(write_policy.after_copy(self.ctx))

    def step_verify(self, _e: EventData) -> None:
        if swap.already_swapped(self.ctx):
            # The swap happened before a crash, unrecorded; it is only ever made after
            # verification passed. Verifying again now would compare a source no longer
            # written to with a target that takes the writes.
            self._take({"detail": {"verify": "skipped: passed before the recorded swap"}})
            return
        own_target.require_own(self.ctx, "verifying")  # its settings are put back: ours only
        self._take(verify.run(self.ctx))

    def step_swap(self, _e: EventData) -> None:
        # the lease is verified before the _aliases request (LeasedEngine) and the commit
        self._take(swap.run(self.ctx))
        self._take(write_policy.release(self.ctx))

    # -- the gate before the swap (--pause-before-swap; steps/gate.py) --
    def step_hold(self, _e: EventData) -> None:
        self._take(gate.hold(self.ctx))

    def step_recheck(self, _e: EventData) -> None:
        self._take(gate.recheck(self.ctx))

    def pauses_before_swap(self, _e: EventData) -> bool:
        # a swap found made (only ever after verification) is recorded, not paused before
        return views.pauses(self.ctx.options) and not swap.already_swapped(self.ctx)

    def step_rollback(self, _e: EventData) -> None:
        self._take(rollback.run(self.ctx))
        self._release_block()

    def step_release_block(self, _e: EventData) -> None:
        self._release_block()

    def step_record_swap(self, _e: EventData) -> None:
        self.ctx.check_lease()
        self._take(swap.adopt(self.ctx))
        self._release_block()

    def _release_block(self) -> None:
        """Lift the run's write block, only from the run's own source: an index made
        again under its name never had it, and is not the run's to change."""
        changed = rollback.source_changed(self.ctx) if self.record.write_policy else None
        if changed is None:
            self._take(write_policy.release(self.ctx))
        else:
            self._take(rollback.forget_block(self.ctx, changed))

    def step_undo(self, e: EventData) -> None:
        self._take(undo.run(self.ctx, force=bool(e.kwargs.get("force"))))
        # a block the run still holds (a swap whose release was never recorded) comes off
        self._take(write_policy.release(self.ctx))

    def nothing_written(self, _e: EventData) -> bool:
        engine, p = self.ctx.engine, self.ctx.plan
        return (
            not engine.index_exists(p.target_index)
            and not engine.list_reindex_tasks(self.ctx.opaque_id)
            # the run's own template, left by a crash before the target's uuid was stored
            and not (p.target_uuid is None and templates.leftover(engine, self.ctx.run_id))
        )

    def failed_from_is_dest(self, e: EventData) -> bool:
        return retry_state(self.record.failed_from) == _moves(e)[1]

    def persist(self, e: EventData) -> None:
        src, dst = _moves(e)
        values = {**self._values, **e.kwargs.get("values", {})}
        detail = {**self._detail, **e.kwargs.get("detail", {})}
        # verified on the engine: a process whose lease was taken over moves the run no more
        self.ctx.check_lease()
        self.ctx.record = self.ctx.repo.transition(
            self.record.id, src, dst, e.event.name, detail, **values
        )
        self.ctx.crash(f"commit.{dst.value}")
        self.ctx.reporter.emit(self.record, events.Transition(src, dst, e.event.name, detail))

    # -- driving ---------------------------------------------------------------------
    def _take(self, result: dict[str, Any]) -> None:
        self._detail.update(result.pop("detail", None) or {})
        self._values.update(result)

    def _fire(self, trigger: str, **kwargs: Any) -> None:
        started, origin = time.monotonic(), self.record.state
        log.debug("step %s starts in %s", trigger, origin, extra={"step": trigger})
        try:
            if not self.trigger(trigger, **kwargs):  # type: ignore[attr-defined]
                raise ReindexFsmError(f"{trigger} is not possible from {self.state}")
        except ReindexFsmError as exc:
            # debug: the CLI reports the error itself, in its one line
            log.debug(
                "step %s stopped in %s: %s",
                trigger,
                self.record.state,
                exc.one_line(),
                extra={"step": trigger, "error_kind": type(exc).__name__},
            )
            raise
        finally:
            self._values, self._detail = {}, {}
        log.debug(
            "step %s done: %s -> %s",
            trigger,
            origin,
            self.record.state,
            extra={"step": trigger, "duration_s": round(time.monotonic() - started, 3)},
        )

    def _reload(self) -> RunRecord:
        self.ctx.record = self.ctx.repo.get(self.record.id)
        self.machine.set_state(self.record.state)
        return self.record

    def drive(self, next_trigger: dict[State, str] = NEXT_TRIGGER) -> RunRecord:
        """Move the run forward until it is finished, FAILED or at the gate (VERIFIED);
        ``next_trigger``: the trigger of each state to move on from."""
        while self.record.state in next_trigger:
            try:
                try:
                    self._fire(next_trigger[self.record.state])
                except (StaleState, EngineUnreachable, LockHeld):
                    raise
                except TargetRefused as exc:
                    self._cancel_refused(exc)
                    raise
                except ReindexFsmError as exc:
                    self._fail(exc)
            except StaleState:
                return self._moved_elsewhere()
            except LockHeld as exc:
                return self._lease_lost(exc)
        return self.record

    def _lease_lost(self, exc: LockHeld) -> RunRecord:
        """Another process took the lease: write nothing more. If it is an abort of this
        run, wait for it (reading only) and report how the run ended; else exit 7."""
        if self.ctx.lease is None or self.ctx.lease.lost is None:
            raise exc
        if self._reload().state in (State.ABORTING, State.ROLLED_BACK, State.CANCELLED):
            return self._moved_elsewhere()
        raise exc

    def _cancel_refused(self, exc: TargetRefused) -> None:
        """The engine refused the planned target's settings or mappings: an option error,
        found by the run's first write before any other (no block, no copy). It is not a
        failure for a human to resume (the same create would be refused again): the run
        ends CANCELLED, its alias free, and the error is the one line the caller prints
        (the two transitions are not reported on their own)."""
        reporter, self.ctx.reporter = self.ctx.reporter, SilentReporter()
        try:
            self._fire(
                "request_abort",
                values={"error": exc.one_line(), "error_kind": type(exc).__name__},
                detail={"reason": "the engine refused the target", "error": exc.one_line()},
            )
            self._fire("cancel")
        except StaleState:  # another process moved it meanwhile: its state stands
            self._reload()
        finally:
            self.ctx.reporter = reporter

    def _moved_elsewhere(self) -> RunRecord:
        """Another process moved the run. If it is aborting it, wait for the abort to end
        (bounded), so that this process reports how the run ended."""
        record = self._reload()
        opts = self.ctx.options
        sleep = getattr(self.ctx.sleep, "unchecked", self.ctx.sleep)  # reads only: no lease
        backoff = Backoff.fixed(opts.poll_interval_s)
        waiter = Waiter(self.ctx.clock, sleep, backoff, opts.cancel_wait_s + 60)
        while record.state is State.ABORTING and not waiter.expired():
            waiter.sleep()
            record = self._reload()
        return record

    def _fail(self, exc: ReindexFsmError) -> None:
        failed_from = self.record.state
        # writers are not kept out by a run nobody is driving (unless asked to); an index
        # made again under the source's name never had the block
        if views.is_blocked(self.record.write_policy) and (
            rollback.source_changed(self.ctx) is None
        ):
            self._take(write_policy.release_on_failure(self.ctx, failed_from))
        self._fire(
            "fail",
            values={
                "error": exc.one_line(),
                "error_kind": type(exc).__name__,
                "failed_from": failed_from,
            },
            detail={"error": exc.one_line(), "kind": type(exc).__name__},
        )
        if self.ctx.options.rollback_on_failure:
            self._roll_back("--rollback-on-failure")

    def _roll_back(self, reason: str | None = None) -> None:
        """ROLLED_BACK, unless the swap was made (the alias is on the run's own target):
        that target is live and is never deleted; the swap is recorded instead."""
        detail = {"reason": reason} if reason else {}
        if not rollback.swap_made(self.ctx):
            try:
                self._fire("roll_back", detail=detail)
                return
            except rollback.SwapMade:  # a swap landed meanwhile
                pass
        self._record_swap(f"{reason}: not rolled back" if reason else "not rolled back")

    def _record_swap(self, why: str) -> None:
        p = self.ctx.plan
        found = f"alias {p.alias} is on the run's own target {p.target_index}: the swap was made"
        self._fire("record_swap", detail={"found": found, "reason": why})
        self.ctx.reporter.emit(self.record, events.Warning(f"{found}; {why}, recorded SWAPPED"))

    def resume(self) -> RunRecord:
        """Continue a stored run: FAILED runs roll back (if asked to) or retry their step.
        A run whose swap was made is recorded SWAPPED; one whose source is gone or was
        made again is refused (SourceGone, nothing changed): abort finishes it."""
        if self.record.state in TERMINAL:
            raise RunFinished(self.record.id, self.record.state.value)
        if self.record.state is State.ABORTING:  # an abort was interrupted: finish it
            return self._finish_abort()
        swappable = (State.VERIFYING, *GATED, State.FAILED)
        if self.record.state in swappable and rollback.swap_made(self.ctx):
            self._record_swap("resumed")
            return self.record
        changed = rollback.source_changed(self.ctx)
        if changed is not None:
            raise SourceGone(self.record.id, self.ctx.plan.source_index, changed)
        if self.record.state in GATED:  # waits for a human; a swap asked for is carried on
            return self.drive(SWAP_TRIGGER) if views.approved(self.record) else self.record
        if self.record.state is State.FAILED:
            if self.ctx.options.rollback_on_failure:
                self._roll_back("resume of a failed run")
                return self.record
            retry_values: dict[str, Any] = {"error": None, "error_kind": None}
            if self.record.failed_from is State.REINDEXING:
                retry_values["task_id"] = None  # the failed task is done with: copy again
            self._fire(
                "retry",
                values=retry_values,
                detail={
                    "retrying": str(self.record.failed_from),
                    "previous_error": self.record.error,
                },
            )
        return self.drive()

    def swap_at_gate(self) -> RunRecord:
        """``swap RUN_ID``: let a run waiting at the gate (VERIFIED) through. The request
        is stored first (a resume after a crash carries it on); the swap trigger then
        checks again what may have changed while the run waited, and swaps."""
        if self.record.state not in GATED:
            raise gate.NotAtTheGate(self.record.id, self.record.state.value, self.record.finished)
        if rollback.swap_made(self.ctx):
            self._record_swap("swap at the gate")
            return self.record
        changed = rollback.source_changed(self.ctx)
        if changed is not None:
            raise gate.source_gone(self.ctx, changed)
        try:
            gate.approve(self.ctx)
        except StaleState:
            return self._moved_elsewhere()
        return self.drive(SWAP_TRIGGER)

    def abort(self) -> RunRecord:
        """Operator abort: store the intent (ABORTING), then undo what the run wrote
        (ROLLED_BACK), or CANCELLED if it wrote nothing."""
        if self.record.state in TERMINAL:
            raise RunFinished(self.record.id, self.record.state.value)
        if self.record.state is not State.ABORTING:
            error = (
                f"{self.record.error}; then aborted by operator"
                if self.record.error
                else f"aborted by operator in {self.record.state}"
            )
            try:
                self._fire(
                    "request_abort",
                    values={"error": error, "error_kind": self.record.error_kind or "Aborted"},
                    detail={"reason": "aborted by operator"},
                )
            except StaleState:  # moved meanwhile: abort from where it is now
                self._reload()
                return self.abort()
        return self._finish_abort()

    def _finish_abort(self) -> RunRecord:
        try:
            if self.nothing_written(None):  # type: ignore[arg-type]
                self._fire("cancel")
            else:
                self._roll_back()
        except StaleState:
            return self._reload()
        return self.record

    # -- undo ----------------------------------------------------------------
    def run_undo(self, force: bool = False) -> RunRecord:
        """SWAPPED -> UNDONE under the alias lock; a refusal leaves the run SWAPPED."""
        if self.record.state is not State.SWAPPED:
            raise UndoRefused(
                self.record.id,
                f"it is {self.record.state}, only a SWAPPED run can be undone",
                hint=f"an unfinished run is stopped with `reindex-fsm abort {self.record.id}`",
            )
        try:
            self.ctx.ensure_lease()
            self.ctx.repo.lock_for_undo(self.record.id)
        except LockHeld as exc:
            raise UndoRefused(
                self.record.id,
                f"run {exc.run_id} ({exc.state}) is active on alias {exc.alias}",
                hint=f"let it finish, or abort it: `reindex-fsm abort {exc.run_id}`",
            ) from exc
        except StaleState:  # moved meanwhile (undone by another process): say so
            self._reload()
            return self.run_undo(force)
        try:
            self._fire("undo", force=force)
        except UndoRefused:  # nothing was changed: the alias is free again
            self.ctx.repo.release_undo_lock(self.record.id)
            raise
        # Anything else (engine unreachable, a crash) keeps the lock: the aliases may have
        # moved; `undo` again finishes it (LockHeld names this run and says so).
        return self.record
