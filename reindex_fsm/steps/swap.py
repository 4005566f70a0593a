"""VERIFYING -> SWAPPED: one atomic _aliases request moving every alias of the source, then
the source's lifecycle policy (ILM, ISM) handed over to the target (steps/lifecycle.py)."""

from __future__ import annotations

from typing import Any

from ..errors import EngineError, EngineUnreachable, IndexNotFound, RunStepFailed, StaleState
from ..plan import Plan
from . import lifecycle, remote_swap, target, task_results
from .context import RunContext
from .target import swap_actions


def plan(p: Plan) -> dict[str, Any]:
    shown: dict[str, Any] = {"step": "swap", "actions": p.alias_actions}
    after = lifecycle.describe(p)
    if after is not None:
        shown["after_the_swap"] = after
    return shown


def already_swapped(ctx: RunContext) -> bool:
    """The alias is on the target and not on the source: only this run's swap moves it
    there, and only after verification passed."""
    p = ctx.plan
    if p.source_cluster is not None:  # another cluster as the source
        return remote_swap.already_swapped(ctx)
    if not ctx.engine.index_exists(p.target_index):
        return False
    on_target = ctx.engine.get_index_aliases(p.target_index)
    return p.alias in on_target and p.alias not in ctx.engine.get_index_aliases(p.source_index)


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    if p.source_cluster is not None:  # another cluster as the source
        return remote_swap.run(ctx, adopt, change_marks)
    on_source = ctx.engine.get_index_aliases(p.source_index)
    on_target = ctx.engine.get_index_aliases(p.target_index)
    if p.alias in on_target and p.alias not in on_source:  # only this run moves it there
        return adopt(ctx)
    if p.alias not in on_source:
        raise RunStepFailed(
            f"alias {p.alias} is no longer on {p.source_index}: someone moved it during the run",
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
    must_exist = any("must_exist" in a.get("remove", {}) for a in p.alias_actions)
    actions = swap_actions(p.source_index, p.target_index, on_source, must_exist)
    # the alias goes only onto the index this run created, as it was planned
    checked = target.check_before_swap(ctx)
    released = lifecycle.release_target(ctx)  # one ISM attached since the target's creation
    current = ctx.repo.get(ctx.run_id).state
    if current is not ctx.record.state:  # aborted meanwhile: never move the alias then
        raise StaleState(ctx.run_id, ctx.record.state.value, current.value)
    # What undo compares with, stored before the alias moves: until then only this run
    # writes to the target (and its copy is done), so this is the target at the swap.
    record = {"target": p.target_index, "before_swap": change_marks(ctx)}
    ctx.record = ctx.repo.checkpoint(ctx.run_id, ctx.record.state, swap_record=record)
    ctx.crash("swap.recorded")
    ctx.engine.update_aliases(actions)
    ctx.crash("swap.engine_done")
    record = {**record, "swapped_at": _iso(ctx)}
    detail: dict[str, Any] = {"actions": actions, **checked, **released}
    _hand_over(ctx, record, detail)
    # The copy's result is stored in progress and events: its .tasks record can go.
    detail["task_results"] = task_results.delete_all(ctx)
    return {"detail": detail, "swap_record": record}


def _hand_over(ctx: RunContext, record: dict[str, Any], detail: dict[str, Any]) -> None:
    """The lifecycle follows the alias; what was done is stored with the swap (undo hands
    it back from there). Idempotent: a resume after a crash in it finishes it."""
    handed = lifecycle.hand_over(ctx)
    if handed is not None:
        record["lifecycle"] = detail["lifecycle"] = handed


# -- what the swap records, for undo's check of the writes made since ---------------------
def _iso(ctx: RunContext) -> str:
    return ctx.now().isoformat(timespec="milliseconds")


def change_marks(ctx: RunContext) -> dict[str, Any]:
    """The target's document count and each primary shard's max_seq_no, which every
    index, update and delete raises (an update in place leaves the count as it was). A
    refusal of the stats (no ``monitor`` privilege) leaves the count alone to compare."""
    p = ctx.plan
    ctx.engine.refresh(p.target_index)
    marks: dict[str, Any] = {"at": _iso(ctx), "count": ctx.engine.count(p.target_index)}
    try:
        marks["max_seq_no"] = ctx.engine.max_seq_nos(p.target_index)
    except EngineError as exc:
        if isinstance(exc, EngineUnreachable | IndexNotFound):
            raise
        marks["max_seq_no"] = None
        marks["max_seq_no_refused"] = exc.one_line()
    return marks


def adopt(ctx: RunContext) -> dict[str, Any]:
    """The aliases are on the target already: a swap made before a crash, or by a run
    that failed after it. Finish what the swap does after its request (its record, the
    copy's task results), keeping the marks stored before the swap; the marks found now
    are added, so that every resume of the swap is on record."""
    p = ctx.plan
    record = dict(ctx.record.swap_record or {"target": p.target_index})
    found = change_marks(ctx)
    record["resumed"] = found
    at_swap = record.get("before_swap") or found
    detail: dict[str, Any] = {
        "resumed": "aliases already on the target",
        "aliases": sorted(ctx.engine.get_index_aliases(p.target_index)),
    }
    if "before_swap" not in record:
        detail["note"] = (
            "nothing was recorded before the swap: writes made through the alias before "
            "now cannot be told apart by undo"
        )
    _hand_over(ctx, record, detail)
    detail["task_results"] = task_results.delete_all(ctx)
    return {"detail": detail, "swap_record": record, "target_count": at_swap["count"]}
