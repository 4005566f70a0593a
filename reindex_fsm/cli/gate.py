"""``swap RUN_ID``: let a run waiting at the gate (VERIFIED, ``--pause-before-swap``)
through, after a question on a terminal (``--force``: none); and the gate's part of
``show`` (what the run verified, for a human to decide on)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from ..flags import FORCE_UNLOCK_RESUME, Flag
from .lazy import lazy
from .options import common_flags, config_for, engine_flags, with_flags
from .prompts import confirm, need_terminal
from .rendering import print_outcome

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from .. import gate as gate_api
    from .. import render
else:
    gate_api = lazy("reindex_fsm.gate")
    render = lazy("reindex_fsm.render")

SWAP_FLAGS = (
    Flag(("--force",), "Do not ask for confirmation.", kind="bool"),
    FORCE_UNLOCK_RESUME,
)


@click.command()
@click.argument("run_id")
@with_flags(SWAP_FLAGS)
@engine_flags
@common_flags
@click.pass_context
def swap(
    ctx: click.Context,
    run_id: str,
    force: bool,
    force_unlock: bool,
    engine_url: str | None,
    engine_kind: str,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Swap RUN_ID, which waits at the gate (VERIFIED) after `start --pause-before-swap`.

    First checked again: the alias still on the source, the target still the run's own and
    as verified (document count and max_seq_no), the source as verified (the block still
    on, its count and max_seq_no); what may have changed is copied again and verified again
    (the catch-up policy's last pass, under a short block). Then the swap of any run: exit
    0 once SWAPPED. A check that fails fails the run (exit 4, or 5 for the target), the
    alias untouched. Asks first on a terminal (--force: no question).

    \b
    Example:
      reindex-fsm show 3f2a9c1b7d4e && reindex-fsm swap 3f2a9c1b7d4e
    """
    cfg = config_for(ctx, state_db, engine_url, engine_kind)
    record, view = gate_api.pending(cfg, run_id)
    if not force:
        need_terminal("swap", hint="pass --force (and look at `reindex-fsm show RUN_ID` first)")
        confirm(
            question_lines(record.alias, record.source_index, record.target_index, view),
            f"Move alias {record.alias} from {record.source_index} to {record.target_index}?",
        )
    print_outcome(ctx, gate_api.swap(cfg, run_id, force_unlock=force_unlock))


def question_lines(alias: str, source: str, target: str, view: dict[str, Any] | None) -> list[str]:
    """The few lines shown before ``swap`` asks."""
    lines = [f"alias:      {alias}", f"swap:       {source} -> {target}"]
    if view is not None:
        lines += [
            f"verified:   {_counts(view)} (check {view['check']}) at {view['paused_at']}",
            f"writes:     {view['write_block']}",
        ]
        deep = view.get("deep")
        if deep is not None:
            lines.append(f"deep:       {_deep_line(deep)}")
    return lines


def _counts(view: dict[str, Any]) -> str:
    return (
        f"target {view['target_count']} documents, source {view['source_count']} "
        f"({view['source_counted']})"
    )


def _deep_line(deep: dict[str, Any]) -> str:
    result = "passed" if deep["passed"] else "DIFFERENCES"
    return (
        f"{result}: {deep['documents_compared']} documents compared, "
        f"{deep['missing_in_target']} missing in the target, {deep['differing']} differing, "
        f"{deep['only_in_target']} only in the target; "
        f"{deep['mapping_differences']} mapping difference(s)"
        + (f"; {deep['queries_failed']} query(ies) failed" if deep["queries_failed"] else "")
    )


def print_gate(view: dict[str, Any]) -> None:
    """``show``: what the run verified before its swap, one row per fact."""
    title = "at the gate before the swap" if view["waiting"] else "the gate before the swap"
    table = render.table(title, show_header=False)
    state = "WAITING for `swap` or `abort`" if view["waiting"] else "passed"
    render.add_row(table, render.text("gate", "bold"), state)
    render.add_row(table, "paused at", view["paused_at"])
    if view.get("approved_at"):
        render.add_row(table, "swap asked at", view["approved_at"])
    render.add_row(table, "check", view["check"])
    equal = "equal" if view["counts_equal"] else "NOT equal"
    render.add_row(table, "counts", f"{_counts(view)}: {equal}")
    render.add_row(
        table,
        "copy",
        f"{view['version_conflicts']} version conflict(s), {view['task_failures']} failure(s)",
    )
    if view.get("deep") is not None:
        render.add_row(table, "deep", _deep_line(view["deep"]))
    for which in ("target", "source"):
        found = view["marks"].get(which) or {}
        seq = found.get("max_seq_no")
        render.add_row(
            table,
            f"{which} marks",
            f"count {found.get('count')}, max_seq_no "
            + (json.dumps(seq, sort_keys=True) if seq is not None else "not known"),
        )
    render.add_row(table, "writes", view["write_block"])
    if view.get("verified_again"):
        render.add_row(table, "verified again", view["verified_again"])
    render.print_out(table)
