"""The run's own target: its identity is recorded when the run creates it, checked while
the copy writes into it, and checked with its definition right before the swap.

A name is not an identity. An index deleted during a copy is re-created by the engine on
the copy's next bulk request, with dynamic mappings and one shard, under the same name; an
index someone else creates under that name is another index too. The ``index.uuid`` the
target had when the run created it is stored with the plan (``Plan.target_uuid``); the
target is this run's only while it has that uuid and its ``_meta`` names the run.
"""

from __future__ import annotations

from typing import Any

from ..engine.base import IndexDefinition
from ..errors import CopyFailed, EngineError, IndexNotFound, RunStepFailed
from ..plan import Plan
from .context import RunContext
from .deep_verify import compare_mappings
from .planning import META_KEY

# Settings an operator (or the engine's auto-expand) changes on a live index without
# changing what it holds or how it answers: not compared before the swap.
OPERATIONAL_SETTINGS = (
    "index.number_of_replicas",
    "index.auto_expand_replicas",
    "index.refresh_interval",
    "index.routing.allocation.",
)
MAX_LISTED = 5  # differences named in the error line


def read(ctx: RunContext) -> IndexDefinition | None:
    """The definition of the index now under the target's name; None when there is none."""
    try:
        return ctx.engine.get_index(ctx.plan.target_index)
    except IndexNotFound:
        return None


def identity(found: IndexDefinition) -> tuple[str | None, str | None]:
    """``(index.uuid, run ID in its _meta)`` of an index."""
    meta = (found.mappings.get("_meta") or {}).get(META_KEY) or {}
    owner = meta.get("run_id") if isinstance(meta, dict) else None
    return found.settings.get("index.uuid"), owner


def not_own(ctx: RunContext, found: IndexDefinition | None) -> str | None:
    """Why ``found`` (what :func:`read` returned) is not the index this run created, the
    target (None: it is)."""
    p = ctx.plan
    if found is None:
        return f"target {p.target_index} was deleted"
    uuid, owner = identity(found)
    if p.target_uuid is not None and uuid != p.target_uuid:
        if owner == ctx.run_id:  # our _meta, another index: copied by hand, not ours
            return f"target {p.target_index} was replaced by another index (uuid {uuid})"
        return f"target {p.target_index} was deleted"
    if owner != ctx.run_id:
        return (
            f"target {p.target_index} is not this run's: its _meta names "
            f"{'run ' + owner if owner else 'no run of reindex-fsm'}"
        )
    return None


def recorded(ctx: RunContext, found: IndexDefinition | None = None) -> dict[str, Any]:
    """The values that store the target's uuid with the plan, when the target is this
    run's and its uuid is not stored yet."""
    p = ctx.plan
    found = read(ctx) if found is None else found
    if found is None:
        return {}
    uuid, owner = identity(found)
    if owner != ctx.run_id or p.target_uuid == uuid:
        return {}
    return {"plan": {**p.to_dict(), "target_uuid": uuid}}


def _stop(ctx: RunContext, task_id: str) -> str:
    """Cancel the run's copy task and wait for it to end: a task still running would
    re-create (or keep writing into) the index under the target's name."""
    try:  # at once: every moment it runs it may write into the wrong index
        ctx.engine.cancel_task(task_id)
    except EngineError as exc:
        if exc.status != 404:
            raise
        return f"task {task_id} had ended"
    deadline = ctx.clock() + ctx.options.cancel_wait_s
    delay = ctx.options.poll_interval_s
    while ctx.clock() < deadline:
        status = ctx.engine.get_task(task_id)
        if status is None or status.completed:
            return f"task {task_id} cancelled"
        ctx.sleep(delay)
        delay = min(delay * 1.5, ctx.options.poll_max_interval_s)
    return (
        f"task {task_id} cancelled but still running after {ctx.options.cancel_wait_s:.0f}s "
        f"(POST _tasks/{task_id}/_cancel)"
    )


def check_copy(ctx: RunContext, task_id: str | None) -> None:
    """While the copy runs: the target must still be the run's. If it is not, stop the
    copy (cancelled and awaited) and fail the run with the reason."""
    why = not_own(ctx, read(ctx))
    if why is None:
        return
    stopped = f"; {_stop(ctx, task_id)}" if task_id else ""
    p = ctx.plan
    found = read(ctx)
    if found is None:
        now = "no index of that name now"
    elif identity(found)[1] is None:
        now = (
            f"the index {p.target_index} there now (the engine re-created it with default "
            "mappings, or someone else created it) is not this run's and is left alone"
        )
    else:
        now = f"the index {p.target_index} there now is not this run's and is left alone"
    error = CopyFailed(
        f"{why} during the copy{stopped}; {now}; nothing was swapped",
        run_id=ctx.run_id,
        state=ctx.record.state.value,
        task_id=task_id,
    )
    error.hint = (
        f"`reindex-fsm abort {ctx.run_id}` ends the run (delete that index yourself if it "
        "is not wanted), then start again"
    )
    raise error


def require_own(ctx: RunContext, doing: str) -> None:
    """Before a step writes to the target (verify puts its final settings back): it must be
    the run's. RunStepFailed otherwise, naming what was not done."""
    why = not_own(ctx, read(ctx))
    if why is None:
        return
    error = RunStepFailed(
        f"{why}: not {doing} it; the alias stays on {ctx.plan.source_index}",
        run_id=ctx.run_id,
        state=ctx.record.state.value,
    )
    error.hint = f"`reindex-fsm abort {ctx.run_id}` ends the run, then start again"
    raise error


def _operational(key: str) -> bool:
    return any(key == o or (o.endswith(".") and key.startswith(o)) for o in OPERATIONAL_SETTINGS)


def _settings_differences(p: Plan, actual: dict[str, Any]) -> dict[str, Any]:
    """Planned settings not in effect on the target, compared as the mappings are."""
    planned = {key: value for key, value in p.settings.items() if not _operational(key)}
    return compare_mappings(planned, actual)


def check_before_swap(ctx: RunContext) -> dict[str, Any]:
    """Right before the ``_aliases`` request: the target is this run's index (uuid and
    ``_meta``), and its mappings and settings are the planned ones (replica count, refresh
    interval and allocation aside). RunStepFailed otherwise; the alias is not moved."""
    p = ctx.plan
    found = read(ctx)
    why = not_own(ctx, found)
    if found is not None and why is None:
        mappings = compare_mappings(p.mappings, found.mappings)
        settings = _settings_differences(p, found.settings)
        count = mappings["difference_count"] + settings["difference_count"]
        if not count:
            return {"target": f"{p.target_index} is this run's, with the planned definition"}
        listed = [
            f"{d['path']} planned {d['planned']!r}, is {d['actual']!r}"
            for d in mappings["differences"] + settings["differences"]
        ]
        why = (
            f"target {p.target_index} no longer has the planned definition "
            f"({count} difference(s): {'; '.join(listed[:MAX_LISTED])})"
        )
    error = RunStepFailed(
        f"{why}: not swapping onto it; the alias stays on {p.source_index}",
        run_id=ctx.run_id,
        state=ctx.record.state.value,
    )
    error.hint = f"`reindex-fsm abort {ctx.run_id}` ends the run, then start again"
    raise error
