"""cleanup: delete the indices (and left-over templates) earlier runs of an alias created,
beyond the newest few, never one that is live or used by an unfinished run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .config import Config
from .errors import UsageError
from .machine import State
from .steps import templates
from .steps.planning import META_KEY


@dataclass(frozen=True)
class CleanupRow:
    index: str
    created: str  # ISO 8601, UTC
    run_id: str | None
    action: str  # "delete", "deleted", "keep"
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cleanup(
    cfg: Config,
    alias: str,
    keep: int,
    dry_run: bool = False,
    *,
    only: set[str] | None = None,
    delete_undo_index: bool = False,
) -> list[CleanupRow]:
    """Delete the indices earlier runs of ``alias`` created, beyond the newest ``keep``.

    Only an index whose ``_meta`` names reindex-fsm, this alias and a run of the state
    database whose target it is, counts as ours. Never deleted, and not counted: one that
    carries any alias (live), and the source or target of an unfinished run. The index
    that ``undo`` of the alias's newest SWAPPED run moves the alias back to is kept (beyond
    the newest ``keep``) unless ``delete_undo_index``. ``only``: delete none but these (the ones the
    operator confirmed).
    """
    if keep < 0:
        raise UsageError(f"--keep {keep} must be 0 or more")
    repo = cfg.repo()
    runs = {r.id: r for r in repo.list(alias=alias, limit=None)}
    busy = {
        name
        for r in repo.list(limit=None)
        if not r.finished
        for name in (r.source_index, r.target_index)
    }
    # repo.list is newest first: the run an undo of the alias would undo
    swapped = next((r for r in runs.values() if r.state is State.SWAPPED), None)
    engine = cfg.engine()
    rows: list[CleanupRow] = []
    kept = 0
    for index in reversed(engine.describe_indices("*")):  # newest first
        meta = index.meta.get(META_KEY)
        if not isinstance(meta, dict) or meta.get("tool") != "reindex-fsm":
            continue
        if meta.get("alias") != alias:
            continue
        run = runs.get(str(meta.get("run_id")))
        if run is None or run.target_index != index.name:
            verdict = ("keep", "its run is not in this state database: not known to be ours")
        elif index.aliases:
            verdict = ("keep", f"live: carries alias {', '.join(index.aliases)}")
        elif index.name in busy:
            verdict = ("keep", "used by an unfinished run")
        elif kept < keep:
            kept += 1
            verdict = ("keep", f"one of the newest {keep} (run {run.id}, {run.state})")
        elif swapped is not None and index.name == swapped.source_index:
            undo_note = f"`reindex-fsm undo {swapped.id}` moves the alias back to it"
            verdict = (
                ("delete", f"{undo_note}: deleting it makes that undo impossible")
                if delete_undo_index
                else ("keep", f"{undo_note} (--force deletes it too)")
            )
        else:
            verdict = ("delete", f"beyond the newest {keep} (run {run.id}, {run.state})")
        created = datetime.fromtimestamp(index.created_ms / 1000, UTC).isoformat()
        rows.append(CleanupRow(index.name, created, meta.get("run_id"), *verdict))
    # -- index templates: a run's own, left over (by a crash) once the run finished --
    stale = templates.stale(engine, alias, {r.id: r.finished for r in runs.values()})
    rows += [CleanupRow(name, "", run_id, "delete", why) for name, run_id, why in stale]
    if dry_run:
        return rows
    done: list[CleanupRow] = []
    for r in rows:
        if r.action == "delete" and only is not None and r.index not in only:
            r = replace(r, action="keep", reason="not among the indices confirmed")
        elif r.action == "delete":
            if not r.created and r.index == templates.own_name(r.run_id or ""):  # a template
                engine.delete_index_template(r.index)
                r = replace(r, action="deleted")
            # An alias added since the listing makes it live again: check right before.
            elif engine.get_index_aliases(r.index):
                r = replace(r, action="keep", reason="got an alias meanwhile")
            else:
                engine.delete_index(r.index)
                r = replace(r, action="deleted")
        done.append(r)
    return done
