"""Delete the stored results (``.tasks``) of a run's finished copy tasks, once the run is
done with them: at the swap and at rollback. Best effort: a result already gone or a
refusal (Elasticsearch 8 forbids it) is recorded in the event detail, never a failure."""

from __future__ import annotations

from ..errors import EngineError
from .context import RunContext


def run_task_ids(ctx: RunContext) -> list[str]:
    """Every task ID the run stored: the current one and those in its events."""
    ids: list[str] = []
    candidates = [ctx.record.task_id]
    for event in ctx.repo.events(ctx.run_id):
        detail = event.detail or {}
        candidates += [detail.get("task_id"), detail.get("adopted"), detail.get("vanished_task")]
    for task_id in candidates:
        if isinstance(task_id, str) and task_id and task_id not in ids:
            ids.append(task_id)
    return ids


def delete_all(ctx: RunContext) -> dict[str, str]:
    """``{task_id: deleted | none stored | kept: <reason>}`` for every task of the run."""
    outcome: dict[str, str] = {}
    for task_id in run_task_ids(ctx):
        try:
            deleted = ctx.engine.delete_task_result(task_id)
        except EngineError as exc:
            outcome[task_id] = f"kept: {exc.message}"
            continue
        outcome[task_id] = "deleted" if deleted else "none stored"
    return outcome
