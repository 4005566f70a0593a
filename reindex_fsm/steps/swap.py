"""VERIFYING -> SWAPPED: one atomic _aliases request moving every alias of the source."""

from __future__ import annotations

from typing import Any

from ..errors import RunStepFailed, StaleState
from ..runplan import Plan
from . import target, task_results
from .context import RunContext
from .plan import swap_actions


def plan(p: Plan) -> dict[str, Any]:
    return {"step": "swap", "actions": p.alias_actions}


def already_swapped(ctx: RunContext) -> bool:
    """The alias is on the target and not on the source: only this run's swap moves it
    there, and only after verification passed."""
    p = ctx.plan
    if not ctx.engine.index_exists(p.target_index):
        return False
    on_target = ctx.engine.get_index_aliases(p.target_index)
    return p.alias in on_target and p.alias not in ctx.engine.get_index_aliases(p.source_index)


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    on_source = ctx.engine.get_index_aliases(p.source_index)
    on_target = ctx.engine.get_index_aliases(p.target_index)
    if p.alias in on_target and p.alias not in on_source:  # only this run moves it there
        detail = {"resumed": "aliases already on the target", "aliases": sorted(on_target)}
        return {"detail": {**detail, "task_results": task_results.delete_all(ctx)}}
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
    current = ctx.repo.get(ctx.run_id).state
    if current is not ctx.record.state:  # aborted meanwhile: never move the alias then
        raise StaleState(ctx.run_id, ctx.record.state.value, current.value)
    ctx.engine.update_aliases(actions)
    ctx.crash("swap.engine_done")
    # The copy's result is stored in progress and events: its .tasks record can go.
    detail = {"actions": actions, **checked}
    return {"detail": {**detail, "task_results": task_results.delete_all(ctx)}}
