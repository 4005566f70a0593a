"""What a run's record alone says of its write block and of the gate before its swap:
for ``show``, ``history`` and the lines of ``start``/``resume``. Nothing here asks the engine
or loads the steps' machinery (``show`` stays a quick read); the gate's actions are in
:mod:`.gate`, the write policies' in :mod:`.write_policy`.
"""

from __future__ import annotations

from typing import Any

from ..machine import GATED
from ..options import RunOptions
from ..store import RunRecord

GATE_KEY = "gate"  # the key of the pause's record in runs.verification


def is_blocked(write_policy: dict[str, Any] | None) -> bool:
    """The run holds a write block on its source (recorded, maybe not yet put on)."""
    return bool(
        write_policy and write_policy.get("blocked") and not write_policy.get("pre_existing")
    )


def pauses(options: RunOptions) -> bool:
    return bool(options.pause_before_swap)


def record_of(record: RunRecord) -> dict[str, Any] | None:
    """What the pause stored (None: the run never paused, or the record was replaced)."""
    found = (record.verification or {}).get(GATE_KEY)
    return dict(found) if isinstance(found, dict) else None


def approved(record: RunRecord) -> bool:
    """``swap`` was asked for since the run reached the gate (a crash may have cut it)."""
    return record.state in GATED and bool((record_of(record) or {}).get("approved_at"))


# -- what show, start and resume say about a run at the gate ---------------------------------------
def view(record: RunRecord) -> dict[str, Any] | None:
    """The verification a human decides on, as plain data (None: the run never paused)."""
    gate = record_of(record)
    if gate is None:
        return None
    options = RunOptions.from_dict(record.options)
    held = record.write_policy or {}
    progress = record.progress or {}
    deep = {k: v for k, v in (record.verification or {}).items() if k != GATE_KEY} or None
    if options.write_policy == "catch-up":
        counted = "after the last catch-up pass, under the final block"
    elif is_blocked(held):
        counted = "under the write block"
    else:
        counted = "at plan time"
    data: dict[str, Any] = {
        "waiting": record.state in GATED,
        "paused_at": gate.get("paused_at"),
        "approved_at": gate.get("approved_at"),
        "check": options.verify_level if options.verify else "none (--no-verify)",
        "source_count": record.source_count,
        "source_counted": counted,
        "target_count": record.target_count,
        "counts_equal": record.source_count == record.target_count,
        "version_conflicts": progress.get("version_conflicts", 0),
        "task_failures": progress.get("failures", 0),
        "deep": _deep_view(deep),
        "marks": {"source": gate.get("source"), "target": gate.get("target")},
        "write_block": block_line(record),
    }
    if gate.get("verified_again"):
        data["verified_again"] = gate["verified_again"]
    return data


def _deep_view(deep: dict[str, Any] | None) -> dict[str, Any] | None:
    if not deep:
        return None
    docs = deep.get("documents") or {}
    return {
        "passed": bool(deep.get("passed")),
        "documents_compared": docs.get("compared"),
        "missing_in_target": (docs.get("missing_in_target") or {}).get("count", 0),
        "differing": (docs.get("differing") or {}).get("count", 0),
        "only_in_target": (docs.get("only_in_target") or {}).get("count", 0),
        "mapping_differences": (deep.get("mappings") or {}).get("difference_count", 0),
        "queries_failed": (deep.get("queries") or {}).get("failed"),
    }


def block_line(record: RunRecord) -> str:
    """Whether the run keeps writers out while it waits at the gate, one sentence."""
    options = RunOptions.from_dict(record.options)
    held = record.write_policy or {}
    index = held.get("index") or record.source_index
    if is_blocked(held):
        return f"writes to {index} are BLOCKED (HTTP 403) by this run until `swap` or `abort`"
    if options.write_policy == "catch-up":
        return (
            f"writes to {index} go on; `swap` blocks them again for a last catch-up pass, "
            "the verification again and the swap"
        )
    return f"writes to {index} are not blocked by this run"


def next_steps(record: RunRecord) -> list[str]:
    """Whether writers are kept out, and the commands that end a run waiting at the gate,
    one sentence each."""
    return [
        block_line(record),
        f"`reindex-fsm swap {record.id}` checks again what may have changed and moves alias "
        f"{record.alias} to {record.target_index}",
        f"`reindex-fsm abort {record.id}` gives up: deletes the target {record.target_index}, "
        "leaves the alias and lifts the block",
    ]


def waiting_line(record: RunRecord) -> str:
    """The one stderr line of a start or resume that ended at the gate."""
    return (
        f"run {record.id} is VERIFIED and waits before its swap (--pause-before-swap): "
        f"`reindex-fsm show {record.id}` shows the verification, `reindex-fsm swap "
        f"{record.id}` moves the alias, `reindex-fsm abort {record.id}` cleans up"
    )


def confirmation(options: RunOptions) -> list[str]:
    """What start's question adds for a run that pauses."""
    if not pauses(options):
        return []
    tail = (
        "writes go on while it waits"
        if options.write_policy == "catch-up"
        else "writes stay BLOCKED while it waits"
    )
    return [f"gate:       stops VERIFIED before the swap; `swap RUN_ID` continues ({tail})"]
