"""TARGET_CREATED -> REINDEXING -> VERIFYING: the server-side ``_reindex`` copy.

Starting: adopt a running task of this run if the engine has one (we crashed
after starting it), else store the intent (copy_attempts + 1), then start. A
second attempt copies with ``op_type=create, conflicts=proceed``: documents
already in the target are skipped, so copying again is idempotent.

Waiting: poll the Tasks API with backoff, storing progress. A task the engine
no longer knows (404, no stored result) is not a failure: copy again. At every poll
the target must still be the index the run created (its uuid and ``_meta``): one
deleted meanwhile is re-created by the engine with default mappings, so the task is
cancelled and the run fails (:mod:`.target`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from .. import events
from ..engine.base import ReindexRequest, TaskStatus
from ..errors import CopyFailed
from ..plan import Plan
from . import target
from .context import RunContext
from .planning import reindex_request


def plan(p: Plan) -> dict[str, Any]:
    return {"step": "copy", "reindex": p.reindex, "wait_for_completion": False}


def _request(ctx: RunContext, again: bool) -> ReindexRequest:
    p = ctx.plan
    request = reindex_request(p.source_index, p.target_index, ctx.run_id, ctx.options)
    return replace(request, conflicts="proceed") if again else request


def require_own_target(ctx: RunContext) -> None:
    """Refuse to copy into a target that is gone or not this run's: the engine would create
    a missing one with default mappings on the first write. Records the target's uuid when
    the run does not hold it yet (a run planned by an earlier version)."""
    p = ctx.plan
    found = target.read(ctx)
    why = target.not_own(ctx, found)
    if why is not None:
        raise CopyFailed(
            f"{why}: not copying into it (the engine would create a missing {p.target_index} "
            "with default mappings)",
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
    values = target.recorded(ctx, found)
    if values:
        ctx.checkpoint(**values)


def start(ctx: RunContext) -> tuple[str, dict[str, Any]]:
    """Start (or adopt) the copy task; return its ID and what to record."""
    running = ctx.engine.list_reindex_tasks(ctx.opaque_id)
    if running:
        return running[0].task_id, {"adopted": running[0].task_id}
    require_own_target(ctx)
    again = ctx.record.copy_attempts > 0
    ctx.checkpoint(copy_attempts=ctx.record.copy_attempts + 1)
    task_id = ctx.engine.start_reindex(_request(ctx, again))
    ctx.crash("start_copy.engine_done")
    return task_id, {"task_id": task_id, "attempt": ctx.record.copy_attempts, "again": again}


def run_start(ctx: RunContext) -> dict[str, Any]:
    task_id, detail = start(ctx)
    return {"task_id": task_id, "detail": detail}


# "failed to parse field [title] of type [integer] in document with id 'd3'. ..."
_FIELD = re.compile(r"field \[([^\]]+)\] of type \[([^\]]+)\]")
MAX_REASON = 400  # characters of an engine reason kept in the error line


def _reason(cause: Any) -> str:
    """``type: reason`` of an engine error object, with its innermost ``caused_by``."""
    if not isinstance(cause, dict):
        return str(cause)[:MAX_REASON]
    text = str(cause.get("reason") or cause.get("type") or cause)[:MAX_REASON]
    kind = cause.get("type")
    out = f"{kind}: {text}" if kind and kind != text else text
    inner = cause.get("caused_by")
    while isinstance(inner, dict) and isinstance(inner.get("caused_by"), dict):
        inner = inner["caused_by"]
    if isinstance(inner, dict) and inner.get("reason"):
        out += f" (caused by {inner.get('type', 'error')}: {str(inner['reason'])[:MAX_REASON]})"
    return out


def describe_failure(failure: dict[str, Any]) -> str:
    """One document's failure, as a ``_reindex`` task or a bulk response reports it: which
    document, which field (named outright: the engine's brackets are easily lost), why."""
    cause = failure.get("cause") or failure.get("error") or failure.get("reason") or failure
    doc_id = failure.get("id", failure.get("_id"))
    parts = []
    if doc_id is not None:
        index = failure.get("index", failure.get("_index"))
        parts.append(f"document {doc_id}" + (f" (index {index})" if index else ""))
    elif failure.get("shard") is not None:  # a search failure: reading the source
        parts.append(f"reading {failure.get('index')} shard {failure['shard']}")
    found = _FIELD.search(str(cause.get("reason", "")) if isinstance(cause, dict) else "")
    if found:
        parts.append(f"field {found.group(1)} (mapped as {found.group(2)}) refused its value")
    return ", ".join([*parts, _reason(cause)])


def _failure_summary(status: TaskStatus) -> str:
    if status.error:
        return _reason(status.error)
    first = status.failures[0]
    return f"{len(status.failures)} document(s) failed, first: {describe_failure(first)}"


def _failed_copy(ctx: RunContext, task_id: str, status: TaskStatus) -> CopyFailed:
    error = CopyFailed(
        f"reindex task {task_id} failed: {_failure_summary(status)}",
        run_id=ctx.run_id,
        state=ctx.record.state.value,
        task_id=task_id,
    )
    if status.failures and not status.error:
        error.hint = (
            f"the target's mappings refuse the document: `reindex-fsm abort {ctx.run_id}`, then "
            "start again with --mappings/--set that accept it (or fix the document first)"
        )
    return error


def run_wait(ctx: RunContext) -> dict[str, Any]:
    """Poll until the task completes; return its final counts."""
    opts = ctx.options
    delay = opts.poll_interval_s
    last: dict[str, int] | None = None
    while True:
        task_id = ctx.record.task_id
        if task_id:  # deleted or replaced meanwhile: stop the copy, fail
            target.check_copy(ctx, task_id)
        status = ctx.engine.get_task(task_id) if task_id else None
        if status is None:
            new_id, detail = start(ctx)
            why = {"vanished_task": task_id} if task_id else {"reason": "retry of a failed copy"}
            ctx.checkpoint(event="copy_restarted", detail={**why, **detail}, task_id=new_id)
            delay = opts.poll_interval_s
            continue
        counts = status.counts()
        changed = counts != last
        if changed:
            ctx.checkpoint(progress=counts)
            last = counts
        if changed or status.completed:  # the completion is reported even if no count moved
            ctx.reporter.emit(ctx.record, events.Progress.from_status(status))
        if status.completed:
            if status.cancelled:
                raise CopyFailed(
                    f"reindex task {task_id} was cancelled",
                    run_id=ctx.run_id,
                    state=ctx.record.state.value,
                    task_id=task_id,
                )
            if status.failed:
                raise _failed_copy(ctx, task_id, status)
            target.check_copy(ctx, task_id)  # e.g. deleted right before the last batch
            return {"progress": counts, "detail": {"task_id": task_id, **counts}}
        ctx.sleep(delay)
        delay = min(delay * 1.5, opts.poll_max_interval_s)
