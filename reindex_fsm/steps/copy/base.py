"""What every copy strategy answers, so that the runner and the other steps ask it
instead of branching on which copy a run makes, and what the strategies share."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...engine.base import Engine, EngineInfo
from ...errors import CopyFailed, UsageError
from ...options import RunOptions
from ...plan import Plan
from ..context import RunContext

# A document as a deep verification reads it: (ID, routing, _source).
Doc = tuple[str, str | None, dict[str, Any] | None]


@dataclass(frozen=True)
class Prepared:
    """What a strategy decided at plan time, for the Plan."""

    plan_values: dict[str, Any] = field(default_factory=dict)  # Plan fields (its typed plan)
    mappings: dict[str, Any] | None = None  # merged over the target's mappings
    settings: dict[str, Any] = field(default_factory=dict)  # extra target settings
    target_count: int | None = None  # documents the target is to hold, when known


@dataclass(frozen=True)
class CopiedFrom:
    """What a deep verification compares the target with."""

    input_path: str | None = None  # a file the copy read instead of the source index
    computed_fields: tuple[str, ...] = ()  # fields the copy writes itself: not compared
    computed_as: str = "written by the copy"  # what those fields are, for the record's note
    read_input: Callable[[int], Iterator[Doc]] | None = None  # the file, in batches of n


class CopyStrategy(Protocol):
    """One way of copying the source into the target (REINDEXING)."""

    name: str
    flag: str  # the start option that chooses it ("" for the default)
    can_rethrottle: bool  # its rate is a _reindex task's, changed by ``rethrottle``
    rate_set_by: str  # what sets its rate instead, when it cannot be rethrottled
    # What was written to the source during the copy can be copied again by a _reindex
    # pass (the catch-up write policy, and a copy again after a block came off).
    copies_again_by_reindex: bool

    def chosen_by(self, options: RunOptions) -> bool:
        """The run's options choose this strategy."""
        ...

    def planned(self, p: Plan) -> bool:
        """The plan was made for this strategy."""
        ...

    def refuses(self, options: RunOptions) -> UsageError | None:
        """An option this strategy cannot honour (checked before anything is read)."""
        ...

    def warnings(self, options: RunOptions) -> list[str]:
        """What the operator is warned of before the run starts."""
        ...

    def input_file(self, options: RunOptions) -> str | None:
        """The file the copy reads documents from, instead of the source's ``_source``."""
        ...

    def prepare(
        self,
        engine: Engine,
        info: EngineInfo,
        options: RunOptions,
        source_index: str,
        source_count: int,
        source_mappings: dict[str, Any],
    ) -> Prepared:
        """Check everything the copy needs, before anything is written."""
        ...

    def describe(self, p: Plan) -> dict[str, Any]:
        """The copy's step, for --dry-run and the confirmation prompt."""
        ...

    def start(self, ctx: RunContext) -> dict[str, Any]:
        """TARGET_CREATED -> REINDEXING: start the copy; the values to store."""
        ...

    def wait(self, ctx: RunContext) -> dict[str, Any]:
        """REINDEXING -> VERIFYING: follow the copy to its end; the values to store."""
        ...

    def source_index_count(self, p: Plan) -> int:
        """The source index's document count at plan time."""
        ...

    def input_path(self, p: Plan) -> str | None:
        """The file the target's documents come from (None: the source index)."""
        ...

    def verify_check(self, p: Plan) -> str | None:
        """What verification checks, as the plan says it (None: the count check)."""
        ...

    def verify_checks(
        self, ctx: RunContext, target_count: int, detail: dict[str, Any]
    ) -> list[str]:
        """The problems verification finds with the copy (count and the strategy's own
        checks); what was checked is added to ``detail``."""
        ...

    def copied_from(self, p: Plan) -> CopiedFrom:
        """What a deep verification compares the target with."""
        ...

    def copied(self, progress: dict[str, Any]) -> int | None:
        """Documents written, from the stored progress (None: not this strategy's)."""
        ...


# -- failures, as a _reindex task or a bulk response reports them --------------------------

# "failed to parse field [title] of type [integer] in document with id 'd3'. ..."
_FIELD = re.compile(r"field \[([^\]]+)\] of type \[([^\]]+)\]")
MAX_REASON = 400  # characters of an engine reason kept in the error line


def reason(cause: Any) -> str:
    """``type: reason`` of an engine error object, with its innermost ``caused_by``."""
    if not isinstance(cause, dict):
        return str(cause)[:MAX_REASON]
    text = str(cause.get("reason") or cause.get("type") or cause)[:MAX_REASON]
    kind = cause.get("type")
    out = f"{kind}: {text}" if kind and kind != text else text
    inner = cause.get("caused_by")
    while isinstance(inner, dict) and isinstance(inner.get("caused_by"), dict):
        inner = inner["caused_by"]
    if isinstance(inner, dict) and inner.get("reason"):
        out += f" (caused by {inner.get('type', 'error')}: {str(inner['reason'])[:MAX_REASON]})"
    return out


def failure_cause(failure: dict[str, Any]) -> Any:
    """Why one document failed, wherever the answer keeps it: a ``_reindex`` task's
    ``cause``, a bulk item's ``error``, a search failure's ``reason`` (else the failure)."""
    return failure.get("cause") or failure.get("error") or failure.get("reason") or failure


def describe_failure(failure: dict[str, Any]) -> str:
    """One document's failure, as a ``_reindex`` task or a bulk response reports it: which
    document, which field (named outright: the engine's brackets are easily lost), why."""
    cause = failure_cause(failure)
    doc_id = failure.get("id", failure.get("_id"))
    parts = []
    if doc_id is not None:
        index = failure.get("index", failure.get("_index"))
        parts.append(f"document {doc_id}" + (f" (index {index})" if index else ""))
    elif failure.get("shard") is not None:  # a search failure: reading the source
        parts.append(f"reading {failure.get('index')} shard {failure['shard']}")
    found = _FIELD.search(str(cause.get("reason", "")) if isinstance(cause, dict) else "")
    if found:
        parts.append(f"field {found.group(1)} (mapped as {found.group(2)}) refused its value")
    return ", ".join([*parts, reason(cause)])


def bulk_refused(ctx: RunContext, errors: list[Any], size: int, number: int, by: str) -> CopyFailed:
    """The failure of a bulk batch some of whose documents ``by`` (the engine, the target
    cluster) refused: how many of how many, and the first one's reason."""
    first = errors[0]
    item: Any = next(iter(first.values()), {}) if isinstance(first, dict) else {}
    why = describe_failure(item) if isinstance(item, dict) and item else str(first)
    return CopyFailed(
        f"{len(errors)} of {size} documents of batch {number} were refused by {by}, first: {why}",
        run_id=ctx.run_id,
        state=ctx.record.state.value,
    )
