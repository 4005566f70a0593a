"""TARGET_CREATED -> REINDEXING -> VERIFYING: the server-side ``_reindex`` copy.

Starting: adopt a running task of this run if the engine has one (we crashed
after starting it), else store the intent (copy_attempts + 1), then start. A
second attempt copies with ``op_type=create, conflicts=proceed``: documents
already in the target are skipped, so copying again is idempotent.

Waiting: poll the Tasks API with backoff (:mod:`..poll`), storing progress. A task the
engine no longer knows (404, no stored result) is not a failure: copy again. At every
poll the target must still be the index the run created (its uuid and ``_meta``): one
deleted meanwhile is re-created by the engine with default mappings, so the task is
cancelled and the run fails (:mod:`..target`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ... import events
from ...engine.base import Engine, EngineInfo, ReindexRequest, TaskStatus
from ...errors import CopyFailed, UsageError
from ...options import RunOptions
from ...plan import Plan
from .. import target
from ..context import RunContext
from ..poll import Backoff, TaskEta, Waiter
from . import tuning
from .base import CopiedFrom, Prepared, describe_failure, failure_cause, reason

COUNT_KEYS = ("created", "updated", "deleted", "version_conflicts", "noops")


def _request(ctx: RunContext, again: bool) -> ReindexRequest:
    p = ctx.plan
    size = tuning.batch_size(p.copy_tuning)  # the plan's: a resumed copy sends the same
    request = target.reindex_request(p.source_index, p.target_index, ctx.run_id, ctx.options, size)
    return replace(request, conflicts="proceed") if again else request


def start_task(ctx: RunContext) -> tuple[str, dict[str, Any]]:
    """Start (or adopt) the copy task; return its ID and what to record."""
    running = ctx.engine.list_reindex_tasks(ctx.opaque_id)
    if running:
        return running[0].task_id, {"adopted": running[0].task_id}
    target.require_own_target(ctx)
    again = ctx.record.copy_attempts > 0
    ctx.checkpoint(copy_attempts=ctx.record.copy_attempts + 1)
    task_id = ctx.engine.start_reindex(_request(ctx, again))
    ctx.crash("start_copy.engine_done")
    return task_id, {"task_id": task_id, "attempt": ctx.record.copy_attempts, "again": again}


def _failure_summary(status: TaskStatus) -> str:
    if status.error:
        return reason(status.error)
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
        error.hint = failure_hint(status.failures[0], ctx.run_id)
    return error


# Causes that say the document itself does not fit the target (its mappings or settings);
# any other cause (a shard lost with its node, a full write queue, a block, a breaker) is
# the cluster's state, and the same copy can succeed once the cluster is well again.
_DOCUMENT_REFUSALS = (
    "mapper_parsing_exception",
    "document_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "mapper_exception",
)


def failure_hint(failure: dict[str, Any], run_id: str) -> str:
    """What the operator does about a copy whose documents failed, by the first failure's
    cause: change the target's definition, or let the cluster recover and resume."""
    cause = failure_cause(failure)
    kind = cause.get("type", "") if isinstance(cause, dict) else ""
    if kind in _DOCUMENT_REFUSALS or not kind:
        return (
            f"the target's mappings refuse the document: `reindex-fsm abort {run_id}`, then "
            "start again with --mappings/--set that accept it (or fix the document first)"
        )
    return (
        f"the cluster could not write the documents ({kind}), not a mapping problem: check "
        f"`GET _cluster/health` (a lost node or shard, a full write queue, a block), then "
        f"`reindex-fsm resume {run_id}` copies again over what is there"
    )


def wait_task(ctx: RunContext) -> dict[str, Any]:
    """Poll until the task completes; return its final counts."""
    waiter = Waiter(ctx.clock, ctx.sleep, Backoff.of(ctx.options))
    eta = TaskEta()  # when the task is due to end, from its progress
    last: dict[str, int] | None = None
    while True:
        task_id = ctx.record.task_id
        if task_id:  # deleted or replaced meanwhile: stop the copy, fail
            target.check_copy(ctx, task_id)
        status = ctx.engine.get_task(task_id) if task_id else None
        if task_id is None or status is None:
            new_id, detail = start_task(ctx)
            why = {"vanished_task": task_id} if task_id else {"reason": "retry of a failed copy"}
            ctx.checkpoint(event="copy_restarted", detail={**why, **detail}, task_id=new_id)
            waiter.reset()
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
        waiter.pause(eta(status))  # polled again when it is due to end, if sooner


class ReindexCopy:
    """The default: the engine copies with ``_reindex`` (slices, throttle, pipeline,
    script), the run follows the task."""

    name = "reindex"
    flag = ""
    can_rethrottle = True
    rate_set_by = "rethrottle"
    copies_again_by_reindex = True

    def chosen_by(self, options: RunOptions) -> bool:
        return True  # the default: chosen when no other strategy is

    def planned(self, p: Plan) -> bool:
        return True

    def refuses(self, options: RunOptions) -> UsageError | None:
        return None

    def warnings(self, options: RunOptions) -> list[str]:
        return []

    def input_file(self, options: RunOptions) -> str | None:
        return None

    def prepare(
        self,
        engine: Engine,
        info: EngineInfo,
        options: RunOptions,
        source_index: str,
        source_count: int,
        source_mappings: dict[str, Any],
    ) -> Prepared:
        return Prepared()

    def describe(self, p: Plan) -> dict[str, Any]:
        out = {"step": "copy", "reindex": p.reindex, "wait_for_completion": False}
        if p.copy_tuning:  # what the tool chose for the copy, and why
            out["tuning"] = p.copy_tuning
        return out

    def start(self, ctx: RunContext) -> dict[str, Any]:
        task_id, detail = start_task(ctx)
        return {"task_id": task_id, "detail": detail}

    def wait(self, ctx: RunContext) -> dict[str, Any]:
        return wait_task(ctx)

    def source_index_count(self, p: Plan) -> int:
        return p.source_count

    def input_path(self, p: Plan) -> str | None:
        return None

    def verify_check(self, p: Plan) -> str | None:
        return None

    def verify_checks(
        self, ctx: RunContext, target_count: int, detail: dict[str, Any]
    ) -> list[str]:
        p = ctx.plan
        expected = detail["source_count"]
        if target_count == expected:
            return []
        return [
            f"target {p.target_index} has {target_count} documents, "
            f"source {p.source_index} had {expected}"
            f" (version conflicts {detail['version_conflicts']},"
            f" task failures {detail['task_failures']})"
        ]

    def copied_from(self, p: Plan) -> CopiedFrom:
        return CopiedFrom()

    def copied(self, progress: dict[str, Any]) -> int | None:
        if "strategy" in progress or not any(k in progress for k in COUNT_KEYS):
            return None
        return sum(int(progress.get(k) or 0) for k in COUNT_KEYS)
