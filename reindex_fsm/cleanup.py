"""cleanup: delete the indices (and left-over templates) earlier runs of an alias created,
beyond the newest few (``--keep N``) and/or older than an age (``--older-than 14d``),
never one that is live or used by an unfinished run.

Retention by age: an index's age is the engine's ``index.creation_date`` against the
clock of this process. With both ``--keep N`` and ``--older-than AGE``, an index is deleted
only if it is beyond the newest N *and* older than AGE (each rule keeps what it keeps:
the newest N are there for undo whatever their age, and nothing younger than AGE goes);
with one of them, that rule alone decides.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
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


_AGE = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str, flag: str = "--older-than") -> timedelta:
    """An age as typed: a whole number and a unit, m(inutes), h(ours), d(ays) or w(eeks):
    30m, 12h, 14d, 2w. Anything else (or 0) is a UsageError, one line."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise UsageError(
            f"{flag} {text!r} is not an age",
            hint="give a whole number above 0 and a unit: 30m, 12h, 14d or 2w",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _age_text(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _ago(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    return f"{hours:.0f}h ago" if hours < 48 else f"{hours / 24:.0f}d ago"


def check_rules(keep: int | None, older_than: timedelta | str | None) -> timedelta | None:
    """The rules of a cleanup, refused (UsageError) before anything is opened: at least
    one of ``keep`` and ``older_than``, each in range. The age, parsed (None: none)."""
    if keep is None and older_than is None:
        raise UsageError(
            "cleanup needs --keep N, --older-than AGE, or both",
            hint="e.g. --keep 1 --older-than 14d: deletes what is beyond the newest 1 and "
            "older than 14 days",
        )
    if keep is not None and keep < 0:
        raise UsageError(f"--keep {keep} must be 0 or more")
    age = parse_age(older_than) if isinstance(older_than, str) else older_than
    if age is not None and age <= timedelta(0):
        raise UsageError(f"--older-than {age} must be more than 0")
    return age


def cleanup(
    cfg: Config,
    alias: str,
    keep: int | None,
    dry_run: bool = False,
    *,
    only: set[str] | None = None,
    delete_undo_index: bool = False,
    older_than: timedelta | str | None = None,
) -> list[CleanupRow]:
    """Delete the indices earlier runs of ``alias`` created, beyond the newest ``keep``
    and/or older than ``older_than`` (both given: only an index beyond the newest
    ``keep`` AND older than that; a text such as ``14d`` is parsed by :func:`parse_age`).

    Only an index whose ``_meta`` names reindex-fsm, this alias and a run of the state
    database whose target it is, counts as ours. Never deleted, and not counted: one that
    carries any alias (live), and the source or target of an unfinished run. The index
    that ``undo`` of the alias's newest SWAPPED run moves the alias back to is kept (beyond
    the newest ``keep``) unless ``delete_undo_index``. ``only``: delete none but these (the ones the
    operator confirmed).
    """
    age = check_rules(keep, older_than)
    keep_n = keep or 0
    rules = " and ".join(
        ([f"beyond the newest {keep}"] if keep is not None else [])
        + ([f"older than {_age_text(age)}"] if age is not None else [])
    )
    now = cfg.now()
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
        elif kept < keep_n:
            kept += 1
            verdict = ("keep", f"one of the newest {keep} (run {run.id}, {run.state})")
        elif age is not None and not _older(index.created_ms, now, age):
            created_at = _created(index.created_ms)
            verdict = (
                "keep",
                f"not older than {_age_text(age)} (created {_ago(now - created_at)})"
                if created_at
                else "its creation date is unknown: not known to be older",
            )
        elif swapped is not None and index.name == swapped.source_index:
            undo_note = f"`reindex-fsm undo {swapped.id}` moves the alias back to it"
            verdict = (
                ("delete", f"{undo_note}: deleting it makes that undo impossible")
                if delete_undo_index
                else ("keep", f"{undo_note} (--force deletes it too)")
            )
        else:
            verdict = ("delete", f"{rules} (run {run.id}, {run.state})")
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


def _created(created_ms: int) -> datetime | None:
    return datetime.fromtimestamp(created_ms / 1000, UTC) if created_ms > 0 else None


def _older(created_ms: int, now: datetime, age: timedelta) -> bool:
    created = _created(created_ms)
    return created is not None and now - created > age
