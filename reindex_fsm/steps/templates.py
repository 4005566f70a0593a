"""Index templates: what the cluster's templates would give the target, and the run's own
template that keeps them off it while it is created.

A new index gets the settings, mappings and aliases of the one composable template
(``_index_template``) of highest priority whose ``index_patterns`` match its name, or,
when no composable template matches, of every matching legacy template (``_template``,
merged in ``order``). A template that sets ``index.max_result_window``, adds a field or
adds an alias (the live alias itself, which then points at two indices) would silently
change the target.

At plan time the templates matching the target's name are listed with what each would
add (:func:`describe`, the plan's ``templates``: shown by ``--dry-run`` and ``plan``).
Right before the target is created, when any template matches, the run puts its own
composable template (:func:`own_name`, ``_meta`` naming the run as the target's does;
``index_patterns`` the target's exact name; a priority above every matching template's;
an empty body): being the highest-priority composable match, it is the only template
that applies, and it adds nothing. It is deleted right after the target is created, and
by every path that ends the run (a rollback, an abort, ``cleanup``), only ever when its
``_meta`` names the run. What the engine would refuse (no priority above the highest,
the put refused) is refused with one line naming the templates (:class:`TemplateConflict`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..engine.base import Engine, IndexTemplate, index_settings
from ..errors import EngineError, EngineUnreachable, PreflightFailed, TargetRefused, UsageError
from ..plan import Plan
from .context import RunContext

OWN_PREFIX = "reindex-fsm-"  # the run's own template: reindex-fsm-<run id>
META_KEY = "reindex_fsm"  # as the target's _meta (steps/target.py)
MAX_PRIORITY = 2**63 - 1  # a template's priority is a non-negative long
MAX_SHOWN = 5  # names listed in one line


class TemplateConflict(TargetRefused):
    """The target cannot be created with exactly the planned definition: a template would
    add to it and the run cannot keep it off, or it did (someone made a template between
    the check and the create). Nothing is kept: the run ends CANCELLED, its alias free."""

    def __init__(self, index: str, reason: str, run_id: str, hint: str) -> None:
        super().__init__(index, reason, run_id)
        self.message = reason
        self.hint = f"{hint}; nothing was kept: run {run_id} is CANCELLED and the alias free"
        self.args = (reason,)


def own_name(run_id: str) -> str:
    return f"{OWN_PREFIX}{run_id}".lower()  # template names are lowercase


def matches(pattern: str, name: str) -> bool:
    """An index pattern as the engines match it (``Regex.simpleMatch``): ``*`` is the
    only wildcard (the engines refuse ``?`` in a pattern)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


def matching(templates: list[IndexTemplate], name: str, hidden: bool) -> list[IndexTemplate]:
    """The templates whose patterns match ``name``; a hidden index is not matched by a
    global (``*``) pattern, as the engines skip those for it."""
    return [
        t
        for t in templates
        if any(matches(p, name) and not (hidden and p == "*") for p in t.index_patterns)
    ]


def field_paths(mappings: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every field a mapping defines (objects' sub-fields as ``a.b``)."""
    out: list[str] = []
    for name, spec in sorted((mappings.get("properties") or {}).items()):
        out.append(f"{prefix}{name}")
        if isinstance(spec, Mapping):
            out.extend(field_paths(spec, f"{prefix}{name}."))
    return out


def additions(settings: Mapping[str, Any], mappings: Mapping[str, Any], aliases: Any) -> dict:
    """What a template body adds, as the plan shows it."""
    return {
        "settings": index_settings(settings),
        "fields": field_paths(mappings),
        "mappings": sorted(k for k in mappings if k not in ("properties", "_meta")),
        "aliases": sorted(aliases or {}),
    }


def _summary(t: IndexTemplate, added: dict[str, Any], alias: str) -> str:
    parts = [f"{k}={v}" for k, v in added["settings"].items()]
    parts += [f"field {f}" for f in added["fields"]]
    parts += [f"mapping {k}" for k in added["mappings"]]
    parts += [f"alias {a}" + (" (the live alias)" if a == alias else "") for a in added["aliases"]]
    if t.composed_of:
        parts.append(f"component templates {', '.join(t.composed_of)}")
    if t.data_stream:
        parts.append("data_stream (a plain index of this name would be refused)")
    rank = f"priority {t.priority}" if t.kind == "composable" else f"order {t.priority}"
    return f"{t.name} ({t.kind}, {rank}) would add {', '.join(parts) or 'nothing'}"


def describe(engine: Engine, target: str, settings: Mapping[str, Any], alias: str) -> list[dict]:
    """The templates matching ``target``, each with what it would add and whether it
    would apply (reads only): the plan's ``templates``. A composable template of the
    highest possible priority cannot be outranked: refused here (UsageError)."""
    hidden = str(settings.get("index.hidden", "")).lower() == "true"
    found = matching(engine.index_templates(), target, hidden)
    found = [t for t in found if not t.name.startswith(OWN_PREFIX)]
    if not found:
        return []
    composable = sorted(
        (t for t in found if t.kind == "composable"), key=lambda t: (-t.priority, t.name)
    )
    winner = composable[0] if composable else None
    resolved = engine.simulate_index(target) if winner is not None else None
    out = []
    for t in composable + sorted((t for t in found if t.kind == "legacy"), key=_order):
        if t is winner and resolved:  # the engine's own answer: component templates merged
            added = additions(
                resolved.get("settings") or {},
                resolved.get("mappings") or {},
                resolved.get("aliases"),
            )
        else:
            added = additions(t.settings, t.mappings, t.aliases)
        if t is winner:
            would = "would apply: the matching composable template of highest priority"
        elif t.kind == "composable":
            would = f"would not apply: {winner.name if winner else '?'} has a higher priority"
        elif winner is not None:
            would = f"would not apply: the composable template {winner.name} matches"
        else:
            would = "would apply: legacy templates apply when no composable one matches"
        out.append(
            {
                "name": t.name,
                "kind": t.kind,
                ("priority" if t.kind == "composable" else "order"): t.priority,
                "index_patterns": list(t.index_patterns),
                "applies": t is winner or (winner is None and t.kind == "legacy"),
                "why": would,
                "adds": added,
                "adds_live_alias": alias in added["aliases"],
                "data_stream": t.data_stream,
                "summary": _summary(t, added, alias),
            }
        )
    _check_privilege(engine, found)
    top = max((t.priority for t in composable), default=0)
    if top >= MAX_PRIORITY:
        raise UsageError(
            f"index template {composable[0].name} matches the target name {target!r} with "
            "the highest priority there is: the run cannot keep it off the target",
            hint="give --target-index a name no template matches; nothing was done",
        )
    return out


def _check_privilege(engine: Engine, found: list[IndexTemplate]) -> None:
    """The run's own template needs ``manage_index_templates``: where the engine can say
    the caller lacks it (Elasticsearch), refused before anything is written."""
    check = engine.check_privileges(["manage_index_templates"], [])
    if check is not None and check.checked and check.missing:
        raise PreflightFailed(
            "privileges",
            f"index template(s) {names(found)} match the target name, and keeping them off "
            f"it needs the manage_index_templates cluster privilege, which user "
            f"{check.user or '?'} lacks",
            hint="grant it, or give --target-index a name no template matches; nothing was written",
        )


def _order(t: IndexTemplate) -> tuple[int, str]:
    return t.priority, t.name


def guard_plan(p: Plan) -> str | None:
    """What the run does about the templates, for the plan (None: none matches)."""
    if not p.templates:
        return None
    return (
        f"{own_name(p.run_id)} (index_patterns [{p.target_index}], a priority above every "
        "matching template's, adds nothing) is put right before the target is created and "
        "deleted right after, so no template adds anything to the target"
    )


# -- the run's own template ---------------------------------------------------------------


def names(found: list[IndexTemplate]) -> str:
    shown = [f"{t.name} ({t.kind})" for t in found[:MAX_SHOWN]]
    more = len(found) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _owner(t: IndexTemplate) -> str | None:
    meta = t.meta.get(META_KEY)
    return meta.get("run_id") if isinstance(meta, dict) else None


def _what_they_add(found: list[IndexTemplate], alias: str) -> str:
    aliases = sorted({a for t in found for a in t.aliases})
    if aliases:
        live = " (the live alias)" if alias in aliases else ""
        return f"would put alias(es) {', '.join(aliases)}{live} on the target"
    return "would add settings or mappings to the target"


def guard(ctx: RunContext, detail: dict[str, Any]) -> bool:
    """Right before the target is created: when any template matches its name (read
    now, not at plan time), put the run's own template above them (said in ``detail``).
    Whether the run's own template is there now (put now, or left by a crash).
    TemplateConflict when it cannot be put (nothing written then)."""
    p = ctx.plan
    name = own_name(ctx.run_id)
    every = ctx.engine.index_templates()
    mine = next((t for t in every if t.kind == "composable" and t.name == name), None)
    if mine is not None and _owner(mine) != ctx.run_id:
        raise TemplateConflict(
            p.target_index,
            f"an index template named {name} exists and is not this run's (its _meta names "
            f"{_owner(mine) or 'no run'})",
            ctx.run_id,
            hint=f"delete that template (DELETE _index_template/{name}), then start again",
        )
    hidden = str(p.settings.get("index.hidden", "")).lower() == "true"
    others = [t for t in matching(every, p.target_index, hidden) if t.name != name]
    if not others:
        return mine is not None
    priority = max((t.priority for t in others if t.kind == "composable"), default=0) + 1
    if priority > MAX_PRIORITY:
        raise TemplateConflict(
            p.target_index,
            f"index template(s) {names(others)} match the target {p.target_index} with the "
            "highest priority there is: the run cannot keep them off it",
            ctx.run_id,
            hint="give --target-index a name no template matches",
        )
    body = {
        "index_patterns": [p.target_index],
        "priority": priority,
        "template": {},
        "_meta": {
            META_KEY: {
                "run_id": ctx.run_id,
                "alias": p.alias,
                "target_index": p.target_index,
                "tool": "reindex-fsm",
            }
        },
    }
    try:
        ctx.engine.put_index_template(name, body)
    except EngineUnreachable:
        raise
    except EngineError as exc:
        raise TemplateConflict(
            p.target_index,
            f"index template(s) {names(others)} {_what_they_add(others, p.alias)} "
            f"{p.target_index}, and the run could not put its own template {name} to keep "
            f"them off: {exc.message}",
            ctx.run_id,
            hint="grant the manage_index_templates cluster privilege, or give --target-index "
            "a name no template matches",
        ) from exc
    ctx.crash("create_target.template_put")
    detail["template"] = f"{name} (priority {priority}) keeps {names(others)} off the target"
    return True


def release(ctx: RunContext, point: str = "create_target.template_deleted") -> dict[str, Any]:
    """Delete the run's own template if it is there and its ``_meta`` names the run
    (never another's); {} when there is none. ``point``: the crash point after it."""
    name = own_name(ctx.run_id)
    mine = next(
        (t for t in ctx.engine.index_templates() if t.kind == "composable" and t.name == name),
        None,
    )
    if mine is None:
        return {}
    if _owner(mine) != ctx.run_id:
        return {"template_left": f"{name} is not this run's: left alone"}
    ctx.engine.delete_index_template(name)
    ctx.crash(point)
    return {"template_deleted": name}


def leftover(engine: Engine, run_id: str) -> bool:
    """Whether the run's own template is still there (a crash before its delete)."""
    name = own_name(run_id)
    return any(
        t.kind == "composable" and t.name == name and _owner(t) == run_id
        for t in engine.index_templates()
    )


def could_add(engine: Engine, p: Plan, found: list[IndexTemplate]) -> dict[str, Any]:
    """Everything the templates ``found`` (and the composable one that would apply now,
    component templates merged) would add, as :func:`additions` lists it, merged."""
    parts = [additions(t.settings, t.mappings, t.aliases) for t in found]
    resolved = engine.simulate_index(p.target_index) if found else None
    if resolved:
        parts.append(
            additions(
                resolved.get("settings") or {},
                resolved.get("mappings") or {},
                resolved.get("aliases"),
            )
        )
    return {
        "settings": {k for part in parts for k in part["settings"]},
        "fields": {f for part in parts for f in part["fields"]},
        "mappings": {k for part in parts for k in part["mappings"]},
    }


def matching_now(engine: Engine, p: Plan) -> list[IndexTemplate]:
    """The templates other than the run's own that match the target's name now."""
    hidden = str(p.settings.get("index.hidden", "")).lower() == "true"
    found = matching(engine.index_templates(), p.target_index, hidden)
    return [t for t in found if t.name != own_name(p.run_id)]


def stale(engine: Engine, alias: str, finished: Mapping[str, bool]) -> list[tuple[str, str, str]]:
    """``cleanup``: the run-owned templates of ``alias`` (``_meta``), each as ``(name,
    run ID, why)`` when its run is in ``finished`` (run ID -> whether it is finished)
    and finished (a template left by a crash): the ones to delete."""
    out = []
    for t in engine.index_templates():
        meta = t.meta.get(META_KEY)
        if t.kind != "composable" or not t.name.startswith(OWN_PREFIX):
            continue
        if not isinstance(meta, dict) or meta.get("alias") != alias:
            continue
        run_id = str(meta.get("run_id"))
        if t.name == own_name(run_id) and finished.get(run_id):
            out.append((t.name, run_id, f"index template of finished run {run_id}, left over"))
    return out
