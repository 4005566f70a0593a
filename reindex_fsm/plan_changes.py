"""What a planned run would change, alias by alias, for ``apply --dry-run``: the target's
settings and mappings against the source's, the aliases the swap moves, the index
templates in the way, the lifecycle policy handed over. Made from the Plan (what the run
would create) and the source's definition as the engine holds it now; reads only."""

from __future__ import annotations

from typing import Any

from .engine.base import IndexDefinition
from .plan import Plan
from .render import plan_warnings, template_lines
from .steps.planning import flatten_settings, is_volatile
from .steps.target import META_KEY


def changes(p: Plan, source: IndexDefinition, options: Any) -> dict[str, Any]:
    """The dry run's picture of one alias (JSON-ready)."""
    return {
        "alias": p.alias,
        "source_index": p.source_index,
        "target_index": p.target_index,
        "documents": p.source_count,
        # the lifecycle settings held back until the swap are the target's from then on
        "settings": settings_diff(
            source.settings, {**p.settings, **((p.lifecycle or {}).get("after_swap") or {})}
        ),
        "copy_settings": dict(p.copy_settings),
        "mappings": mappings_diff(source.mappings, p.mappings),
        "aliases": alias_moves(p),
        "templates": list(p.templates),
        "lifecycle": p.lifecycle,
        "warnings": plan_warnings(p, options),
    }


def settings_diff(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Flat settings: each key the target has other than the source (``[from, to]``),
    has and the source not (``added``), lacks (``removed``: the engine's default)."""
    before = {k: v for k, v in flatten_settings(source).items() if not is_volatile(k)}
    after = flatten_settings(target)
    return {
        "changed": {
            k: [before[k], after[k]]
            for k in sorted(after)
            if k in before and _text(before[k]) != _text(after[k])
        },
        "added": {k: after[k] for k in sorted(after) if k not in before},
        "removed": {k: before[k] for k in sorted(before) if k not in after},
    }


def _text(value: Any) -> str:
    """Settings as the engine returns them are strings: 3 and "3" are the same."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


def mappings_diff(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Top-level mapping keys and the fields under ``properties``: changed (from, to),
    added, removed; the run's own ``_meta`` tag is not a change."""
    before, after = _without_tag(source), _without_tag(target)
    out: dict[str, Any] = {"changed": {}, "added": {}, "removed": {}}
    for section, old, new in (
        (
            "",
            {k: v for k, v in before.items() if k != "properties"},
            {k: v for k, v in after.items() if k != "properties"},
        ),
        ("properties.", before.get("properties") or {}, after.get("properties") or {}),
    ):
        for key in sorted(set(old) | set(new)):
            name = section + key
            if key not in old:
                out["added"][name] = new[key]
            elif key not in new:
                out["removed"][name] = old[key]
            elif old[key] != new[key]:
                out["changed"][name] = [old[key], new[key]]
    return out


def _without_tag(mappings: dict[str, Any]) -> dict[str, Any]:
    out = dict(mappings)
    meta = {k: v for k, v in (out.get("_meta") or {}).items() if k != META_KEY}
    if meta:
        out["_meta"] = meta
    else:
        out.pop("_meta", None)
    return out


def alias_moves(p: Plan) -> list[dict[str, Any]]:
    """The aliases the swap moves from the source to the target, with their properties."""
    return [
        {"alias": name, "from": p.source_index, "to": p.target_index, "properties": props}
        for name, props in sorted(p.aliases.items())
    ]


def lines(change: dict[str, Any], p: Plan) -> list[str]:
    """The human picture of :func:`changes`, one fact a line."""
    out = [
        f"alias {change['alias']}: {change['source_index']} -> {change['target_index']} "
        f"({change['documents']:,} documents)"
    ]
    settings = change["settings"]
    for key, (old, new) in settings["changed"].items():
        out.append(f"  setting  ~ {key}: {_show(old)} -> {_show(new)}")
    for key, new in settings["added"].items():
        out.append(f"  setting  + {key}: {_show(new)}")
    for key, old in settings["removed"].items():
        out.append(f"  setting  - {key} (was {_show(old)}; the engine's default)")
    for key, value in change["copy_settings"].items():
        out.append(f"  while copying: {key}: {_show(value)}")
    mappings = change["mappings"]
    for key, (old, new) in mappings["changed"].items():
        out.append(f"  mapping  ~ {key}: {_show(old)} -> {_show(new)}")
    for key, new in mappings["added"].items():
        out.append(f"  mapping  + {key}: {_show(new)}")
    for key, old in mappings["removed"].items():
        out.append(f"  mapping  - {key} (was {_show(old)})")
    if not any(settings.values()) and not any(mappings.values()):
        out.append("  settings and mappings: as the source's")
    for move in change["aliases"]:
        props = f" {_show(move['properties'])}" if move["properties"] else ""
        out.append(f"  alias    {move['alias']}: {move['from']} -> {move['to']}{props}")
    out.extend(f"  template {line}" for line in template_lines(p))
    for note in (change["lifecycle"] or {}).get("notes", []):
        out.append(f"  lifecycle {note}")
    out.extend(f"  warning  {w}" for w in change["warnings"])
    return out


def _show(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
