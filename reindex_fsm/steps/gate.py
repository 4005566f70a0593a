"""The gate before the swap (``--pause-before-swap``): VERIFYING -> VERIFIED -> SWAPPED.

A run started with the flag copies and verifies as any run, then stops in VERIFIED
instead of swapping: the alias lock (state database) stays the run's, and so does the
write block of the ``block`` policy (writers wait until ``swap`` or ``abort``). The
``catch-up`` policy's final block comes off for the wait (writers go on) and its last
pass is made again at the swap, under the block, before the swap.

What the verification saw is stored with the pause (``runs.verification["gate"]``): the
target's and the source's change marks (document count and each primary shard's
``max_seq_no``, which every index, update and delete raises). ``swap RUN_ID`` stores
that the operator asked for it (a resume after a crash carries the swap on), then checks
again what may have changed while the run waited (:func:`recheck`): the alias still on
the source, the target still the run's own and as verified (its marks), the source as
verified (its marks, the block still on). When the source may have changed (catch-up,
a block someone lifted, other marks) what changed is copied again and the whole
verification made again; otherwise the marks prove that the verified target is the one
swapped in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..engine.base import Engine
from ..errors import (
    EngineError,
    EngineUnreachable,
    ExitCode,
    IndexNotFound,
    ReindexFsmError,
    RunStepFailed,
    UsageError,
    VerificationFailed,
)
from ..options import RunOptions
from ..plan import Plan
from . import swap, verify, write_policy
from . import target as own_target
from .context import RunContext
from .copy.registry import strategy_for
from .views import GATE_KEY, is_blocked, record_of


class NotAtTheGate(UsageError):
    """``swap`` of a run that is not VERIFIED (nothing is done)."""

    def __init__(self, run_id: str, state: str, finished: bool) -> None:
        hint = (
            "nothing to swap"
            if finished
            else f"`reindex-fsm resume {run_id}` continues it (a run started with "
            "--pause-before-swap stops in VERIFIED when it is verified)"
        )
        super().__init__(
            f"run {run_id} is {state}, not VERIFIED: only a run waiting at the gate before "
            "its swap (--pause-before-swap) is swapped by `swap`",
            hint=hint,
        )
        self.run_id = run_id
        self.state = state


class SourceGoneAtTheGate(ReindexFsmError):
    """The run's source was deleted (or made again) while the run waited: not swapped."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, run_id: str, index: str, why: str) -> None:
        super().__init__(
            f"cannot swap run {run_id}: its source index {index} {why}",
            hint=f"`reindex-fsm abort {run_id}` finishes it (its target deleted, the alias "
            "released); nothing was changed",
        )
        self.run_id = run_id
        self.index = index


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def plan(p: Plan, options: RunOptions) -> dict[str, Any]:
    """The gate as --dry-run shows it (only for a run that pauses)."""
    if options.write_policy == "catch-up":
        writes = (
            f"writes to {p.source_index} go on while the run waits; at the swap a short "
            "block again, a last catch-up pass and the verification again"
        )
    else:
        writes = f"writes to {p.source_index} stay BLOCKED until `swap` or `abort`"
    return {
        "step": "gate",
        "pause": "after the verification: VERIFIED, the alias untouched; "
        "`reindex-fsm swap RUN_ID` swaps, `reindex-fsm abort RUN_ID` cleans up",
        "writes": writes,
        "at_the_swap": "alias still on the source, target and source as verified "
        "(count and max_seq_no), else copied again and verified again",
    }


# -- change marks ---------------------------------------------------------------------------
def marks(engine: Engine, index: str) -> dict[str, Any]:
    """The index's document count and each primary shard's ``max_seq_no``, after a refresh.
    A refusal of the stats (no ``monitor`` privilege) leaves the count alone to compare."""
    engine.refresh(index)
    found: dict[str, Any] = {"count": engine.count(index)}
    try:
        found["max_seq_no"] = engine.max_seq_nos(index)
    except EngineError as exc:
        if isinstance(exc, EngineUnreachable | IndexNotFound):
            raise
        found["max_seq_no"] = None
        found["max_seq_no_refused"] = exc.one_line()
    return found


def differences(before: dict[str, Any], now: dict[str, Any]) -> str | None:
    """How ``now`` differs from ``before`` (None: the same, as far as the marks tell)."""
    out = []
    if before.get("count") != now.get("count"):
        out.append(f"count {before.get('count')} -> {now.get('count')}")
    seq_before, seq_now = before.get("max_seq_no"), now.get("max_seq_no")
    if seq_before is not None and seq_now is not None and seq_before != seq_now:
        out.append(f"max_seq_no {seq_before} -> {seq_now}")
    return ", ".join(out) or None


def _seq_known(*found: dict[str, Any]) -> bool:
    return all(f.get("max_seq_no") is not None for f in found)


# -- VERIFYING -> VERIFIED ----------------------------------------------------------------------
def hold(ctx: RunContext) -> dict[str, Any]:
    """After the verification passed: record what it saw, and (catch-up) take the final
    block off for the wait; values to store with the move to VERIFIED."""
    p = ctx.plan
    state = dict(ctx.record.write_policy or {})
    found_source = marks(ctx.engine, p.source_index)
    found_target = marks(ctx.engine, p.target_index)
    values: dict[str, Any] = {}
    detail: dict[str, Any] = {"paused": "verified; waiting for `swap` or `abort`"}
    if ctx.options.write_policy == "catch-up" and is_blocked(state):
        released = write_policy.release(ctx)  # crash point write_policy.released
        state = released["write_policy"]
        state["resync"] = True  # the swap blocks again and makes the last pass again
        values["write_policy"] = state
        detail["write_block"] = (
            f"removed from {state['index']} for the wait: writes go on; the swap blocks them "
            "again for a last catch-up pass"
        )
    elif is_blocked(state):
        detail["write_block"] = (
            f"WRITES TO {state['index']} STAY BLOCKED until `swap` or `abort` of this run"
        )
    record = {
        "paused_at": _iso(ctx.now()),
        "source": found_source,
        "target": found_target,
        "passes": len(state.get("passes") or []),
    }
    verification = {**(ctx.record.verification or {}), GATE_KEY: record}
    return {**values, "verification": verification, "detail": detail}


# -- swap RUN_ID ---------------------------------------------------------------------------------
def approve(ctx: RunContext) -> None:
    """Store that the operator asked for the swap (before anything else of it): a resume
    after a crash carries it on instead of waiting at the gate again."""
    record = {**(record_of(ctx.record) or {}), "approved_at": _iso(ctx.now())}
    ctx.checkpoint(
        event="swap_approved",
        detail={"note": "swap asked for: checking again what may have changed, then the swap"},
        verification={**(ctx.record.verification or {}), GATE_KEY: record},
    )


def source_gone(ctx: RunContext, why: str) -> SourceGoneAtTheGate:
    return SourceGoneAtTheGate(ctx.run_id, ctx.plan.source_index, why)


def _refuse(error: RunStepFailed, hint: str) -> RunStepFailed:
    error.hint = hint
    return error


def recheck(ctx: RunContext) -> dict[str, Any]:
    """VERIFIED -> SWAPPED, before the swap step: what may have changed while the run
    waited at the gate. RunStepFailed (the alias moved, the target not the run's own) or
    VerificationFailed (the target written to) fail the run, nothing swapped; a source that
    may have changed is copied again and the verification made again."""
    if swap.already_swapped(ctx):  # a swap made before a crash: the swap step adopts it
        return {"detail": {"recheck": "skipped: the swap was made before"}}
    p, run_id = ctx.plan, ctx.run_id
    abort_hint = f"`reindex-fsm abort {run_id}` ends the run, then start again"
    if p.alias not in ctx.engine.get_index_aliases(p.source_index):
        raise _refuse(
            RunStepFailed(
                f"alias {p.alias} is no longer on {p.source_index}: someone moved it while the "
                "run waited at the gate; not swapped",
                run_id=run_id,
                state=ctx.record.state.value,
            ),
            abort_hint,
        )
    own_target.require_own(ctx, "swapping onto")
    gate = record_of(ctx.record)
    state = dict(ctx.record.write_policy or {})
    # a pass started by an earlier, interrupted swap wrote to the target: its marks moved
    copied_since = gate is None or len(state.get("passes") or []) > int(gate.get("passes") or 0)
    checked: dict[str, Any] = {}
    if gate is not None and not copied_since:
        now_target = marks(ctx.engine, p.target_index)
        changed = differences(gate["target"], now_target)
        if changed:
            raise _refuse(
                VerificationFailed(
                    f"target {p.target_index} changed while the run waited at the gate "
                    f"({changed}): something else wrote to it; not swapped",
                    run_id=run_id,
                    state=ctx.record.state.value,
                ),
                abort_hint,
            )
        checked["target"] = "as verified" + (
            "" if _seq_known(gate["target"], now_target) else " (count only: no shard stats)"
        )
    again = _why_again(ctx, gate, state, copied_since)
    if not again:
        checked["source"] = "as verified: nothing to copy again"
        return {"detail": {"recheck": checked}}
    checked["verified_again"] = again
    copied = _copy_again(ctx) if _copies_again(ctx) else {}
    values = verify.run(ctx)  # (a block found lifted: on again, copied) counted, compared
    detail = {"recheck": checked, **copied, **values.pop("detail", {})}
    record = {**(gate or {}), "rechecked_at": _iso(ctx.now()), "verified_again": again}
    verification = {**(ctx.record.verification or {}), GATE_KEY: record}
    return {**values, "verification": verification, "detail": detail}


def _copies_again(ctx: RunContext) -> bool:
    """A pass is due (catch-up's last one, a source that changed under the block) or was
    begun by an interrupted swap and is to be finished."""
    state = ctx.record.write_policy or {}
    passes = state.get("passes") or []
    unfinished = bool(passes) and "copied" not in passes[-1]
    return ctx.options.write_policy == "catch-up" or bool(state.get("resync")) or unfinished


def _copy_again(ctx: RunContext) -> dict[str, Any]:
    """The block (on again), the pass (started, or adopted from an interrupted swap), the
    documents deleted from the source meanwhile, and the source counted under the block:
    what the verification then compares with."""
    values = write_policy.after_copy(ctx)
    ctx.checkpoint(source_count=values["source_count"])
    return dict(values["detail"])


def _why_again(
    ctx: RunContext, gate: dict[str, Any] | None, state: dict[str, Any], copied_since: bool
) -> str | None:
    """Why the source may differ from what was verified (None: it does not); a run whose
    source changed under the block is marked to copy it again (``resync``)."""
    p = ctx.plan
    if ctx.options.write_policy == "catch-up":
        return "catch-up: a last pass under the block copies what was written meanwhile"
    if gate is None:
        return "the record of the pause is missing: verified again"
    if copied_since:
        return "an interrupted swap had begun copying again"
    if not is_blocked(state):
        return None  # the source was write-blocked before the run (kept) or not the run's
    settings = ctx.engine.get_index(p.source_index).settings
    if str(settings.get("index.blocks.write", "false")).lower() != "true":
        return "the write block was lifted while the run waited"  # verify's resync copies
    now_source = marks(ctx.engine, p.source_index)
    changed = differences(gate["source"], now_source)
    if changed is None and _seq_known(gate["source"], now_source):
        return None
    why = (
        f"the source changed while the run waited ({changed})"
        if changed
        else "the source's shard stats cannot be compared"
    )
    if not strategy_for(p).copies_again_by_reindex:
        raise _refuse(
            VerificationFailed(
                f"{why}: this copy cannot be made again for what changed; not swapped",
                run_id=ctx.run_id,
                state=ctx.record.state.value,
            ),
            f"`reindex-fsm abort {ctx.run_id}` ends the run, then start again",
        )
    state["resync"] = True
    ctx.checkpoint(
        event="source_changed_at_the_gate",
        detail={"index": p.source_index, "note": f"{why}: copying again"},
        write_policy=state,
    )
    return why
