"""PLANNED -> TARGET_CREATED: create the target with the planned settings and mappings."""

from __future__ import annotations

import re
from typing import Any

from ..errors import EngineError, TargetExists, TargetRefused
from ..plan import Plan
from . import lifecycle, target
from .context import RunContext
from .target import owner_of


def plan(p: Plan) -> dict[str, Any]:
    return {
        "step": "create_target",
        "index": p.target_index,
        "settings": p.settings,
        "mappings": p.mappings,
        "while_copying": p.copy_settings,
    }


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    if ctx.engine.index_exists(p.target_index):
        owner = owner_of(ctx.engine, p.target_index)
        if owner != ctx.run_id:
            raise TargetExists(p.target_index, owner)
        detail = {"target": p.target_index, "resumed": "target already created"}
        detail.update(lifecycle.release_target(ctx))
        return {**target.recorded(ctx), "detail": detail}
    try:
        ctx.engine.create_index(p.target_index, {**p.settings, **p.copy_settings}, p.mappings)
    except EngineError as exc:
        # 400 and no index made: the engine refused the planned settings or mappings (an
        # option error), which only this create truly validates. (A 400 "already exists" is
        # a retried create or a race: the index is there, the usual checks decide.)
        if exc.status == 400 and not ctx.engine.index_exists(p.target_index):
            reason = re.sub(r"^\S+ \S+ failed \(HTTP 400\): ", "", exc.message)
            raise TargetRefused(p.target_index, reason, ctx.run_id) from exc
        raise
    ctx.crash("create_target.engine_done")
    released = lifecycle.release_target(ctx)  # not live: no lifecycle policy acts on it yet
    # its identity: the copy writes into, and the swap moves the alias onto, this index only
    return {**target.recorded(ctx), "detail": {"target": p.target_index, **released}}
