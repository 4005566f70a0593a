"""PLANNED -> TARGET_CREATED: create the target with the planned settings and mappings."""

from __future__ import annotations

from typing import Any

from ..errors import TargetExists
from ..runplan import Plan
from . import target
from .context import RunContext
from .plan import owner_of


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
        return {**target.recorded(ctx), "detail": detail}
    ctx.engine.create_index(p.target_index, {**p.settings, **p.copy_settings}, p.mappings)
    ctx.crash("create_target.engine_done")
    # its identity: the copy writes into, and the swap moves the alias onto, this index only
    return {**target.recorded(ctx), "detail": {"target": p.target_index}}
