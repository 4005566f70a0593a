"""-> ROLLED_BACK: cancel the run's copy, delete its target. Alias and source untouched.

The target is deleted only when its ``_meta`` carries this run's ID and it carries no
alias: a rollback never deletes an index it did not create, nor one that is live. When
the alias is on the run's own target, the swap was made (only this run's swap puts it
there), whatever the stored state says: :func:`swap_made`, and the runner records the
swap instead of rolling back (:class:`SwapMade` if this step finds it itself).

The task is cancelled and awaited first, because a reindex still running into a deleted
index would create it again.

Aliases are put back only where they are still the run's to restore: one that went with
the deleted target (a swap racing this rollback) goes back on the source, if that is
still the run's source (same ``index.uuid``). One that someone else moved, removed, or
that vanished with a deleted source is left where it is, and the event says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import events
from ..engine.base import ALIAS_PROPERTIES
from ..errors import EngineError, ReindexFsmError
from . import task_results, templates
from .context import RunContext
from .poll import Backoff, Waiter
from .target import index_uuid, owner_of


class SwapMade(ReindexFsmError):
    """The alias is on the run's own target: never roll back a live index."""

    def __init__(self, run_id: str, alias: str, target: str) -> None:
        super().__init__(
            f"run {run_id} is not rolled back: alias {alias} is on its target {target} "
            "(the swap was made)"
        )
        self.run_id = run_id


def swap_made(ctx: RunContext) -> bool:
    """The alias is on the run's own target and not on the source: only this run's swap
    moves it there, and only after verification passed. The target is live then."""
    p = ctx.plan
    where = set(ctx.engine.get_alias(p.alias))
    if p.target_index not in where or p.source_index in where:
        return False
    return owner_of(ctx.engine, p.target_index) == ctx.run_id


def source_changed(ctx: RunContext) -> str | None:
    """None while the plan's source is still there; else what became of it. An index of
    the same name is the source only with the plan's ``index.uuid``; for runs planned
    before the uuid was stored, only if it was created before the plan."""
    p = ctx.plan
    uuid = index_uuid(ctx.engine, p.source_index)
    if uuid is None:
        return "no longer exists (deleted since the run was planned)"
    if p.source_uuid is not None:
        if uuid == p.source_uuid:
            return None
        return (
            "was deleted and created again since the run was planned "
            f"(index.uuid {uuid}, planned {p.source_uuid})"
        )
    created = ctx.engine.get_index(p.source_index).settings.get("index.creation_date")
    planned_ms = datetime.fromisoformat(p.planned_at).timestamp() * 1000
    if created is not None and int(created) > planned_ms:
        return "was deleted and created again since the run was planned (created after it)"
    return None


def forget_block(ctx: RunContext, why: str) -> dict[str, Any]:
    """The run's write block is recorded as lifted without touching the engine: its
    index is not the run's source any more (deleted, or another index of that name)."""
    state = dict(ctx.record.write_policy or {})
    if not state.get("blocked"):
        return {}
    state.update(blocked=False, released_at=ctx.now().isoformat(timespec="milliseconds"))
    return {"write_policy": state, "detail": {"write_block": f"none lifted: the source {why}"}}


def _cancel_and_wait(ctx: RunContext, task_id: str) -> str:
    status = ctx.engine.get_task(task_id)
    if status is None or status.completed:
        return "finished"
    try:
        ctx.engine.cancel_task(task_id)
    except EngineError as exc:
        if exc.status != 404:
            raise
    ctx.crash("rollback.cancel_sent")
    waiter = Waiter(ctx.clock, ctx.sleep, Backoff.of(ctx.options), ctx.options.cancel_wait_s)
    while True:
        status = ctx.engine.get_task(task_id)
        if status is None or status.completed:
            return "cancelled"
        if not waiter.pause():
            raise EngineError(
                f"reindex task {task_id} did not stop within {ctx.options.cancel_wait_s:.0f}s "
                "of being cancelled",
                hint=f"the run stays resumable: `reindex-fsm abort {ctx.run_id}` again later",
            )


def _where(ctx: RunContext) -> dict[str, list[str]]:
    """The indices each alias of the plan is on now."""
    return {name: sorted(ctx.engine.get_alias(name)) for name in sorted(ctx.plan.aliases)}


def _delete_target(ctx: RunContext) -> tuple[bool, str]:
    p = ctx.plan
    if not ctx.engine.index_exists(p.target_index):
        return False, "none to delete"
    if owner_of(ctx.engine, p.target_index) != ctx.run_id:
        return False, f"{p.target_index} not ours: left alone"
    carried = sorted(ctx.engine.get_index_aliases(p.target_index))
    if carried:  # someone put them there: it is in use, never deleted
        return False, f"{p.target_index} carries aliases {carried}: in use, left (not deleted)"
    ctx.engine.delete_index(p.target_index)
    ctx.crash("rollback.engine_done")
    return True, f"deleted {p.target_index}"


def _aliases_after(
    ctx: RunContext, before: dict[str, list[str]], deleted: bool
) -> tuple[list[str], dict[str, str]]:
    """Put back on the source what went with the deleted target; the rest is left where
    it is: ``(restored, {alias: where it was left})``."""
    p = ctx.plan
    now = _where(ctx)
    changed = source_changed(ctx)
    restore: dict[str, dict[str, Any]] = {}
    left: dict[str, str] = {}
    for name, props in sorted(p.aliases.items()):
        if now[name] == [p.source_index] and changed is None:
            continue  # where it was before the run
        went_with_target = (
            deleted and not now[name] and set(before[name]) <= {p.source_index, p.target_index}
        )
        if went_with_target and before[name] and changed is None:
            restore[name] = props
        elif not now[name]:
            why = f"its source {changed}" if changed else "removed by someone else"
            left[name] = f"on no index ({why})"
        elif changed is not None and p.source_index in now[name]:
            left[name] = f"on {', '.join(now[name])} (not the run's source: it {changed})"
        else:
            left[name] = f"on {', '.join(now[name])} (moved by someone else)"
    if restore:
        actions = [
            {
                "add": {
                    "index": p.source_index,
                    "alias": name,
                    **{k: v for k, v in props.items() if k in ALIAS_PROPERTIES},
                }
            }
            for name, props in sorted(restore.items())
        ]
        ctx.engine.update_aliases(actions)
        ctx.crash("rollback.aliases_restored")
    return sorted(restore), left


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    if swap_made(ctx):  # the runner looks first; a swap may have landed since
        raise SwapMade(ctx.run_id, p.alias, p.target_index)
    detail: dict[str, Any] = {}
    task_ids = [t.task_id for t in ctx.engine.list_reindex_tasks(ctx.opaque_id)]
    if ctx.record.task_id and ctx.record.task_id not in task_ids:
        task_ids.insert(0, ctx.record.task_id)
    for task_id in task_ids:
        detail[f"task {task_id}"] = _cancel_and_wait(ctx, task_id)
    before = _where(ctx)
    deleted, detail["target"] = _delete_target(ctx)
    # A swap racing this rollback may have moved the aliases onto the target just before
    # it was deleted, taking them with it: those go back on the source.
    # (another cluster as the source: the source's aliases were never on this cluster)
    restored, left = _aliases_after(ctx, before, deleted) if p.source_cluster is None else ([], {})
    if restored:
        detail["aliases"] = f"back on {p.source_index}: {restored}"
    if left:
        detail["aliases_left"] = left
        warning = "not put back on the source, left as found: " + "; ".join(
            f"{name} {where}" for name, where in left.items()
        )
        detail["warning"] = warning
        ctx.reporter.emit(ctx.record, events.Warning(warning))
    if task_ids or ctx.record.task_id:
        detail["task_results"] = task_results.delete_all(ctx)
    # -- index templates: the run's own, left by a crash while the target was created
    # (once the target's uuid is stored, the create step had deleted it) --
    if p.target_uuid is None:
        detail.update(templates.release(ctx, "rollback.template_deleted"))
    return {"detail": detail}
