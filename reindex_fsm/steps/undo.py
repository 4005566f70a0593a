"""SWAPPED -> UNDONE: move every alias the swap moved back to the previous index, in one
atomic ``_aliases`` request. The target is kept (``cleanup`` removes it later).

Refused (UndoRefused, nothing changed) when the previous index is gone or closed, when
the alias is no longer on this run's target (someone moved it, or a later run swapped
it), or, without ``force``, when the target was written to since the swap (writes made
through the alias since then are not in the previous index): see
:func:`writes_since_swap`. Idempotent: if the aliases are already back (a crash after
the request), UNDONE is just recorded. A lifecycle policy the swap handed over to the
target follows the aliases back (steps/lifecycle.py), on that resume too.
"""

from __future__ import annotations

from typing import Any

from .. import events
from ..errors import StaleState, UndoRefused
from ..plan import Plan
from . import lifecycle, remote_swap
from .context import RunContext
from .rollback import source_changed
from .target import swap_actions


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
    changed = source_changed(ctx)
    if changed is not None:  # an index made again under its name: not the previous index
        raise UndoRefused(ctx.run_id, f"the previous index {p.source_index} {changed}")
    if not found[0].open:
        raise UndoRefused(
            ctx.run_id,
            f"the previous index {p.source_index} is closed",
            hint=f"open it (POST {p.source_index}/_open) and undo again",
        )


def writes_since_swap(ctx: RunContext) -> dict[str, Any] | None:
    """What shows that the target was written to since the swap (None: nothing did).

    The marks stored right before the swap (``swap_record.before_swap``) are compared
    with the target's now: each primary shard's max_seq_no (any index, update or delete
    raises it) and the count. A swap recorded only when a resume found it made has no
    marks from before it: writes made in between cannot be told apart, which counts as
    a change. Runs swapped before the marks were stored compare the count at the swap.
    """
    p = ctx.plan
    record = ctx.record.swap_record or {}
    at_swap = record.get("before_swap")
    ctx.engine.refresh(p.target_index)
    now = ctx.engine.count(p.target_index)
    found: dict[str, Any] = {"target_count_now": now}
    if at_swap is not None:
        found["target_count_at_swap"] = at_swap["count"]
        if at_swap.get("max_seq_no") is not None:
            seq_now = ctx.engine.max_seq_nos(p.target_index)
            if seq_now == at_swap["max_seq_no"] and now == at_swap["count"]:
                return None
            found.update(max_seq_no_at_swap=at_swap["max_seq_no"], max_seq_no_now=seq_now)
            found["why"] = "written to since the swap (its shards' max_seq_no moved)"
        elif now == at_swap["count"]:  # the stats were refused at the swap: by count
            return None
        else:
            found["why"] = "its document count changed since the swap"
    elif record.get("resumed") is not None:
        found["target_count_at_swap"] = None
        found["why"] = (
            f"its swap was recorded only when a resume found it made "
            f"({record['resumed']['at']}): writes made through the alias before then "
            "cannot be told apart"
        )
    elif ctx.record.target_count is not None:  # swapped before the marks were stored
        if now == ctx.record.target_count:
            return None
        found["target_count_at_swap"] = ctx.record.target_count
        found["why"] = "its document count changed since the swap"
    else:
        found["target_count_at_swap"] = None
        found["why"] = "nothing was recorded at its swap to compare with"
    found["source_count_now"] = ctx.engine.count(p.source_index)
    return found


def run(ctx: RunContext, force: bool = False) -> dict[str, Any]:
    p = ctx.plan
    if p.source_cluster is not None:  # another cluster as the source
        return remote_swap.undo(ctx, force, writes_since_swap)
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
            detail["resumed"] = "aliases already on the previous index"
            _hand_back(ctx, detail)
            return {"detail": detail}
        raise UndoRefused(
            ctx.run_id,
            f"alias {p.alias} is no longer on {p.target_index} (someone moved it, or a "
            "later run swapped it)",
            hint="undo the latest run of the alias instead, or move the alias yourself",
        )
    changed = writes_since_swap(ctx)
    if changed is not None:
        at_swap = changed["target_count_at_swap"]
        warning = (
            f"{p.target_index} was {changed['why']}; it has {changed['target_count_now']} "
            f"documents ({'unknown' if at_swap is None else at_swap} at the swap): writes "
            f"made since then are not in {p.source_index} ({changed['source_count_now']} "
            "documents)"
        )
        if not force:
            raise UndoRefused(
                ctx.run_id,
                warning,
                hint="copy those writes yourself, or pass --force to undo and lose them "
                "from the alias",
            )
        detail.update(changed, warning=warning)
        ctx.reporter.emit(ctx.record, events.Warning(warning))
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
    _hand_back(ctx, detail)
    return {"detail": detail}


def _hand_back(ctx: RunContext, detail: dict[str, Any]) -> None:
    handed = lifecycle.hand_back(ctx)
    if handed is not None:
        detail["lifecycle"] = handed
