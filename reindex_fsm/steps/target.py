"""The run's own target: its identity is recorded when the run creates it, checked while
the copy writes into it, and checked with its definition right before the swap.

A name is not an identity. An index deleted during a copy is re-created by the engine on
the copy's next bulk request, with dynamic mappings and one shard, under the same name; an
index someone else creates under that name is another index too. The ``index.uuid`` the
target had when the run created it is stored with the plan (``Plan.target_uuid``); the
target is this run's only while it has that uuid and its ``_meta`` names the run.

The helpers every step uses on the run's indices live here too: ownership (``_meta``,
:func:`owner_of`, :func:`index_uuid`), the copy's ``_reindex`` request, the swap's alias
actions, and the target's final settings (put back after the copy, with the health
wait they need).
"""

from __future__ import annotations

from typing import Any

from ..engine.base import ALIAS_PROPERTIES, Engine, IndexDefinition, ReindexRequest, opaque_id_for
from ..errors import CopyFailed, EngineError, IndexNotFound, RunStepFailed
from ..options import RunOptions
from ..plan import Plan
from .context import RunContext
from .deep_verify import compare_mappings
from .poll import Backoff, Waiter

META_KEY = "reindex_fsm"  # the key of the run's tag in an index's mappings ``_meta``
HEALTH_POLL_S = 20.0  # one health request waits at most this long (the client's timeout)

# Settings an operator (or the engine's auto-expand) changes on a live index without
# changing what it holds or how it answers: not compared before the swap.
OPERATIONAL_SETTINGS = (
    "index.number_of_replicas",
    "index.auto_expand_replicas",
    "index.refresh_interval",
    "index.routing.allocation.",
)
MAX_LISTED = 5  # differences named in the error line


def index_uuid(engine: Engine, index: str) -> str | None:
    """An index's ``index.uuid`` (None: no such index): its identity, which a name is not."""
    if not engine.index_exists(index):
        return None
    return engine.get_index(index).settings.get("index.uuid")


def owner_of(engine: Engine, index: str) -> str | None:
    """The run ID in an index's ``_meta``, if reindex-fsm created it."""
    meta = engine.get_index(index).mappings.get("_meta", {}).get(META_KEY, {})
    return meta.get("run_id") if isinstance(meta, dict) else None


def reindex_request(
    source: str, target: str, run_id: str, options: RunOptions, batch_size: int | None = None
) -> ReindexRequest:
    """The copy's request, the same at plan time and on every (re)start of the copy; the
    rate is the run's current one (``rethrottle`` stores it in the options); the scroll
    batch size is the plan's (``Plan.copy_tuning``; None: the engine's default)."""
    return ReindexRequest(
        source=source,
        dest=target,
        opaque_id=opaque_id_for(run_id),
        slices=options.slices,
        requests_per_second=options.requests_per_second,
        pipeline=options.pipeline,
        script=options.script,
        batch_size=batch_size,
    )


def swap_actions(
    source: str, target: str, aliases: dict[str, dict[str, Any]], must_exist: bool
) -> list[dict[str, Any]]:
    """One atomic request: every alias leaves the source and lands on the target with
    its properties. Removes come first so that a write index is never doubled."""
    actions: list[dict[str, Any]] = []
    for name in sorted(aliases):
        remove: dict[str, Any] = {"index": source, "alias": name}
        if must_exist:
            remove["must_exist"] = True
        actions.append({"remove": remove})
    for name, props in sorted(aliases.items()):
        add = {"index": target, "alias": name}
        add.update({k: v for k, v in props.items() if k in ALIAS_PROPERTIES})
        actions.append({"add": add})
    return actions


def final_settings(p: Plan) -> dict[str, Any]:
    """The copy-time settings' final values; None resets one to the engine default."""
    return {key: p.settings.get(key) for key in p.copy_settings}


def planned_replicas(p: Plan, restore: dict[str, Any]) -> int | None:
    """The target's replica count once ``restore`` is put back, when the plan says it (the
    create refused any setting it did not plan); None when the engine decides it (an
    ``auto_expand_replicas``, a value reset to the engine's default): ask the target."""
    key = "index.number_of_replicas"
    if str(p.settings.get("index.auto_expand_replicas", "false")).lower() != "false":
        return None
    try:
        return int(restore[key] if key in restore else p.settings[key])
    except (KeyError, TypeError, ValueError):
        return None


def restore_settings(ctx: RunContext) -> dict[str, Any]:
    """Put the final replica count and refresh interval back and wait for the health they
    allow: green when every replica can be placed on its own node (always, without
    replicas: the node count is not asked), else yellow."""
    p = ctx.plan
    restore = final_settings(p)
    if not restore:
        return {}
    ctx.engine.put_settings(p.target_index, restore)
    ctx.crash("verify.settings_restored")
    replicas = planned_replicas(p, restore)
    if replicas is None:
        found = ctx.engine.get_index(p.target_index).settings
        replicas = int(found.get("index.number_of_replicas", 1))
    expected = "green"
    if replicas > 0:
        nodes = int(ctx.engine.cluster_health().get("number_of_data_nodes", 1))
        expected = "green" if nodes > replicas else "yellow"
    # each request waits on the engine's side: no pause between them, only the deadline
    waiter = Waiter(ctx.clock, ctx.sleep, Backoff.of(ctx.options), ctx.options.health_wait_s)
    while True:  # short waits, so that no single request outlives the client's timeout
        health = ctx.engine.cluster_health(p.target_index, expected, HEALTH_POLL_S)
        if not health.get("timed_out") or waiter.expired():
            break
    if health.get("timed_out"):
        raise RunStepFailed(
            f"target {p.target_index} did not reach {expected} health within "
            f"{ctx.options.health_wait_s:.0f}s after its replicas were restored",
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
    return {"restored": restore, "health": health.get("status")}


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
    waiter = Waiter(ctx.clock, ctx.sleep, Backoff.of(ctx.options), ctx.options.cancel_wait_s)
    while not waiter.expired():
        status = ctx.engine.get_task(task_id)
        if status is None or status.completed:
            return f"task {task_id} cancelled"
        waiter.sleep()
    return (
        f"task {task_id} cancelled but still running after {ctx.options.cancel_wait_s:.0f}s "
        f"(POST _tasks/{task_id}/_cancel)"
    )


def require_own_target(ctx: RunContext) -> None:
    """Refuse to copy into a target that is gone or not this run's: the engine would create
    a missing one with default mappings on the first write. Records the target's uuid when
    the run does not hold it yet (a run planned by an earlier version)."""
    p = ctx.plan
    found = read(ctx)
    why = not_own(ctx, found)
    if why is not None:
        raise CopyFailed(
            f"{why}: not copying into it (the engine would create a missing {p.target_index} "
            "with default mappings)",
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
    values = recorded(ctx, found)
    if values:
        ctx.checkpoint(**values)


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
