"""``show`` and ``history``: read the state database only, and print."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ..flags import HISTORY_FLAGS, SHOW_FLAGS
from ..machine import TERMINAL
from . import batches
from .gate import print_gate
from .lazy import lazy
from .options import common_flags, config_for, with_flags
from .rendering import emit_json, print_summary, print_verification

if TYPE_CHECKING:  # imported on first use: see cli/lazy.py
    from rich import table as rich_table

    from .. import reads, render, report
else:
    rich_table = lazy("rich.table")
    reads = lazy("reindex_fsm.reads")
    render = lazy("reindex_fsm.render")
    report = lazy("reindex_fsm.report")


@click.command()
@click.argument("run_id")
@with_flags(SHOW_FLAGS)
@common_flags
@click.pass_context
def show(
    ctx: click.Context,
    run_id: str,
    report_file: str | None,
    diagram: bool,
    state_db: str | None,
    as_json: bool,
) -> None:
    """Show RUN_ID: its state, counts and error first; for an unfinished run whether it
    blocks writes and the commands that end it; then its task status, the timeline of its
    transitions with the time spent in each state, and with --diagram its state diagram
    (Mermaid).

    Given a batch ID (batch-...): the batch and each of its runs.

    \b
    Examples:
      reindex-fsm show 3f2a9c1b7d4e --report run.html
      reindex-fsm show batch-5d1e0c7a9b2f
    """
    if batches.is_batch_id(run_id):  # a batch and its runs (cli/batches.py)
        batches.show(ctx, config_for(ctx, state_db), run_id)
        return
    record, events, picture = reads.show_picture(
        config_for(ctx, state_db, progress=False), run_id, report_file
    )
    data = {
        **reads.summary(record),
        "batch_id": record.batch_id,  # the batch that made the run (None: on its own)
        "options": record.options,
        "plan": record.plan,
        "events": [e.as_dict() for e in events],
        **picture,
        "report": report_file,
    }
    if as_json:
        emit_json(data)
        return
    print_summary(data)
    lines: list[Any] = []
    failure, task = picture["failure"], picture["task"]
    if failure["error"] or failure["error_kind"]:
        lines.append(
            f"cause: {failure['error_kind'] or '-'} (failed from {failure['failed_from'] or '-'})"
        )
    lines.extend(f"next: {step}" for step in picture["next_steps"])
    if record.plan_path:  # made by apply from a plan file
        lines.append(f"plan file: {record.plan_path} (sha256 {record.plan_hash})")
    if task["task_id"]:
        progress = json.dumps(task["progress"], default=str) if task["progress"] else "-"
        lines.append(
            f"task: {task['task_id']}, copy attempts {task['copy_attempts']}, "
            f"last progress {progress}"
        )
    render.print_out(*lines)
    deep = {k: v for k, v in (record.verification or {}).items() if k != "gate"}
    if deep:  # the deep comparison's record (the gate's is printed on its own)
        print_verification(deep)
    if picture["gate"] is not None:
        print_gate(picture["gate"])
    table = render.table(f"timeline of run {record.id}")
    for col in ("at", "from", "to", "trigger", "time in state", "detail"):
        table.add_column(col)
    for step in picture["timeline"]:
        seconds = report.human_seconds(step["seconds"])
        render.add_row(
            table,
            step["at"][:19].replace("T", " "),
            step["from"] or "",
            step["to"],
            step["trigger"],
            seconds + (" (so far)" if step["ongoing"] else ""),
            json.dumps(step["detail"], default=str) if step["detail"] else "",
        )
    lines = [
        table,
        "time in state: "
        + ", ".join(f"{k} {report.human_seconds(v)}" for k, v in picture["time_in_state"].items()),
        "path: " + " -> ".join(picture["path"]),
    ]
    if diagram:
        lines += ["state diagram (Mermaid):", picture["diagram"]]
    if report_file:
        lines.append(f"report written to {report_file}")
    render.print_out(*lines)


@click.command()
@with_flags(HISTORY_FLAGS)
@common_flags
@click.pass_context
def history(
    ctx: click.Context,
    alias: str | None,
    state: str | None,
    since: datetime | None,
    limit: int,
    list_batches: bool,
    state_db: str | None,
    as_json: bool,
) -> None:
    """List runs, newest first (--batches: the batches, each with its runs' count).

    \b
    Examples:
      reindex-fsm history --alias documents --state FAILED
      reindex-fsm history --batches
    """
    if list_batches:
        batches.history(ctx, config_for(ctx, state_db), limit)
        return
    since_utc = since.replace(tzinfo=UTC) if since else None
    rows = reads.history_rows(
        config_for(ctx, state_db, progress=False), alias, state, since_utc, limit
    )
    if as_json:
        emit_json(rows)
        return
    table = rich_table.Table(title="reindex-fsm runs")
    columns = ("run", "alias", "source -> target", "state", "started", "duration")
    for col in (*columns, "documents", "result", "error"):
        table.add_column(col)
    for r in rows:
        unfinished = r["finished_at"] is None and r["state"] not in TERMINAL
        render.add_row(
            table,
            r["run_id"],
            r["alias"],
            f"{r['source_index']} -> {r['target_index']}",
            r["state"],
            r["created_at"][:19].replace("T", " "),
            report.human_seconds(r["duration_s"]) + (" (so far)" if unfinished else ""),
            report.documents_cell(r),
            r["result"],
            r["error"] or "",
        )
    render.print_out(table)
