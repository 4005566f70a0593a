"""VERIFYING: refresh the target and count it; with --verify the count must equal
the source's count snapshotted at plan time."""

from __future__ import annotations

from typing import Any

from ..errors import VerificationFailed
from ..runplan import Plan
from .context import RunContext


def plan(p: Plan, verify: bool) -> dict[str, Any]:
    check = f"target count == {p.source_count}" if verify else "none (pass --verify)"
    return {"step": "verify", "refresh": p.target_index, "check": check}


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    ctx.engine.refresh(p.target_index)
    target_count = ctx.engine.count(p.target_index)
    progress = ctx.record.progress or {}
    detail: dict[str, Any] = {
        "source_count": p.source_count,
        "target_count": target_count,
        "version_conflicts": progress.get("version_conflicts", 0),
        "task_failures": progress.get("failures", 0),
        "verified": ctx.options.verify,
    }
    if ctx.options.verify and target_count != p.source_count:
        raise VerificationFailed(
            f"verification failed: target {p.target_index} has {target_count} documents, "
            f"source {p.source_index} had {p.source_count}"
            f" (version conflicts {detail['version_conflicts']},"
            f" task failures {detail['task_failures']})",
            run_id=ctx.run_id,
            state=ctx.record.state.value,
        )
    return {"target_count": target_count, "detail": detail}
