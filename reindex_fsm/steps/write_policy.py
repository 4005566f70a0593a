"""What happens to writes made to the source while a run copies it (``--write-policy``).

``block`` (default): a write block on the source from just before the copy until the
swap. ``PUT <source>/_block/write`` returns once the writes in flight have finished,
so after a refresh the copy sees every acknowledged write; writers get 403 until the
swap moves the alias (their later writes go to the target) and the block comes off.

``catch-up``: no block during the main copy. Afterwards the documents whose
``--since-field`` is at or after the previous pass's start (less a margin for clock
skew and refresh delay) are copied again (``op_type=index``: a newer version replaces
the copied one), pass after pass while the delta shrinks; then a short final block,
the last delta, documents deleted from the source meanwhile are deleted from the
target, and the swap lifts the block.

The block is recorded (``runs.write_policy``) *before* it is put on, and taken off
only by the run that recorded it: on swap, rollback, abort, cancel and undo. A crash
in between leaves the record, and ``resume`` or ``abort`` finishes the job. A block
that was already on the source before the run is left as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..engine.base import Engine, ReindexRequest
from ..errors import CopyFailed, LockHeld, ReindexFsmError, StaleState, UsageError
from ..machine import State
from ..options import RunOptions
from ..plan import Plan
from . import target
from .context import RunContext
from .copy.registry import strategy_for
from .poll import Backoff, Waiter
from .views import is_blocked

# Field types a --since-field can have: a range query with an ISO timestamp works on
# dates; epoch milliseconds on numbers.
DATE_TYPES = ("date", "date_nanos")
NUMBER_TYPES = ("long", "double", "float", "scaled_float", "unsigned_long")
RECONCILE_BATCH = 1000


# -- plan time -------------------------------------------------------------------------
def field_type(mappings: dict[str, Any], path: str) -> str | None:
    """The mapped type of a (dotted) field, or None if it is not mapped."""
    props: dict[str, Any] = mappings.get("properties") or {}
    spec: dict[str, Any] = {}
    for i, part in enumerate(path.split(".")):
        spec = props.get(part) or {}
        if not spec:
            return None
        if i < len(path.split(".")) - 1:
            props = spec.get("properties") or {}
    return spec.get("type") or ("object" if "properties" in spec else None)


def check_options(options: RunOptions, source_mappings: dict[str, Any], source: str) -> None:
    """Refuse a catch-up field the source cannot order writes by, before anything is
    written (what the options alone can say, RunOptions.validate() has refused)."""
    if options.write_policy != "catch-up" or not options.since_field:
        return
    kind = field_type(source_mappings, options.since_field)
    if kind not in DATE_TYPES + NUMBER_TYPES:
        found = f"mapped as {kind}" if kind else "not mapped"
        raise UsageError(
            f"--since-field {options.since_field} is {found} in {source}: it must be a date "
            "(or epoch milliseconds)",
            hint="give the field your writers set to the time of every write",
        )


def plan(p: Plan, options: RunOptions) -> dict[str, Any]:
    if p.reads_source_only:  # another cluster as the source: see --block-source-writes
        return {
            "step": "write_policy",
            "policy": "none: the source cluster is only read",
            "while_copying": f"writes to {p.source_index} go on; verification compares the "
            "clusters' counts",
        }
    if options.write_policy == "catch-up":
        return {
            "step": "write_policy",
            "policy": "catch-up",
            "since_field": options.since_field,
            "while_copying": f"writes to {p.source_index} go on; no block",
            "after_copy": (
                f"copy again documents with {options.since_field} >= previous pass start "
                f"- {options.catch_up_margin_s:g}s, while the delta shrinks "
                f"(at most {options.catch_up_max_passes} passes)"
            ),
            "final": f"short write block on {p.source_index}, last delta, deletions "
            "reconciled, swap, unblock",
        }
    return {
        "step": "write_policy",
        "policy": "block",
        "block": f"writes to {p.source_index} are refused (HTTP 403) from just before the "
        "copy until the swap; removed on swap, rollback, abort and undo",
    }


# -- the block ---------------------------------------------------------------------------
def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def _state(ctx: RunContext) -> dict[str, Any]:
    return dict(ctx.record.write_policy or {})


def _blocked_already(engine: Engine, index: str) -> bool:
    settings = engine.get_index(index).settings
    return str(settings.get("index.blocks.write", "false")).lower() == "true"


def put_block(ctx: RunContext) -> dict[str, Any]:
    """Record the block, then put it on the source (again, on resume: it is idempotent)."""
    p, state = ctx.plan, _state(ctx)
    if not state.get("blocked"):
        state.update(
            policy=ctx.options.write_policy,
            index=p.source_index,
            blocked=True,
            pre_existing=_blocked_already(ctx.engine, p.source_index),
            blocked_at=_iso(ctx.now()),
        )
        warn = not state.get("pre_existing")  # WRITES ... ARE BLOCKED stands out
        ctx.checkpoint(
            event="write_block", detail=_block_detail(state), as_warning=warn, write_policy=state
        )
    if not state.get("pre_existing"):
        ctx.engine.add_write_block(p.source_index)
        ctx.crash("write_policy.blocked")
    return state


def _block_detail(state: dict[str, Any]) -> dict[str, Any]:
    if state.get("pre_existing"):
        return {"index": state["index"], "note": "already write-blocked before the run: kept"}
    return {
        "index": state["index"],
        "note": f"WRITES TO {state['index']} ARE BLOCKED until the swap (or rollback, abort, undo)",
    }


def release(ctx: RunContext) -> dict[str, Any]:
    """Take the run's block off the source; values to store with the next transition."""
    state = _state(ctx)
    if not state.get("blocked"):
        return {}
    detail: dict[str, Any] = {}
    if not state.get("pre_existing") and ctx.engine.index_exists(state["index"]):
        ctx.engine.remove_write_block(state["index"])
        ctx.crash("write_policy.released")
        detail = {"write_block": f"removed from {state['index']}"}
    released_at = _iso(ctx.now())
    periods = [
        *state.get("blocked_periods", []),
        {"from": state.get("blocked_at"), "to": released_at},
    ]
    state.update(blocked=False, released_at=released_at, blocked_periods=periods)
    return {"write_policy": state, "detail": detail}


def release_on_failure(ctx: RunContext, failed_from: State) -> dict[str, Any]:
    """The run is about to be FAILED: take its block off, so that a failed run (a cron job
    nobody watches) does not keep writers out until a human acts. Values to store with
    the failure; {} when the block stays: none held, ``--keep-block-on-failure``, or a
    copy strategy whose copy cannot be made again by ``_reindex`` for what changed; or when
    ``--rollback-on-failure`` rolls back next (that takes it off).

    If the copy may have written to the target, a resume blocks again and copies the
    source again with ``op_type=index`` (every document changed meanwhile replaces its
    copy), then deletes from the target what was deleted from the source meanwhile
    (``resync``, done by :func:`after_copy`), before verifying."""
    state, opts = _state(ctx), ctx.options
    again = strategy_for(ctx.plan).copies_again_by_reindex
    if not is_blocked(state) or opts.keep_block_on_failure or not again:
        return {}
    if opts.rollback_on_failure:  # the rollback that follows takes it off, after the target
        return {}
    if ctx.repo.get(ctx.run_id).state is not ctx.record.state:
        return {}  # moved by another process (an abort): no longer this one's to touch
    try:
        ctx.check_lease()  # a process that lost the run's lease writes nothing more
    except LockHeld:
        return {}
    try:
        released = release(ctx)
    except ReindexFsmError as exc:  # the failure is stored all the same, the block kept
        return {"detail": {"write_block": f"kept: removing it failed: {exc.one_line()}"}}
    state = released["write_policy"]
    wrote = failed_from in (State.REINDEXING, State.VERIFYING) or ctx.record.copy_attempts > 0
    if wrote:
        state["resync"] = True
    note = f"removed from {state['index']} on failure (--keep-block-on-failure keeps it)"
    if wrote:
        note += "; a resume blocks again and copies what changed meanwhile"
    return {"write_policy": state, "detail": {"write_block": note}}


def _recount(ctx: RunContext) -> int:
    """The source as the copy will see it: refreshed, so that every acknowledged write
    is visible to the copy's search, then counted (verification compares with this)."""
    ctx.engine.refresh(ctx.plan.source_index)
    return ctx.engine.count(ctx.plan.source_index)


# -- around the copy -----------------------------------------------------------------------
def before_copy(ctx: RunContext) -> dict[str, Any]:
    """TARGET_CREATED -> REINDEXING, before the copy starts."""
    if ctx.plan.reads_source_only:  # another cluster as the source, read only
        return {}
    opts = ctx.options
    if opts.write_policy == "catch-up":
        state = _state(ctx)
        if not state.get("copy_started_at"):  # kept across resumes: the first start counts
            state.update(
                policy="catch-up",
                index=ctx.plan.source_index,
                since_field=opts.since_field,
                blocked=False,
                copy_started_at=_iso(ctx.now()),
                passes=[],
            )
            ctx.checkpoint(write_policy=state)
        ctx.engine.refresh(ctx.plan.source_index)
        return {"write_policy": state}
    state = put_block(ctx)
    count = _recount(ctx)
    if strategy_for(ctx.plan).input_path(ctx.plan):  # the file is what the target will hold
        return {"write_policy": state, "detail": {"source_index_count": count}}
    return {"write_policy": state, "source_count": count, "detail": {"source_count": count}}


def copy_replaced(ctx: RunContext) -> bool:
    """The main copy is not to be started or waited for (again): the catch-up passes have
    begun (it finished before them), or the copy is to be made again under the block
    (:func:`after_copy` does it, with ``op_type=index``)."""
    state = _state(ctx)
    return bool(state.get("passes") or state.get("resync"))


def after_copy(ctx: RunContext) -> dict[str, Any]:
    """REINDEXING -> VERIFYING, after the main copy: the catch-up passes; for a run whose
    block came off when it failed, the block again and a copy of what changed."""
    if ctx.options.write_policy != "catch-up" and not copy_replaced(ctx):
        return {}
    while True:
        state = _state(ctx)
        passes = state.get("passes") or []
        current = passes[-1] if passes and "copied" not in passes[-1] else None
        if current is None:
            if passes and passes[-1].get("final") and not state.get("resync"):
                break
            current = _next_pass(ctx, state, passes)
        elif current.get("failed"):
            current = _again(ctx, current)
        copied = _run_pass(ctx, current)
        state = _state(ctx)
        state["passes"][-1] = {**state["passes"][-1], "copied": copied}
        ctx.checkpoint(event="catch_up_pass", detail=state["passes"][-1], write_policy=state)
    count = _recount(ctx)  # blocked now: the count the reconciliation and verify use
    deleted = _reconcile_deletes(ctx, count)
    state = _state(ctx)
    state["deleted_from_target"] = deleted
    ctx.checkpoint(write_policy=state)
    detail = {"catch_up_passes": len(state["passes"]), "deleted_from_target": deleted}
    return {"write_policy": state, "source_count": count, "detail": detail}


def resync(ctx: RunContext) -> dict[str, Any]:
    """Before verifying: a run whose block came off when it failed (after its copy had
    written) blocks again and copies what changed meanwhile (:func:`after_copy`). The
    source's count under the block is stored for verify. {} when there is nothing to do."""
    if _block_gone(ctx):
        _mark_resync(ctx)
    if not _state(ctx).get("resync"):
        return {}
    values = after_copy(ctx)
    ctx.checkpoint(source_count=values["source_count"])
    return dict(values["detail"])


def _block_gone(ctx: RunContext) -> bool:
    """The run's block is recorded as on, yet the source takes writes: it came off without
    the failure being stored (a crash right after the release) or someone lifted it. What
    was written since is not in the target: copy again (not for a copy strategy whose
    copy cannot be made again by ``_reindex``)."""
    state, p = _state(ctx), ctx.plan
    again = strategy_for(p).copies_again_by_reindex
    if not again or not is_blocked(state) or not ctx.engine.index_exists(state["index"]):
        return False
    settings = ctx.engine.get_index(state["index"]).settings
    if p.source_uuid and settings.get("index.uuid") != p.source_uuid:
        return False  # another index of that name: not the run's source to copy again from
    return str(settings.get("index.blocks.write", "false")).lower() != "true"


def _mark_resync(ctx: RunContext) -> None:
    state = _state(ctx)
    state["resync"] = True
    ctx.checkpoint(
        event="write_block_gone",
        detail={"index": state["index"], "note": "the write block is off: copying again"},
        write_policy=state,
    )


def _next_pass(
    ctx: RunContext, state: dict[str, Any], passes: list[dict[str, Any]]
) -> dict[str, Any]:
    """Decide and record the next pass; put the final block on first when it is due.

    With ``block`` a pass is only made after the block came off on a failure: one final
    pass over the whole source (``op_type=index`` replaces what changed)."""
    opts = ctx.options
    catch_up = opts.write_policy == "catch-up"
    copied = [int(p["copied"]) for p in passes]
    final = (
        not catch_up
        or bool(state.get("resync"))
        or (
            bool(passes)
            and (
                copied[-1] == 0
                or (len(copied) > 1 and copied[-1] >= copied[-2])  # no longer shrinking
                or len(passes) >= opts.catch_up_max_passes - 1
            )
        )
    )
    if final:
        if catch_up:
            # The replicas come back and recover before the block, not during it: writers
            # wait only for the last delta, the verification and the swap.
            target.restore_settings(ctx)
        state = put_block(ctx)
    since: str | None = None  # block: the whole source
    if catch_up:
        prev_start = datetime.fromisoformat(
            passes[-1]["started_at"] if passes else state["copy_started_at"]
        )
        since = _iso(prev_start - timedelta(seconds=opts.catch_up_margin_s))
    ctx.engine.refresh(ctx.plan.source_index)
    current = {
        "n": len(passes) + 1,
        "since": since,
        "started_at": _iso(ctx.now()),
        "final": final,
        "task_id": None,
    }
    if state.pop("resync", None):  # the block is on again: this pass brings it all back
        current["resync"] = True
    state["passes"] = [*passes, current]
    ctx.checkpoint(write_policy=state)
    return current


def _again(ctx: RunContext, current: dict[str, Any]) -> dict[str, Any]:
    """A pass whose task failed (and the run with it): run it again, same ``since``, now
    that the run is resumed. The block comes back first for a final pass (it came off
    when the run failed)."""
    state = put_block(ctx) if current.get("final") else _state(ctx)
    again = {k: v for k, v in current.items() if k not in ("failed", "copied")}
    again.update(task_id=None, started_at=_iso(ctx.now()), previous_failure=current["failed"])
    if current.get("final"):
        state.pop("resync", None)
    ctx.engine.refresh(ctx.plan.source_index)
    state["passes"][-1] = again
    ctx.checkpoint(write_policy=state)
    return again


def _since_value(ctx: RunContext, since: str) -> Any:
    kind = field_type(ctx.plan.mappings, ctx.options.since_field or "")
    if kind in NUMBER_TYPES:
        return int(datetime.fromisoformat(since).timestamp() * 1000)
    return since


def _pass_request(ctx: RunContext, since: str | None, final: bool) -> ReindexRequest:
    """The main copy's request (slices, throttle, pipeline, script) for the documents
    written since ``since`` (None: all of them)."""
    p = ctx.plan
    base = target.reindex_request(p.source_index, p.target_index, ctx.run_id, ctx.options)
    extra = dict(base.extra)
    if since is not None:
        source = dict(base.body()["source"])
        source["query"] = {"range": {ctx.options.since_field: {"gte": _since_value(ctx, since)}}}
        extra["source"] = source
    return replace(
        base,
        op_type="index",  # a newer version of a copied document replaces it
        conflicts="proceed",
        # unthrottled under the final block: it holds up the writers; a delta is small
        # (a copy of the whole source keeps the run's rate)
        requests_per_second=None if final and since is not None else base.requests_per_second,
        extra=extra,
    )


def _run_pass(ctx: RunContext, current: dict[str, Any]) -> int:
    """Start (or adopt) the pass's reindex task and wait for it; the documents it wrote.

    A task is started only after a compare-and-set on the run's state (the intent, the
    pass's ``attempts``): a run that was aborted or moved on by another process meanwhile
    is no longer this process's to drive, and nothing is started for it."""
    opts = ctx.options
    task_id = current.get("task_id")
    waiter = Waiter(ctx.clock, ctx.sleep, Backoff.of(opts))
    while True:
        if task_id:  # the target deleted or replaced meanwhile: stop the pass, fail
            target.check_copy(ctx, task_id)
        status = ctx.engine.get_task(task_id) if task_id else None
        if status is None:  # not started yet, or vanished: (re)start it, same since
            running = ctx.engine.list_reindex_tasks(ctx.opaque_id)
            task_id = running[0].task_id if running else None
            if task_id is None:
                _set_pass(ctx, attempts=int(current.get("attempts") or 0) + 1)  # StaleState
                current = _state(ctx)["passes"][-1]
                ctx.check_lease()
                target.require_own_target(ctx)
                request = _pass_request(ctx, current["since"], bool(current.get("final")))
                task_id = ctx.engine.start_reindex(request)
                ctx.crash("catch_up.pass_started")
                try:
                    _set_pass(ctx, task_id=task_id)
                except StaleState:  # moved while the task started: it must not run on
                    _cancel_quietly(ctx, task_id)
                    raise
                continue
            _set_pass(ctx, task_id=task_id)
            continue
        if status.completed:
            if status.failed or status.cancelled:
                why = "cancelled" if status.cancelled else (status.error or status.failures[0])
                # Recorded with the pass: a resume (once the cause is gone) runs it again
                # instead of finding the same failed task and failing the same way.
                _set_pass(ctx, failed=str(why))
                raise CopyFailed(
                    f"{_pass_name(current)} (task {task_id}) failed: {why}",
                    run_id=ctx.run_id,
                    state=ctx.record.state.value,
                    task_id=task_id,
                )
            return status.created + status.updated
        waiter.pause()


def _pass_name(current: dict[str, Any]) -> str:
    if current.get("resync"):
        return "the copy again after the write block came off"
    return f"catch-up pass {current['n']}"


def _set_pass(ctx: RunContext, **values: Any) -> None:
    """Store values of the current (last) pass; the task ID is the run's too."""
    state = _state(ctx)
    state["passes"][-1] = {**state["passes"][-1], **values}
    extra = {"task_id": values["task_id"]} if "task_id" in values else {}
    ctx.checkpoint(write_policy=state, **extra)


def _cancel_quietly(ctx: RunContext, task_id: str) -> None:
    with contextlib.suppress(ReindexFsmError):  # finished already, or the engine is gone
        ctx.engine.cancel_task(task_id)


def _reconcile_deletes(ctx: RunContext, source_count: int) -> int:
    """Documents deleted from the source during the copy are still in the target (a
    delete leaves no since-field to find). The source is blocked now: every document the
    target has beyond the source's count is one of those; find and delete them."""
    p = ctx.plan
    ctx.engine.refresh(p.target_index)
    extra = ctx.engine.count(p.target_index) - source_count
    if extra <= 0:
        return 0
    deleted = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal deleted
        found = ctx.engine.search(
            p.source_index,
            {"query": {"ids": {"values": batch}}, "size": len(batch), "_source": False},
        )
        present = {h["_id"] for h in found["hits"]["hits"]}
        gone = [i for i in batch if i not in present]
        if gone:
            ok, errors = ctx.engine.bulk(
                {"_op_type": "delete", "_index": p.target_index, "_id": i} for i in gone
            )
            failed = [e for e in errors if (e.get("delete") or {}).get("status") != 404]
            if failed:
                raise CopyFailed(
                    f"deleting {len(failed)} document(s) removed from the source during the "
                    f"copy failed: {failed[0]}",
                    run_id=ctx.run_id,
                    state=ctx.record.state.value,
                )
            deleted += ok
        batch.clear()

    for hit in ctx.engine.scan(p.target_index, {"query": {"match_all": {}}, "_source": False}):
        batch.append(hit["_id"])
        if len(batch) >= RECONCILE_BATCH:
            flush()
    if batch:
        flush()
    ctx.engine.refresh(p.target_index)
    ctx.crash("catch_up.deletes_reconciled")
    return deleted
