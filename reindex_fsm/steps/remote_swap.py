"""VERIFYING -> SWAPPED for a run whose source is on another cluster (``--source-url``):
on the run's own (target) cluster, one atomic ``_aliases`` request takes each of the
source's aliases off the indices holding it there (none: the alias is created) and puts
it on the target. The source cluster's aliases are not touched: moving the clients to
the target cluster is the operator's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.base import ALIAS_PROPERTIES, Engine
from ..errors import StaleState, UndoRefused
from . import lifecycle, target, task_results
from .context import RunContext


def target_alias_actions(
    engine: Engine, target_index: str, aliases: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each alias leaves the indices that hold it on ``engine``'s cluster and lands on
    ``target_index`` with the source's properties; removes first (a write index is never
    doubled)."""
    removes: list[dict[str, Any]] = []
    adds: list[dict[str, Any]] = []
    for name, props in sorted(aliases.items()):
        for holder in sorted(engine.get_alias(name)):
            if holder != target_index:
                removes.append({"remove": {"index": holder, "alias": name}})
        add = {"index": target_index, "alias": name}
        add.update({k: v for k, v in props.items() if k in ALIAS_PROPERTIES})
        adds.append({"add": add})
    return removes + adds


def holders(ctx: RunContext) -> dict[str, dict[str, dict[str, Any]]]:
    """The indices each of the plan's aliases is on, on the target cluster, with the
    alias's properties there."""
    return {name: dict(ctx.engine.get_alias(name)) for name in sorted(ctx.plan.aliases)}


def already_swapped(ctx: RunContext) -> bool:
    """The run's alias is on the target, and on no other index of the target cluster:
    only this run's swap puts it there, after verification passed."""
    p = ctx.plan
    if not ctx.engine.index_exists(p.target_index):
        return False
    return sorted(ctx.engine.get_alias(p.alias)) == [p.target_index]


def run(
    ctx: RunContext,
    adopt: Callable[[RunContext], dict[str, Any]],
    change_marks: Callable[[RunContext], dict[str, Any]],
) -> dict[str, Any]:
    """The swap on the target cluster; ``adopt`` and ``change_marks`` are swap.py's (a
    swap found made, the target's marks for undo)."""
    p = ctx.plan
    if already_swapped(ctx):
        return adopt(ctx)
    previous = holders(ctx)
    actions = target_alias_actions(ctx.engine, p.target_index, p.aliases)
    checked = target.check_before_swap(ctx)
    released = lifecycle.release_target(ctx)
    current = ctx.repo.get(ctx.run_id).state
    if current is not ctx.record.state:  # aborted meanwhile: never move the alias then
        raise StaleState(ctx.run_id, ctx.record.state.value, current.value)
    record: dict[str, Any] = {
        "target": p.target_index,
        "before_swap": change_marks(ctx),
        "previous_holders": previous,  # on the target cluster; empty: the alias was created
    }
    ctx.record = ctx.repo.checkpoint(ctx.run_id, ctx.record.state, swap_record=record)
    ctx.crash("swap.recorded")
    ctx.engine.update_aliases(actions)
    ctx.crash("swap.engine_done")
    record = {**record, "swapped_at": ctx.now().isoformat(timespec="milliseconds")}
    created = [name for name, found in previous.items() if not found]
    detail: dict[str, Any] = {"actions": actions, **checked, **released}
    if created:
        detail["created"] = f"alias(es) {created} created on the target cluster"
    detail["clients"] = (
        "the clients still reach the source cluster until they are pointed at this one"
    )
    detail["task_results"] = task_results.delete_all(ctx)
    return {"detail": detail, "swap_record": record}


def undo(
    ctx: RunContext,
    force: bool,
    writes_since_swap: Callable[[RunContext], dict[str, Any] | None],
) -> dict[str, Any]:
    """SWAPPED -> UNDONE: on the target cluster, the aliases leave the target and go back
    to the indices that held them there before the swap (none: the alias is removed, as
    it was created by the swap). Refused as a local undo is (steps/undo.py): the alias
    moved since, or the target written to without ``force``."""
    p = ctx.plan
    previous: dict[str, dict[str, Any]] = (ctx.record.swap_record or {}).get(
        "previous_holders"
    ) or {}
    exists = ctx.engine.index_exists(p.target_index)
    on_target = ctx.engine.get_index_aliases(p.target_index) if exists else {}
    detail: dict[str, Any] = {"target": p.target_index, "previous_holders": previous}
    if p.alias not in on_target:
        back = sorted(ctx.engine.get_alias(p.alias)) == sorted(previous.get(p.alias) or {})
        if back:  # undone before the record was stored: just record it
            detail["resumed"] = "aliases already where they were before the swap"
            return {"detail": detail}
        raise UndoRefused(
            ctx.run_id,
            f"alias {p.alias} is no longer on {p.target_index} (someone moved it, or a "
            "later run swapped it)",
            hint="undo the latest run of the alias instead, or move the alias yourself",
        )
    changed = writes_since_swap(ctx)
    if changed is not None and not force:
        raise UndoRefused(
            ctx.run_id,
            f"{p.target_index} was {changed['why']} since the swap: those writes are not in "
            "the indices the alias goes back to",
            hint="copy those writes yourself, or pass --force to undo and lose them from the alias",
        )
    actions: list[dict[str, Any]] = [
        {"remove": {"index": p.target_index, "alias": name}}
        for name in sorted(p.aliases)
        if name in on_target
    ]
    for name in sorted(p.aliases):
        for index, props in sorted((previous.get(name) or {}).items()):
            if index != p.target_index and ctx.engine.index_exists(index):
                add = {"index": index, "alias": name}
                add.update({k: v for k, v in props.items() if k in ALIAS_PROPERTIES})
                actions.append({"add": add})
    current = ctx.repo.get(ctx.run_id).state
    if current is not ctx.record.state:
        raise StaleState(ctx.run_id, ctx.record.state.value, current.value)
    ctx.engine.update_aliases(actions)
    ctx.crash("undo.engine_done")
    detail["actions"] = actions
    if changed is not None:
        detail.update(changed)
    return {"detail": detail}
