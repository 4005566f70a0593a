"""PLANNED -> TARGET_CREATED: create the target with the planned settings and mappings.

When index templates match the target's name, the run's own template keeps them off it
while it is created (:mod:`.templates`: put right before, deleted right after). Once
created, the target is checked: no alias, and no setting, field or mapping key that was
not planned (a template made by someone else between the check and the create). A
target that is not the planned one is deleted at once (it is empty, and an alias a
template put on it would point at two indices) and the run is refused
(:class:`~.templates.TemplateConflict`, CANCELLED).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from ..engine.base import IndexDefinition
from ..errors import (
    EngineError,
    EngineUnreachable,
    LockHeld,
    ReindexFsmError,
    TargetExists,
    TargetRefused,
)
from ..plan import Plan
from . import lifecycle, target, templates
from .context import RunContext
from .planning import is_volatile
from .target import OPERATIONAL_SETTINGS, owner_of

# Settings the engine writes on every new index whatever the request says.
ENGINE_WRITTEN = ("index.number_of_shards", "index.number_of_replicas")
MAX_LISTED = 5


def plan(p: Plan) -> dict[str, Any]:
    return {
        "step": "create_target",
        "index": p.target_index,
        "settings": p.settings,
        "mappings": p.mappings,
        "while_copying": p.copy_settings,
        "templates": p.templates,
        "template_guard": templates.guard_plan(p),
    }


def run(ctx: RunContext) -> dict[str, Any]:
    p = ctx.plan
    if ctx.engine.index_exists(p.target_index):
        owner = owner_of(ctx.engine, p.target_index)
        if owner != ctx.run_id:
            raise TargetExists(p.target_index, owner)
        detail: dict[str, Any] = {"target": p.target_index, "resumed": "target already created"}
        with _guarded(ctx, detail):
            found = _check_created(ctx)
        detail.update(lifecycle.release_target(ctx))
        return {**target.recorded(ctx, found), "detail": detail}
    detail = {"target": p.target_index}
    with _guarded(ctx, detail) as guarded:
        guarded.present = templates.guard(ctx, detail)
        try:
            ctx.engine.create_index(p.target_index, {**p.settings, **p.copy_settings}, p.mappings)
        except EngineError as exc:
            # 400 and no index made: the engine refused the planned settings or mappings (an
            # option error), which only this create truly validates. (A 400 "already exists"
            # is a retried create or a race: the index is there, the usual checks decide.)
            if exc.status == 400 and not ctx.engine.index_exists(p.target_index):
                reason = re.sub(r"^\S+ \S+ failed \(HTTP 400\): ", "", exc.message)
                raise TargetRefused(p.target_index, reason, ctx.run_id) from exc
            raise
        ctx.crash("create_target.engine_done")
        found = _check_created(ctx)
    detail.update(lifecycle.release_target(ctx))  # not live: no lifecycle policy acts on it yet
    # its identity: the copy writes into, and the swap moves the alias onto, this index only
    return {**target.recorded(ctx, found), "detail": detail}


class _guarded:
    """Delete the run's own template once the block is done, whether it succeeded or
    failed (a refusal ends the run CANCELLED: nothing of it may be left). Not when the
    lease is lost (a process that lost it writes nothing) or the engine is unreachable:
    the template is then deleted by whatever ends the run (a resume, a rollback)."""

    def __init__(self, ctx: RunContext, detail: dict[str, Any]) -> None:
        self.ctx, self.detail = ctx, detail
        self.present: bool | None = None  # whether the template is there (None: unknown)

    def __enter__(self) -> _guarded:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: Any, _tb: Any) -> None:
        if self.present is False:
            return
        if kind is None:
            self.detail.update(templates.release(self.ctx))
        elif issubclass(kind, ReindexFsmError) and not issubclass(
            kind, LockHeld | EngineUnreachable
        ):
            # the error being raised says more; a rollback deletes the template later
            with contextlib.suppress(EngineError):
                templates.release(self.ctx)


def _unplanned_settings(p: Plan, actual: Mapping[str, Any]) -> dict[str, Any]:
    planned = {**p.settings, **p.copy_settings}
    return {
        key: value
        for key, value in sorted(actual.items())
        if key not in planned
        and key not in ENGINE_WRITTEN
        and not is_volatile(key)
        and not _operational(key)
    }


def _operational(key: str) -> bool:
    return any(key == o or (o.endswith(".") and key.startswith(o)) for o in OPERATIONAL_SETTINGS)


def unplanned(p: Plan, found: IndexDefinition, aliases: Mapping[str, Any]) -> dict[str, Any]:
    """What the target has that was not planned: ``{"aliases", "settings", "fields",
    "mappings"}`` (any alias; a setting, a field or a top-level mapping key the plan does
    not have; the planned ones' values are the request's own: the engine lets the create
    request win over a template)."""
    planned_fields = set(templates.field_paths(p.mappings))
    return {
        "aliases": sorted(aliases),
        "settings": _unplanned_settings(p, found.settings),
        "fields": [f for f in templates.field_paths(found.mappings) if f not in planned_fields],
        "mappings": sorted(k for k in found.mappings if k not in p.mappings),
    }


def from_templates(p: Plan, extra: dict[str, Any], could: dict[str, Any]) -> list[str]:
    """The unplanned parts a template could have added (``could``: what the templates
    matching now would add): any alias (the engine adds none by itself); a setting,
    field or mapping key only if a template has it (a setting the engine writes on every
    new index, say one the source was created too early to have, is not a template's)."""
    listed = [
        f"alias {name}" + (" (the live alias)" if name == p.alias else "")
        for name in extra["aliases"]
    ]
    listed += [
        f"setting {key}={value}"
        for key, value in extra["settings"].items()
        if key in could["settings"]
    ]
    listed += [f"field {f}" for f in extra["fields"] if f in could["fields"]]
    listed += [f"mapping {k}" for k in extra["mappings"] if k in could["mappings"]]
    return listed


def _check_created(ctx: RunContext) -> IndexDefinition:
    """The target just created (or found created on a resume) is the planned one; else
    it is deleted (it is this run's and empty) and the run refused."""
    p = ctx.plan
    found = ctx.engine.get_index(p.target_index)
    extra = unplanned(p, found, ctx.engine.get_index_aliases(p.target_index))
    if not any(extra.values()):
        return found
    now = templates.matching_now(ctx.engine, p)
    differences = from_templates(p, extra, templates.could_add(ctx.engine, p, now))
    if not differences:
        return found
    by = f"index template(s) {templates.names(now)}" if now else "a template (none matches now)"
    ctx.engine.delete_index(p.target_index)
    ctx.crash("create_target.mismatch_deleted")
    shown = "; ".join(differences[:MAX_LISTED])
    more = len(differences) - MAX_LISTED
    raise templates.TemplateConflict(
        p.target_index,
        f"the target {p.target_index} was created with what {by} added ({shown}"
        f"{f' and {more} more' if more > 0 else ''}): it was deleted",
        ctx.run_id,
        hint="a template matching it was made after the run checked (see `GET "
        f"_index_template/_simulate_index/{p.target_index}`); start again",
    )
