"""-> ROLLED_BACK: cancel the run's copy, delete its target. Alias and source untouched.

The target is deleted only when its ``_meta`` carries this run's ID: a rollback
never deletes an index it did not create. The task is cancelled and awaited
first, because a reindex still running into a deleted index would create it again.
"""

from __future__ import annotations

from typing import Any

from ..errors import EngineError
from . import task_results
from .context import RunContext
from .plan import owner_of, swap_actions


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
    deadline = ctx.clock() + ctx.options.cancel_wait_s
    delay = ctx.options.poll_interval_s
    while True:
        status = ctx.engine.get_task(task_id)
        if status is None or status.completed:
            return "cancelled"
        if ctx.clock() >= deadline:
            raise EngineError(
                f"reindex task {task_id} did not stop within {ctx.options.cancel_wait_s:.0f}s "
                "of being cancelled",
                hint=f"the run stays resumable: `reindex-fsm abort {ctx.run_id}` again later",
            )
        ctx.sleep(delay)
        delay = min(delay * 1.5, ctx.options.poll_max_interval_s)


def _restore_aliases(ctx: RunContext) -> list[str]:
    """Every alias the source had at plan time is on the source again: moved back from the
    target if a swap happened unrecorded, re-added if it went with a deleted target."""
    p = ctx.plan
    on_source = ctx.engine.get_index_aliases(p.source_index)
    missing = {name: props for name, props in p.aliases.items() if name not in on_source}
    if not missing:
        return []
    on_target = (
        ctx.engine.get_index_aliases(p.target_index)
        if ctx.engine.index_exists(p.target_index)
        else {}
    )
    actions = [
        {"remove": {"index": p.target_index, "alias": name}}
        for name in missing
        if name in on_target
    ]
    actions += swap_actions(p.target_index, p.source_index, missing, False)[len(missing) :]
    ctx.engine.update_aliases(actions)
    ctx.crash("rollback.aliases_restored")
    return sorted(missing)


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    detail: dict[str, Any] = {}
    task_ids = [t.task_id for t in ctx.engine.list_reindex_tasks(ctx.opaque_id)]
    if ctx.record.task_id and ctx.record.task_id not in task_ids:
        task_ids.insert(0, ctx.record.task_id)
    for task_id in task_ids:
        detail[f"task {task_id}"] = _cancel_and_wait(ctx, task_id)
    restored = _restore_aliases(ctx)
    if ctx.engine.index_exists(p.target_index):
        if owner_of(ctx.engine, p.target_index) == ctx.run_id:
            ctx.engine.delete_index(p.target_index)
            ctx.crash("rollback.engine_done")
            detail["target"] = f"deleted {p.target_index}"
        else:
            detail["target"] = f"{p.target_index} not ours: left alone"
    else:
        detail["target"] = "none to delete"
    # A swap racing this rollback may have moved an alias onto the target just before it
    # was deleted, taking the alias with it: check once more.
    restored += _restore_aliases(ctx)
    if restored:
        detail["aliases"] = f"back on {p.source_index}: {sorted(set(restored))}"
    if task_ids or ctx.record.task_id:
        detail["task_results"] = task_results.delete_all(ctx)
    return {"detail": detail}
