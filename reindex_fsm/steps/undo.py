"""SWAPPED -> UNDONE: move every alias the swap moved back to the previous index, in one
atomic ``_aliases`` request. The target is kept (``cleanup`` removes it later).

Refused (UndoRefused, nothing changed) when the previous index is gone or closed, when
the alias is no longer on this run's target (someone moved it, or a later run swapped
it), or, without ``force``, when the target's document count changed since the swap
(writes made through the alias since then are not in the previous index). Idempotent: if
the aliases are already back (a crash after the request), UNDONE is just recorded.
"""

from __future__ import annotations

from typing import Any

from ..errors import StaleState, UndoRefused
from ..runplan import Plan
from .context import RunContext
from .plan import swap_actions


def undo_actions(p: Plan, on_target: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every alias of the plan still on the target leaves it and lands on the source with
    the properties it had there before the swap; removes first (never two write indices)."""
    moved = {name: props for name, props in p.aliases.items() if name in on_target}
    must_exist = any("must_exist" in a.get("remove", {}) for a in p.alias_actions)
    return swap_actions(p.target_index, p.source_index, moved, must_exist)


def check_previous(ctx: RunContext) -> None:
    p = ctx.plan
    found = [i for i in ctx.engine.describe_indices(p.source_index) if i.name == p.source_index]
    if not found:
        raise UndoRefused(ctx.run_id, f"the previous index {p.source_index} no longer exists")
    if not found[0].open:
        raise UndoRefused(
            ctx.run_id,
            f"the previous index {p.source_index} is closed",
            hint=f"open it (POST {p.source_index}/_open) and undo again",
        )


def writes_since_swap(ctx: RunContext) -> dict[str, Any] | None:
    """The target's count now against its count at verification, when they differ."""
    p = ctx.plan
    ctx.engine.refresh(p.target_index)
    now = ctx.engine.count(p.target_index)
    if ctx.record.target_count is None or now == ctx.record.target_count:
        return None
    return {
        "target_count_at_swap": ctx.record.target_count,
        "target_count_now": now,
        "source_count_now": ctx.engine.count(p.source_index),
    }


def run(ctx: RunContext, force: bool = False) -> dict[str, Any]:
    p = ctx.plan
    on_target = (
        ctx.engine.get_index_aliases(p.target_index)
        if ctx.engine.index_exists(p.target_index)
        else {}
    )
    check_previous(ctx)
    on_source = ctx.engine.get_index_aliases(p.source_index)
    detail: dict[str, Any] = {"previous_index": p.source_index, "target": p.target_index}
    if p.alias not in on_target:
        if p.alias in on_source:  # undone before the record was stored: just record it
            return {"detail": {**detail, "resumed": "aliases already on the previous index"}}
        raise UndoRefused(
            ctx.run_id,
            f"alias {p.alias} is no longer on {p.target_index} (someone moved it, or a "
            "later run swapped it)",
            hint="undo the latest run of the alias instead, or move the alias yourself",
        )
    changed = writes_since_swap(ctx)
    if changed is not None:
        warning = (
            f"{p.target_index} has {changed['target_count_now']} documents, "
            f"{changed['target_count_at_swap']} at the swap: writes made since then are not "
            f"in {p.source_index} ({changed['source_count_now']} documents)"
        )
        if not force:
            raise UndoRefused(
                ctx.run_id,
                warning,
                hint="copy those writes yourself, or pass --force to undo and lose them "
                "from the alias",
            )
        detail.update(changed, warning=warning)
        ctx.reporter.event(ctx.record, f"warning: {warning}")
    actions = undo_actions(p, on_target)
    left = sorted(set(p.aliases) - set(on_target))
    if left:  # removed from the target by someone since the swap: not put back
        detail["not_on_target"] = left
    current = ctx.repo.get(ctx.run_id).state
    if current is not ctx.record.state:
        raise StaleState(ctx.run_id, ctx.record.state.value, current.value)
    ctx.engine.update_aliases(actions)
    ctx.crash("undo.engine_done")
    detail["actions"] = actions
    return {"detail": detail}
